"""The verification QR code: the letter's verify URL as an inline SVG image, no file, no network."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import segno

# A quiet zone of four modules is what ISO/IEC 18004 asks for; scanners misread codes
# that sit too close to table borders without it.
QUIET_ZONE = 4


@dataclass(frozen=True, slots=True)
class QrImage:
    """A QR code drawn as SVG: one filled rectangle per horizontal run of dark modules."""

    svg: str
    modules: int  # width of the symbol in modules, quiet zone included

    @property
    def data_uri(self) -> str:
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg.encode("ascii")).decode("ascii")


def verification_qr(url: str) -> QrImage:
    """Encode ``url`` (error correction level M, raised by segno where the version allows)."""
    code = segno.make(url, error="m", micro=False)
    rows = [list(row) for row in code.matrix_iter(scale=1, border=QUIET_ZONE)]
    size = len(rows)
    # Runs of dark modules as absolute "M x y h n v 1 h -n z" rectangles: compact, and with
    # fills rather than strokes there are no anti-aliasing seams between rows.
    parts: list[str] = []
    for y, row in enumerate(rows):
        x = 0
        while x < size:
            if row[x]:
                start = x
                while x < size and row[x]:
                    x += 1
                parts.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" '
        f'width="{size}" height="{size}" shape-rendering="crispEdges">'
        f'<rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(parts)}"/></svg>'
    )
    return QrImage(svg=svg, modules=size)
