"""Streaming reader for the registry and outlet files (CSV or XLSX).

Rows are yielded one at a time with their line number (the header is line 1), so a million-row
file never sits in memory. Cells come back as stripped strings; XLSX dates become ISO dates.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from collections.abc import Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import IO
from zipfile import BadZipFile, ZipFile

from issuer.errors import ImportRejected

MAX_FIELD_CHARS = 10_000
# openpyxl streams a read-only workbook's sheets but reads every other part whole, the shared
# strings (each distinct text of the workbook) above all: each MB of them costs about 6 MB of
# memory and 0.3 s. A million-row registry's shared strings are about 35 MB (its distinct
# VINs); a part beyond this is a zip bomb aimed at the reader, refused before it is opened.
MAX_WHOLE_PART_BYTES = 64 * 1024 * 1024
WORKSHEET_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
# What Excel writes for a password-protected workbook (the encrypted package sits inside an
# OLE2 compound file), and for the old binary .xls format.
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _one_line(text: object) -> str:
    """``text`` on one line, without control characters: a file's name or a zip member's may
    hold a line break, and a message's first line is what the command line prints."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())


def _shown(path: Path, *, whole: bool = False) -> str:
    """The file's name (or ``whole`` path) as a message shows it."""
    return _one_line(path if whole else path.name)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _header_positions(header: Sequence[str], columns: Sequence[str], required: Sequence[str]) -> list[int | None]:
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    missing = [c for c in required if c not in names]
    if missing:
        raise ImportRejected(
            f"line 1: the header lacks the column(s) {', '.join(missing)}; expected {','.join(columns)}",
            details=[{"line": 1, "message": f"missing column(s): {', '.join(missing)}"}],
        )
    # Counted once: a header of 100,000 columns (600 kB) must not cost 100,000 scans of itself.
    duplicated = sorted(name for name, times in Counter(n for n in names if n).items() if times > 1)
    if duplicated:
        raise ImportRejected(
            f"line 1: the column(s) {', '.join(duplicated)} appear more than once",
            details=[{"line": 1, "message": f"duplicated column(s): {', '.join(duplicated)}"}],
        )
    return [names.index(c) if c in names else None for c in columns]


def _project(row: Sequence[str], positions: Sequence[int | None]) -> list[str]:
    width = len(row)
    return [row[p].strip() if p is not None and p < width else "" for p in positions]


def read_rows(
    path: str | Path,
    *,
    columns: Sequence[str],
    required: Sequence[str],
    max_unpacked_bytes: int | None = None,
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, [value per column])`` for every non-empty data row.

    Columns are matched by header name, case-insensitively and in any order; extra columns are
    ignored. A file that is neither UTF-8 CSV nor XLSX is refused with a message saying so.
    ``max_unpacked_bytes`` refuses an XLSX whose parts unpack to more than that (a zip bomb
    uploaded through a web form), before any part is read.
    """
    path = Path(path)
    if not path.is_file():
        raise ImportRejected(f"{_shown(path, whole=True)}: no such file")
    with path.open("rb") as probe:
        magic = probe.read(len(OLE2_MAGIC))
    if magic.startswith(b"PK\x03\x04"):
        _refuse_large_archive(path, max_unpacked_bytes)
        yield from _read_xlsx(path, columns, required)
    elif magic == OLE2_MAGIC:
        raise ImportRejected(
            f"{_shown(path)}: a password-protected or old-format (.xls) Excel workbook; "
            "save it as .xlsx without a password, or as a UTF-8 CSV"
        )
    elif path.suffix.lower() == ".xlsx":
        raise ImportRejected(f"{_shown(path)}: not an XLSX workbook (an XLSX file is a zip archive, this is not one)")
    else:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            yield from _read_csv(handle, path, columns, required)


def refuse_large_workbook(path: str | Path, limit: int) -> None:
    """Refuse an XLSX (a zip archive) whose parts unpack to more than ``limit`` bytes, without
    opening it with openpyxl (which loads the shared strings whole). A CSV passes untouched."""
    path = Path(path)
    if not path.is_file():
        return
    with path.open("rb") as probe:
        if not probe.read(4).startswith(b"PK\x03\x04"):
            return
    _refuse_large_archive(path, limit)


def _refuse_large_archive(path: Path, limit: int | None) -> None:
    """Refuse an XLSX whose parts would unpack to more than ``limit`` bytes, or one of whose
    parts read whole (all but the sheets) would unpack to more than ``MAX_WHOLE_PART_BYTES``.
    The sizes are the ones the archive declares; zipfile never unpacks a part beyond its
    declared size."""
    try:
        with ZipFile(path) as archive:
            parts = archive.infolist()
            sheets = _sheet_parts(archive)
    except (BadZipFile, OSError) as exc:
        raise ImportRejected(f"{_shown(path)}: not a readable XLSX workbook ({_one_line(exc)})") from exc
    unpacked = sum(info.file_size for info in parts)
    if limit is not None and unpacked > limit:
        raise ImportRejected(
            f"{_shown(path)}: the workbook unpacks to {unpacked // (1024 * 1024)} MB, more than the "
            f"{limit // (1024 * 1024)} MB allowed; save only the sheet to import, without images"
        )
    for info in parts:
        if info.filename not in sheets and info.file_size > MAX_WHOLE_PART_BYTES:
            raise ImportRejected(
                f"{_shown(path)}: its part {_one_line(info.filename)} unpacks to "
                f"{info.file_size // (1024 * 1024)} MB, more than the {MAX_WHOLE_PART_BYTES // (1024 * 1024)} MB "
                "a workbook's texts or styles may take"
            )


def _sheet_parts(archive: ZipFile) -> set[str]:
    """The parts the workbook's content types declare worksheets: the ones openpyxl streams."""
    from xml.etree.ElementTree import ParseError, fromstring

    try:
        info = archive.getinfo("[Content_Types].xml")
    except KeyError:
        return set()
    if info.file_size > 1024 * 1024:  # a real one is a few kB; a larger one declares no sheet
        return set()
    try:
        # expat refuses entity expansion beyond a small factor, and reads no external entity.
        types = fromstring(archive.read(info))  # noqa: S314
    except (ParseError, BadZipFile, RuntimeError, NotImplementedError):
        return set()
    return {
        str(o.get("PartName", "")).lstrip("/")
        for o in types
        if o.tag.endswith("Override") and o.get("ContentType") == WORKSHEET_CONTENT_TYPE
    }


