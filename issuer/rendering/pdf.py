"""Letters as PDF: LetterContent → Jinja2 HTML → WeasyPrint, in a sandbox.

Rendering is locked down: the HTML has no base URL, and the URL fetcher answers only
``data:`` URIs and the bundled files in :data:`ASSET_DIR`; everything else (``file:``
elsewhere, ``http(s):``, any other scheme) stops the render. Every user-supplied string goes
through Jinja's autoescaping, so markup in a name prints as text and is never fetched.
A letter is never printed with missing characters: any glyph no installed font has raises
:class:`MissingGlyphs` instead of drawing an empty box.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from weasyprint import HTML
from weasyprint.document import Document
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from issuer.domain.letter import DestinationSection, LetterContent
from issuer.rendering.qr import verification_qr

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates" / "letters"
TEMPLATE_NAME = "letter.html"
# The one folder the fetcher may read from: the letter's own stylesheet and images.
ASSET_DIR = TEMPLATE_DIR
STYLESHEET_NAME = "letter.css"

_ASSET_TYPES = {".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}
_DATA_URI_TYPES = frozenset({"image/png", "image/jpeg", "image/svg+xml"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

# WeasyPrint reports a glyph no font has with this warning (weasyprint/draw/text.py); the
# test suite renders a private-use character to prove the wording still matches.
_MISSING_GLYPH_MARKERS = (".notdef glyph", "unsupported by fonts")
_WEASYPRINT_LOGGER = logging.getLogger("weasyprint")


@dataclass(frozen=True)
class SealMark:
    """What the letter prints about its seal; the digital signature itself is applied later."""

    kid: str  # the seal key id, printed in the digital-seal box
    algorithm: str  # e.g. "ECDSA-secp256r1-SHA256"
    image_png: bytes | None = None  # the manufacturer's uploaded seal image, if any


@dataclass(frozen=True)
class RenderedLetter:
    pdf: bytes
    page_count: int


class RenderingError(RuntimeError):
    """The letter could not be rendered exactly as it must be printed."""


class MissingGlyphs(RenderingError):
    """Some characters have no glyph in any installed font; they would print as empty boxes."""

    def __init__(self, characters: tuple[str, ...]) -> None:
        self.characters = characters
        listed = ", ".join(f"{character!r} (U+{ord(character):04X})" for character in characters)
        super().__init__(f"no installed font can print: {listed or 'unknown characters'}")


class ResourceRefused(RenderingError):
    """The letter's HTML asked for a resource outside the sandbox."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"letter rendering may not fetch {url[:200]!r}")


class LockedDownFetcher(URLFetcher):
    """A WeasyPrint URL fetcher that serves ``data:`` URIs and files in ``asset_dir``, nothing else."""

    def __init__(self, asset_dir: Path = ASSET_DIR) -> None:
        # fail_on_errors: a refused resource stops the render rather than leaving a gap.
        super().__init__(fail_on_errors=True)
        self.asset_dir = asset_dir.resolve(strict=True)

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        scheme, _, _ = url.partition(":")
        scheme = scheme.strip().lower()
        if scheme == "data":
            media_type, body = _decode_data_uri(url)
            return URLFetcherResponse(url, body, {"Content-Type": media_type})
        if scheme == "file":
            path = self.asset_path(url)
            return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": _ASSET_TYPES[path.suffix]})
        raise ResourceRefused(url)

    def asset_path(self, url: str) -> Path:
        """The bundled file a ``file:`` URL names; refuses anything outside the asset folder."""
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost") or parts.query:
            raise ResourceRefused(url)
        try:
            path = Path(urllib.request.url2pathname(parts.path)).resolve(strict=True)
        except (OSError, RuntimeError, ValueError) as error:
            raise ResourceRefused(url) from error
        if not path.is_relative_to(self.asset_dir) or not path.is_file() or path.suffix not in _ASSET_TYPES:
            raise ResourceRefused(url)
        return path


def letter_html(content: LetterContent, *, verify_url: str, seal: SealMark) -> str:
    """The letter as HTML, ready for :func:`render_letter`'s sandboxed WeasyPrint."""
    seal_image_uri = None
    if seal.image_png is not None:
        if not seal.image_png.startswith(_PNG_SIGNATURE):
            raise RenderingError("the seal image is not a PNG file")
        seal_image_uri = "data:image/png;base64," + base64.b64encode(seal.image_png).decode("ascii")
    template = _environment().get_template(TEMPLATE_NAME)
    return template.render(
        letter=content,
        sections=_numbered_sections(content.destinations),
        verify_url=verify_url,
        qr_uri=verification_qr(verify_url).data_uri,
        seal=seal,
        seal_image_uri=seal_image_uri,
        stylesheet_url=(ASSET_DIR / STYLESHEET_NAME).resolve().as_uri(),
    )


