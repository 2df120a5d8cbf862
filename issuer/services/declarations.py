"""The exporter's list of vehicles as typed: pasted from a spreadsheet or uploaded as CSV/XLSX,
read into ``VehicleDeclaration``s; and one manufacturer's part of a checked list filed as a request.

Reading a list never judges the vehicles: a malformed VIN or an unknown country code is read as
typed and gets its verdict (VIN_FORMAT, DESTINATION_INVALID) from the rules. Only what cannot
be a declaration at all is refused here — a missing column, an empty brand, a date that is not
``YYYY-MM-DD`` — with the line it is on, so the exporter can find it in the sheet.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from issuer.domain.eligibility import ManufacturerWmis, VehicleDeclaration, Verdict, split_by_manufacturer
from issuer.domain.vin import normalise_vin
from issuer.errors import ImportRejected, ValidationFailed
from issuer.models import LetterRequest, Manufacturer, User
from issuer.schemas.requests import MAX_VEHICLES
from issuer.services import requests as request_service
from issuer.services.registry import parse_iso_date
from issuer.services.tabular import OLE2_MAGIC, read_rows

# The template's columns, in the order a pasted line without a header gives them.
COLUMNS = ("vin", "brand", "model", "registration_date", "destination", "export_transfer_date", "note")
REQUIRED_COLUMNS = COLUMNS[:5]
DATE_COLUMNS = ("registration_date", "export_transfer_date")
# The same limits as the API's schema (issuer.schemas.requests).
MAX_CHARS = {"vin": 64, "brand": 100, "model": 100, "destination": 8, "note": 200}
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# A 10,000-row sheet unpacks to a few MB; anything far larger is not a list of vehicles.
MAX_UNPACKED_BYTES = 50 * 1024 * 1024
UPLOAD_SUFFIXES = (".csv", ".xlsx")
# The template's example row says so in its note; a list still holding it is refused.
EXAMPLE_NOTE = "EXAMPLE - delete this row"
EXAMPLE_ROW = ("LGXC74C43S0123456", "Example", "E1", "2026-06-01", "KZ", "", EXAMPLE_NOTE)
ENCODING_VERSION = 1


@dataclass(frozen=True, slots=True)
class LineError:
    """One reason a line of the list cannot be read. ``problem`` names the kind (pages word it
    in their language); ``message`` is the English wording for logs and the command line."""

    line: int | None
    # columns | header | empty | too_long | date | control | example | too_many | nothing
    # | file_type | not_xlsx | file_large | file_empty | file (the reader's own message in value)
    problem: str
    column: str = ""
    value: str = ""
    limit: int = 0

    @property
    def message(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        texts = {
            "columns": f"found {self.value} columns; expected {len(REQUIRED_COLUMNS)} to {len(COLUMNS)} "
            f"({', '.join(COLUMNS)})",
            "header": f"the header lacks the column(s) {self.value}",
            "empty": f"{self.column} is empty",
            "too_long": f"{self.column} is longer than {self.limit} characters",
            "date": f"{self.column} {self.value!r} is not a date YYYY-MM-DD",
            "control": f"{self.column} contains a control character",
            "example": "this is the template's example row; delete it or clear its note",
            "too_many": f"the list holds {self.value} vehicles; at most {self.limit} can be checked at once",
            "nothing": "the list holds no vehicles",
            "file_type": f"{self.value}: not a .csv or .xlsx file",
            "not_xlsx": f"{self.value}: not an XLSX workbook",
            "file_large": f"{self.value}: larger than {self.limit // (1024 * 1024)} MB",
            "file_empty": f"{self.value}: the file is empty",
            "file": self.value,
        }
        return where + texts[self.problem]


class DeclarationsRejected(ValidationFailed):
    """The list could not be read; ``errors`` names every bad line (in order)."""

    code = "DECLARATIONS_REJECTED"

    def __init__(self, errors: Sequence[LineError]) -> None:
        self.errors = tuple(errors)
        shown = "; ".join(e.message for e in self.errors[:5])
        more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        super().__init__(
            f"the list of vehicles cannot be read: {shown}{more}",
            details=[{"line": e.line, "message": e.message} for e in self.errors],
        )


class DamagedList(ValidationFailed):
    """The vehicles carried by a submit form are not a list this service wrote."""


class NotThisManufacturers(ValidationFailed):
    """Vehicles sent to a manufacturer that carry none of its WMIs."""

    def __init__(self, manufacturer: str, vins: Sequence[str]) -> None:
        self.manufacturer = manufacturer
        self.vins = tuple(vins)
        super().__init__(
            f"{len(vins)} vehicle(s) sent to {manufacturer} carry no WMI of it: {', '.join(vins[:5])}",
            details={"vehicles": [f"not a vehicle of {manufacturer}: {vin}" for vin in vins]},
        )


class NothingToSend(ValidationFailed):
    """Every vehicle of the part is refused: the manufacturer could put none in a letter."""


@dataclass(frozen=True, slots=True)
class DeclaredList:
    """The vehicles read from a list, and the line each came from."""

    vehicles: tuple[VehicleDeclaration, ...]
    lines: tuple[int, ...]


# -- one row ---------------------------------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def declaration_from_cells(line: int | None, cells: Sequence[str]) -> tuple[VehicleDeclaration | None, list[LineError]]:
    """One declaration from the cells of a row in COLUMNS order (missing trailing cells are
    empty), or the problems that keep it from being one."""
    values = {
        name: (cells[i].strip() if i < len(cells) and cells[i] is not None else "") for i, name in enumerate(COLUMNS)
    }
    problems: list[LineError] = []
    for name, value in values.items():
        if _has_control(value):
            problems.append(LineError(line, "control", column=name))
        elif name in REQUIRED_COLUMNS and not value:
            problems.append(LineError(line, "empty", column=name))
        elif name in MAX_CHARS and len(value) > MAX_CHARS[name]:
            problems.append(LineError(line, "too_long", column=name, limit=MAX_CHARS[name]))
    dates: dict[str, dt.date | None] = {}
    for name in DATE_COLUMNS:
        value = values[name]
        dates[name] = None
        if value and not _has_control(value):
            try:
                dates[name] = parse_iso_date(value, what=name)
            except ValueError:
                problems.append(LineError(line, "date", column=name, value=value[:40]))
    if values["note"].upper().startswith("EXAMPLE"):
        problems.append(LineError(line, "example"))
    if problems:
        return None, problems
    registration_date = dates["registration_date"]
    assert registration_date is not None  # required and parsed above  # noqa: S101
    return (
        VehicleDeclaration(
            vin=values["vin"],
            brand=values["brand"],
            model=values["model"],
            registration_date=registration_date,
            destination=values["destination"],
            export_transfer_date=dates["export_transfer_date"],
        ),
        [],
    )


def _collect(rows: Iterable[tuple[int, Sequence[str]]], errors: list[LineError]) -> DeclaredList:
    """Declarations from ``(line, cells)`` rows; every problem found is added to ``errors``, and
    any problem refuses the whole list (a half-read list would check other vehicles than meant)."""
    vehicles: list[VehicleDeclaration] = []
    lines: list[int] = []
    count = 0
    for line, cells in rows:
        count += 1
        if count > MAX_VEHICLES:
            break
        declaration, problems = declaration_from_cells(line, cells)
        if declaration is None:
            errors.extend(problems)
        else:
            vehicles.append(declaration)
            lines.append(line)
    if count > MAX_VEHICLES:
        errors.append(LineError(None, "too_many", value=f"more than {MAX_VEHICLES:,}", limit=MAX_VEHICLES))
    elif count == 0 and not errors:
        errors.append(LineError(None, "nothing"))
    if errors:
        raise DeclarationsRejected(errors)
    return DeclaredList(tuple(vehicles), tuple(lines))


# -- pasted text -----------------------------------------------------------------------------


def _split_line(text: str) -> list[str]:
    """Cells of one pasted line: a spreadsheet copies cells separated by tabs; a line without a
    tab is read as CSV (commas, with quotes where a cell holds one)."""
    try:
        cells = text.split("\t") if "\t" in text else next(csv.reader([text]), [])
    except csv.Error:  # a cell beyond the csv module's field limit: one cell, too long to be read
        cells = [text]
    cells = [c.strip() for c in cells]
    while cells and not cells[-1]:
        cells.pop()  # a copied row often ends in the empty cells of unused columns
    return cells


def _header_positions(line: int, cells: Sequence[str], errors: list[LineError]) -> list[int | None] | None:
    names = [c.lower().lstrip("\ufeff") for c in cells]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        errors.append(LineError(line, "header", value=", ".join(missing)))
        return None
    return [names.index(c) if c in names else None for c in COLUMNS]


def parse_pasted(text: str) -> DeclaredList:
    """Read vehicles pasted from a spreadsheet, one per line.

    Without a header line the columns are in the template's order; a first line naming the
    columns (``vin``, …) is skipped and, since it says where each column is, followed.
    Line numbers are those of the text box, blank lines included."""
    errors: list[LineError] = []
    positions: list[int | None] | None = None
    header_seen = False

    def rows() -> Iterable[tuple[int, list[str]]]:
        nonlocal positions, header_seen
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            cells = _split_line(raw)
            if not header_seen:
                header_seen = True
                if any(c.lower().lstrip("\ufeff") == "vin" for c in cells):
                    positions = _header_positions(number, cells, errors)
                    if positions is None:
                        return
                    continue
            if positions is not None:
                yield number, [cells[p] if p is not None and p < len(cells) else "" for p in positions]
            elif not len(REQUIRED_COLUMNS) <= len(cells) <= len(COLUMNS):
                errors.append(LineError(number, "columns", value=str(len(cells))))
            else:
                yield number, cells

    return _collect(rows(), errors)


# -- uploaded files --------------------------------------------------------------------------


def read_file(path: str | Path) -> DeclaredList:
    """Read vehicles from a CSV or XLSX file whose first line names the template's columns.

    The file goes through ``issuer.services.tabular.read_rows`` like every other import, so
    its encoding checks and XLSX safety (cached values, never formulas; a cap on the unpacked
    size) apply here too."""
    path = Path(path)
    if path.suffix.lower() not in UPLOAD_SUFFIXES:
        raise DeclarationsRejected([LineError(None, "file_type", value=path.name)])
    with path.open("rb") as probe:
        magic = probe.read(len(OLE2_MAGIC))
    # A password-protected workbook (OLE2) is left to the reader, which says so.
    if path.suffix.lower() == ".xlsx" and not magic.startswith(b"PK\x03\x04") and magic != OLE2_MAGIC:
        raise DeclarationsRejected([LineError(None, "not_xlsx", value=path.name)])
    errors: list[LineError] = []
    try:
        rows = read_rows(path, columns=COLUMNS, required=REQUIRED_COLUMNS, max_unpacked_bytes=MAX_UNPACKED_BYTES)
        return _collect(rows, errors)
    except DeclarationsRejected:
        raise
    except ImportRejected as exc:
        raise DeclarationsRejected([*errors, LineError(None, "file", value=exc.message)]) from None


class UploadTooLarge(DeclarationsRejected):
    """The uploaded file is over MAX_UPLOAD_BYTES."""


def read_upload(stream: BinaryIO, filename: str) -> DeclaredList:
    """Read an uploaded file: copied (at most MAX_UPLOAD_BYTES) to a temporary file under its
    own name, so messages name the file the exporter chose, read, and deleted again."""
    name = Path(filename.replace("\\", "/")).name.strip() or "upload"
    safe = "".join(ch if ch.isalnum() or ch in "._- " else "_" for ch in name)[-100:].lstrip(".") or "upload"
    with tempfile.TemporaryDirectory(prefix="issuer-precheck-") as folder:
        path = Path(folder) / safe
        size = 0
        with path.open("wb") as out:
            while chunk := stream.read(64 * 1024):
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise UploadTooLarge([LineError(None, "file_large", value=name, limit=MAX_UPLOAD_BYTES)])
                out.write(chunk)
        if size == 0:
            raise DeclarationsRejected([LineError(None, "file_empty", value=name)])
        return read_file(path)


# -- the list carried by a submit form -------------------------------------------------------


def encode(vehicles: Sequence[VehicleDeclaration]) -> str:
    """The vehicles as compact JSON, for a form that files them once the exporter has seen
    the verdicts. What comes back is read again with :func:`decode`, never trusted."""
    rows = [
        [
            v.vin,
            v.brand,
            v.model,
            v.registration_date.isoformat(),
            v.destination,
            v.export_transfer_date.isoformat() if v.export_transfer_date else None,
        ]
        for v in vehicles
    ]
    return json.dumps({"v": ENCODING_VERSION, "vehicles": rows}, ensure_ascii=False, separators=(",", ":"))


def decode(text: str) -> tuple[VehicleDeclaration, ...]:
    """Read back what :func:`encode` wrote, checking every value as a typed row is checked."""
    damaged = DamagedList(
        "the list of vehicles sent with the form was changed or is damaged; check the vehicles again",
        details={"vehicles": ["damaged list"]},
    )
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        raise damaged from None
    if not isinstance(payload, dict) or payload.get("v") != ENCODING_VERSION:
        raise damaged
    rows = payload.get("vehicles")
    if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_VEHICLES:
        raise damaged
    vehicles = []
    for row in rows:
        if (
            not isinstance(row, list)
            or len(row) != 6
            or not all(isinstance(c, str) for c in row[:5])
            or not (row[5] is None or isinstance(row[5], str))
        ):
            raise damaged
        declaration, _problems = declaration_from_cells(None, [*row[:5], row[5] or ""])
        if declaration is None:
            raise damaged
        vehicles.append(declaration)
    return tuple(vehicles)


# -- filing one manufacturer's part ----------------------------------------------------------


def strays(session: Session, manufacturer_code: str, vehicles: Sequence[VehicleDeclaration]) -> list[str]:
    """The VINs of ``vehicles`` that a split of the list would not give to this manufacturer."""
    manufacturers = session.scalars(select(Manufacturer).options(selectinload(Manufacturer.wmis)))
    parts, _unassigned = split_by_manufacturer(
        [v.vin for v in vehicles], [ManufacturerWmis(code=m.code, wmis=m.wmi_values()) for m in manufacturers]
    )
    own = set(parts.get(manufacturer_code.strip().upper(), ()))
    return [normalise_vin(vehicles[i].vin) for i in range(len(vehicles)) if i not in own]


def file_part(
    *,
    session: Session,
    user: User,
    manufacturer_code: str,
    application_date: dt.date,
    reference: str,
    vehicles: Sequence[VehicleDeclaration],
    supersedes: str | None = None,
) -> LetterRequest:
    """File the part of a checked list that belongs to one manufacturer.

    The verdicts are worked out again (the list came back from a browser): a vehicle of
    another manufacturer is refused outright, and a part whose vehicles are all refused is not
    sent, since the manufacturer could put none of them in a letter."""
    code = manufacturer_code.strip().upper()
    foreign = strays(session, code, vehicles)
    if foreign:
        raise NotThisManufacturers(code, foreign)
    ignore_letter_id = None
    if supersedes:
        # The request service checks the letter the same way when it files the request.
        ignore_letter_id = request_service._correctable_letter(session, user, code, supersedes)
    _, assessment = request_service.precheck_for_manufacturer(
        session=session,
        manufacturer_code=code,
        exporter=user.exporter,
        application_date=application_date,
        vehicles=vehicles,
        ignore_letter_id=ignore_letter_id,
    )
    if all(v.verdict is Verdict.REFUSED for v in assessment.vehicles):
        raise NothingToSend(
            f"every vehicle for {code} is refused; there is nothing it could put in a letter",
            details={"vehicles": ["every vehicle is refused"]},
        )
    letter_request, _ = request_service.submit_request(
        session=session,
        user=user,
        manufacturer_code=code,
        application_date=application_date,
        reference=reference,
        vehicles=vehicles,
        supersedes=supersedes or None,
    )
    return letter_request


# -- the template ----------------------------------------------------------------------------


def template_csv() -> bytes:
    """The template as CSV: the header and the example row, UTF-8 with a byte-order mark so
    that spreadsheet programs open it as UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerow(EXAMPLE_ROW)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def template_xlsx(*, column_help: Sequence[tuple[str, str]], sheet_title: str, help_title: str) -> bytes:
    """The template as XLSX: the vehicles' sheet (header and the example row, greyed and
    commented) first, where the reader looks, and a sheet explaining each column."""
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Font

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = sheet_title[:31]
    sheet.append(list(COLUMNS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    vin, brand, model, registered, destination, _transfer, note = EXAMPLE_ROW
    sheet.append([vin, brand, model, dt.date.fromisoformat(registered), destination, None, note])
    for cell in sheet[2]:
        cell.font = Font(italic=True, color="808080")
    for column in ("D", "F"):
        sheet[f"{column}2"].number_format = "yyyy-mm-dd"
        sheet.column_dimensions[column].width = 20
    sheet.column_dimensions["A"].width = 22
    sheet.column_dimensions["G"].width = 28
    sheet["A2"].comment = Comment(EXAMPLE_NOTE, "issuer")
    sheet.freeze_panes = "A2"
    help_sheet = workbook.create_sheet(help_title[:31])
    for name, text in column_help:
        help_sheet.append([name, text])
    help_sheet.column_dimensions["A"].width = 22
    help_sheet.column_dimensions["B"].width = 100
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
