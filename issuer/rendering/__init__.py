"""Rendering: a letter's content as a sandboxed, bilingual A4 PDF with its verification QR code."""

from issuer.rendering.pdf import (
    MissingGlyphs,
    RenderedLetter,
    RenderingError,
    ResourceRefused,
    SealMark,
    letter_html,
    render_letter,
)

__all__ = [
    "MissingGlyphs",
    "RenderedLetter",
    "RenderingError",
    "ResourceRefused",
    "SealMark",
    "letter_html",
    "render_letter",
]