def render_letter(content: LetterContent, *, verify_url: str, seal: SealMark) -> RenderedLetter:
    """Render the letter to an unsigned A4 PDF.

    Raises :class:`MissingGlyphs` when a character cannot be printed, :class:`ResourceRefused`
    when the HTML asks for anything outside the sandbox, :class:`RenderingError` on any other
    resource error.
    """
    html = letter_html(content, verify_url=verify_url, seal=seal)
    with _weasyprint_problems() as problems, _refusals_raised():
        document = _layout(html)
        pdf: bytes = document.write_pdf()  # without a target, write_pdf returns the bytes
    _raise_for(problems)
    return RenderedLetter(pdf=pdf, page_count=len(document.pages))


def _layout(html: str) -> Document:
    """Lay out ``html`` in the sandbox: no base URL, only the locked-down fetcher."""
    with _refusals_raised():
        return HTML(string=html, base_url=None, url_fetcher=LockedDownFetcher()).render()


@contextmanager
def _refusals_raised() -> Iterator[None]:
    # The fetcher's fail_on_errors makes WeasyPrint wrap our refusal in a BaseException; unwrap it.
    try:
        yield
    except FatalURLFetchingError as fatal:
        cause = fatal.__cause__
        if isinstance(cause, RenderingError):
            raise cause from None
        raise RenderingError(f"letter resource could not be loaded: {cause or fatal}") from cause


@dataclass(frozen=True, slots=True)
class _NumberedSection:
    number: int  # 1-based position among the destinations
    first_row: int  # the letter-wide row number of the section's first vehicle
    section: DestinationSection


def _numbered_sections(destinations: tuple[DestinationSection, ...]) -> list[_NumberedSection]:
    # Vehicles are numbered through the whole letter, so "No. 317" names one vehicle.
    numbered: list[_NumberedSection] = []
    first_row = 1
    for number, section in enumerate(destinations, start=1):
        numbered.append(_NumberedSection(number, first_row, section))
        first_row += len(section.vehicles)
    return numbered


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,  # every string from a user prints as text, never as markup
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    environment.filters["zh_date"] = _zh_date
    environment.filters["en_date"] = _en_date
    return environment


def _zh_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _en_date(day: date) -> str:
    return f"{day.day} {_MONTHS_EN[day.month - 1]} {day.year}"


def _decode_data_uri(url: str) -> tuple[str, bytes]:
    header, comma, payload = url[len("data:") :].partition(",")
    if not comma:
        raise ResourceRefused(url)
    fields = [field.strip() for field in header.split(";")]
    media_type = fields[0].lower()
    if media_type not in _DATA_URI_TYPES:
        raise ResourceRefused(url)
    if "base64" in (field.lower() for field in fields[1:]):
        try:
            return media_type, base64.b64decode(urllib.parse.unquote(payload), validate=True)
        except binascii.Error as error:
            raise ResourceRefused(url) from error
    return media_type, urllib.parse.unquote_to_bytes(payload)


class _ProblemCollector(logging.Handler):
    """Keeps WeasyPrint's warnings and errors raised by this thread (renders may run in parallel)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.records.append(record)


@contextmanager
def _weasyprint_problems() -> Iterator[list[logging.LogRecord]]:
    collector = _ProblemCollector()
    if not _WEASYPRINT_LOGGER.isEnabledFor(logging.WARNING):
        # A quieter logging set-up must not hide missing glyphs from this check.
        _WEASYPRINT_LOGGER.setLevel(logging.WARNING)
    _WEASYPRINT_LOGGER.addHandler(collector)
    try:
        yield collector.records
    finally:
        _WEASYPRINT_LOGGER.removeHandler(collector)


def _raise_for(records: list[logging.LogRecord]) -> None:
    glyphs_missing = False
    characters: dict[str, None] = {}  # ordered and without repeats
    errors: list[str] = []
    for record in records:
        message = record.getMessage()
        if any(marker in message for marker in _MISSING_GLYPH_MARKERS):
            glyphs_missing = True
            character = record.args[0] if isinstance(record.args, tuple) and record.args else None
            if isinstance(character, str) and len(character) == 1:
                characters[character] = None
        elif record.levelno >= logging.ERROR:
            errors.append(message)
    if glyphs_missing:
        raise MissingGlyphs(tuple(characters))
    if errors:
        raise RenderingError("; ".join(errors))