def _refusing_nul(handle: IO[str], path: Path) -> Iterator[str]:
    """Pass lines through, refusing a NUL character: no value legitimately holds one, and
    PostgreSQL cannot store it (SQLite would, so the two databases would disagree)."""
    for number, line in enumerate(handle, start=1):
        if "\x00" in line:
            raise ImportRejected(
                f"{_shown(path)}: line {number}: contains a NUL character; the file is damaged or not UTF-8 text "
                "(a UTF-16 'Unicode text' export holds one in every other byte); save the CSV as UTF-8",
                details=[{"line": number, "message": "contains a NUL character"}],
            )
        yield line


def _read_csv(
    handle: IO[str], path: Path, columns: Sequence[str], required: Sequence[str]
) -> Iterator[tuple[int, list[str]]]:
    csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.reader(_refusing_nul(handle, path))
    try:
        header = next(reader, None)
        if header is None:
            raise ImportRejected(f"{_shown(path)}: the file is empty; expected a header {','.join(columns)}")
        positions = _header_positions(header, columns, required)
        # The usual row holds every column: pick and strip them in C, and look at the whole row
        # for blankness only when every picked cell is blank. Other rows take the general path.
        present = [p for p in positions if p is not None]
        pick = itemgetter(*positions) if len(positions) > 1 and len(present) == len(positions) else None
        width = max(present, default=-1) + 1
        strip = str.strip
        for row in reader:
            if pick is not None and len(row) >= width:
                cells = list(map(strip, pick(row)))
                if any(cells) or "".join(row).strip():
                    yield reader.line_num, cells
            elif row and any(cell.strip() for cell in row):
                yield reader.line_num, _project(row, positions)
    except UnicodeDecodeError as exc:
        raise ImportRejected(
            f"{_shown(path)}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the CSV as UTF-8"
        ) from exc
    except csv.Error as exc:
        raise ImportRejected(f"{_shown(path)}: line {reader.line_num}: malformed CSV ({_one_line(exc)})") from exc


def _read_xlsx(path: Path, columns: Sequence[str], required: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    # SyntaxError covers the XML parsers' errors (a damaged or foreign part inside the zip);
    # zipfile raises RuntimeError for an encrypted part, NotImplementedError for a compression
    # method it does not know.
    unreadable = (
        BadZipFile,
        InvalidFileException,
        SyntaxError,
        KeyError,
        ValueError,
        OSError,
        RuntimeError,
        NotImplementedError,
    )
    # A file object, not the name: openpyxl would refuse an XLSX whose name lacks ".xlsx".
    with path.open("rb") as handle:
        try:
            workbook = load_workbook(handle, read_only=True, data_only=True)
        except unreadable as exc:
            raise ImportRejected(f"{_shown(path)}: not a readable XLSX workbook ({_one_line(exc)})") from exc
        try:
            if not workbook.worksheets:
                raise ImportRejected(f"{_shown(path)}: the workbook holds no sheet")
            sheet = workbook.worksheets[0]
            rows = sheet.iter_rows(values_only=True)
            header = next(rows, None)
            if header is None:
                raise ImportRejected(f"{_shown(path)}: the first sheet is empty; expected a header {','.join(columns)}")
            positions = _header_positions([_cell_text(h) for h in header], columns, required)
            for line, row in enumerate(rows, start=2):
                cells = [_cell_text(v) for v in row]
                if not any(cells):
                    continue
                yield line, _project(cells, positions)
        except unreadable as exc:
            raise ImportRejected(f"{_shown(path)}: the XLSX workbook is damaged ({_one_line(exc)})") from exc
        finally:
            workbook.close()
