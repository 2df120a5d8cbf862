"""Use cases of the production registry: importing a manufacturer's VINs.

The import streams, so memory stays flat however long the file is. A file with any invalid row
changes nothing (unless ``skip_invalid``); every invalid row is reported with its line number
and reason.

It runs in two phases, so it holds the database's write lock only while it writes. SQLite (the
default database) has a single writer: an import that wrote as it read held that lock for the
whole file (an XLSX is slow to parse), and every other write meanwhile, a sign-in's audit entry
included, waited and then failed. So the file is first read and validated with no transaction
open, the valid rows going, already normalised, to a temporary spool file on disk; only when the
file is known to be acceptable is the spool written, in one short transaction. All or nothing is
kept (one transaction, and a refused file writes nothing at all); the price is a temporary file
about the size of the rows' text, and rows that change in the registry between the two phases
are simply overwritten by the file, as they would have been a moment later.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from issuer import clock
from issuer.domain.vin import has_valid_check_digit, is_well_formed, normalise_vin
from issuer.errors import ImportRejected
from issuer.models import RegisteredVehicle
from issuer.services import audit
from issuer.services.organisations import get_manufacturer
from issuer.services.tabular import read_rows

REGISTRY_COLUMNS = ("vin", "brand", "model", "production_date")
BATCH_SIZE = 5_000
MAX_NAME_CHARS = 100
MAX_KNOWN_DATES = 100_000
# An XLSX whose parts unpack to more than this is refused before it is parsed (a zip bomb sent
# through the web form). Measured: a 100,000-row registry (vin, brand, model, production_date)
# saved by openpyxl is 2.5 MB packed and unpacks to 24.9 MB, nearly all of it the sheet's XML, so
# a million rows unpack to about 250 MB; Excel's own files are of the same order. 1 GiB leaves
# four times that for long names and extra columns, and refuses a bomb before it is parsed.
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024


@dataclass
class ImportResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "errors": [{"line": line, "message": message} for line, message in self.errors],
        }


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_iso_date(text: str, *, what: str) -> dt.date:
    """Parse ``YYYY-MM-DD`` strictly, naming the field in the error.

    ``date.fromisoformat`` alone also takes ``20250101`` and ``2025-W01-1``; a registry file
    holding those is more likely wrong than meant, so only the one form is accepted."""
    try:
        if not ISO_DATE.fullmatch(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a date in the form YYYY-MM-DD") from None


def import_vehicles(
    *,
    session: Session,
    manufacturer_code: str,
    path: str | Path,
    skip_invalid: bool = False,
    actor: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Load (or update) the manufacturer's production registry from a CSV or XLSX file.

    Re-importing updates brand, model and production date; an empty production date (or a file
    without that column) keeps the date already stored rather than erasing it.

    ``progress(rows_read, line)`` is called every ``BATCH_SIZE`` data rows and once at the end of
    the file, with the rows read so far (valid or not) and the file line reached, so a page can
    show how far a long import has got. The reports come from the validation phase; the write
    phase that follows a valid file is short (see the module's docstring)."""
    manufacturer = get_manufacturer(session, manufacturer_code)
    wmis = manufacturer.wmi_values()
    if not wmis:
        raise ImportRejected(f"manufacturer {manufacturer.code} holds no WMI; add one before importing VINs")
    plain_wmis = frozenset(w.code for w in wmis if not w.plant_code)
    small_wmis = frozenset((w.code, w.plant_code) for w in wmis if w.plant_code)
    manufacturer_id, manufacturer_label = manufacturer.id, manufacturer.code
    # End the read transaction: the validation phase holds none (on SQLite in WAL mode, a read
    # transaction that later writes fails when another write was committed in between).
    session.commit()
    today = clock.today_in_china()
    result = ImportResult()
    seen: dict[str, int] = {}
    # production_date cell -> ISO date, for the dates already found valid and not in the future
    # ("" is no date). A file repeats a few thousand dates a million times; this saves parsing.
    known_dates: dict[str, str] = {"": ""}

    def valid_rows() -> Iterator[tuple[str, str, str, str | None]]:
        rows = read_rows(
            path, columns=REGISTRY_COLUMNS, required=("vin", "brand", "model"), max_unpacked_bytes=MAX_UNPACKED_BYTES
        )
        for line, (raw_vin, brand, model, produced) in rows if progress is None else _reporting(rows, progress):
            vin = normalise_vin(raw_vin)
            date_text = known_dates.get(produced)
            # The usual row passes every check at once; any other row is diagnosed in full below.
            # (has_valid_check_digit is False for a malformed VIN, so it checks the form too.)
            if (
                date_text is not None
                and 0 < len(brand) <= MAX_NAME_CHARS
                and 0 < len(model) <= MAX_NAME_CHARS
                and has_valid_check_digit(vin)
                and (vin[:3] in plain_wmis or (vin[:3], vin[11:14]) in small_wmis)
                and seen.setdefault(vin, line) == line  # a first occurrence, now remembered
            ):
                if result.errors and not skip_invalid:
                    continue  # the file will be refused: keep validating, stop writing
                yield vin, brand, model, date_text or None
                continue
            problems = []
            if not is_well_formed(vin):
                problems.append(f"VIN {raw_vin!r} is not 17 characters of 0-9 and A-Z without I, O, Q")
            else:
                if not has_valid_check_digit(vin):
                    problems.append(f"VIN {vin} has a wrong check digit (position 9)")
                if vin[:3] not in plain_wmis and (vin[:3], vin[11:14]) not in small_wmis:
                    problems.append(f"VIN {vin} does not carry a WMI of {manufacturer_label}")
                first = seen.get(vin)
                if first is not None:
                    problems.append(f"VIN {vin} already appears on line {first}")
                else:
                    seen[vin] = line
            if not brand:
                problems.append("brand is empty")
            elif len(brand) > MAX_NAME_CHARS:
                problems.append(f"brand is longer than {MAX_NAME_CHARS} characters")
            if not model:
                problems.append("model is empty")
            elif len(model) > MAX_NAME_CHARS:
                problems.append(f"model is longer than {MAX_NAME_CHARS} characters")
            production_date = None
            if produced:
                try:
                    production_date = parse_iso_date(produced, what="production_date")
                    if production_date > today:
                        problems.append(f"production_date {produced} is in the future")
                    elif len(known_dates) < MAX_KNOWN_DATES:
                        known_dates[produced] = production_date.isoformat()
                except ValueError as exc:
                    problems.append(str(exc))
            if problems:
                result.rejected += 1
                result.errors.append((line, "; ".join(problems)))
                continue
            if result.errors and not skip_invalid:
                continue  # the file will be refused: keep validating, stop writing
            yield vin, brand, model, production_date.isoformat() if production_date else None

    writer = _BULK_WRITERS.get(session.get_bind().dialect.name, _write_sqlite)
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as spool:
        # Phase 1: read and validate the whole file, writing nothing to the database.
        csv.writer(spool).writerows(valid_rows())
        if result.errors and not skip_invalid:
            lines = "\n".join(f"line {line}: {message}" for line, message in result.errors)
            raise ImportRejected(
                f"{result.rejected} invalid row(s); nothing was imported\n{lines}",
                details=result.as_dict()["errors"],
            )
        # Phase 2: the file is acceptable; write its valid rows in one transaction.
        spool.seek(0)
        try:
            added, updated, total = writer(session, manufacturer_id, _spooled(spool))
        except BaseException:
            session.rollback()
            raise
    result.added, result.updated = added, updated
    result.unchanged = total - added - updated
    audit.record(
        session,
        action="vehicles.imported",
        object_type="manufacturer",
        object_id=manufacturer_label,
        actor=actor,
        manufacturer_id=manufacturer_id,
        details={
            "file": Path(path).name,
            "added": result.added,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "rejected": result.rejected,
            "skip_invalid": skip_invalid,
        },
    )
    session.commit()
    return result


def _reporting(
    rows: Iterable[tuple[int, list[str]]], progress: Callable[[int, int], None]
) -> Iterator[tuple[int, list[str]]]:
    """Pass the file's rows through, telling ``progress`` every ``BATCH_SIZE`` rows (and at the
    end) how many were read and which line was reached. Only wraps the loop when asked to, so a
    plain import pays nothing for it."""
    count = line = 0
    for count, (line, cells) in enumerate(rows, start=1):
        if count % BATCH_SIZE == 0:
            progress(count, line)
        yield line, cells
    progress(count, line)


def _spooled(spool: IO[str]) -> Iterator[tuple[str, str, str, str | None]]:
    """The valid rows the validation phase spooled (an empty production date is no date)."""
    for vin, brand, model, produced in csv.reader(spool):
        yield vin, brand, model, produced or None


def _batches(rows: Iterator[tuple[str, str, str, str | None]]) -> Iterator[list[tuple[Any, ...]]]:
    while batch := list(islice(rows, BATCH_SIZE)):
        yield batch


def _count(session: Session, manufacturer_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(RegisteredVehicle)
            .where(RegisteredVehicle.manufacturer_id == manufacturer_id)
        )
        or 0
    )


def _write_sqlite(
    session: Session, manufacturer_id: int, rows: Iterator[tuple[str, str, str, str | None]]
) -> tuple[int, int, int]:
    """Upsert batches with ``executemany``; rows whose values did not change are not touched,
    so the cursor's change count is added + updated and the row count tells them apart."""
    # Take the write lock first (a write as the transaction's first statement waits for the lock
    # with the busy timeout), so a write committed by another connection before our first read
    # cannot leave this transaction with a stale snapshot, an error no timeout retries.
    session.execute(text("UPDATE manufacturers SET id = id WHERE id = :id"), {"id": manufacturer_id})
    before = _count(session, manufacturer_id)
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    changed = total = 0
    # The manufacturer's id is written into the statement (an int, so safe): each batch goes to
    # executemany as it is, with no per-row tuple built in Python.
    statement = (
        "INSERT INTO registered_vehicles (manufacturer_id, vin, brand, model, production_date) "  # noqa: S608
        f"VALUES ({int(manufacturer_id)}, ?, ?, ?, ?) "
        "ON CONFLICT (manufacturer_id, vin) DO UPDATE SET "
        "brand = excluded.brand, model = excluded.model, "
        "production_date = COALESCE(excluded.production_date, registered_vehicles.production_date) "
        "WHERE registered_vehicles.brand IS NOT excluded.brand "
        "OR registered_vehicles.model IS NOT excluded.model "
        "OR (excluded.production_date IS NOT NULL "
        "AND registered_vehicles.production_date IS NOT excluded.production_date)"
    )
    try:
        for batch in _batches(rows):
            cursor.executemany(statement, batch)
            changed += max(cursor.rowcount, 0)
            total += len(batch)
    finally:
        cursor.close()
    added = _count(session, manufacturer_id) - before
    return added, changed - added, total


def _write_postgresql(
    session: Session, manufacturer_id: int, rows: Iterator[tuple[str, str, str, str | None]]
) -> tuple[int, int, int]:
    """COPY into an unindexed temporary table, then merge with one set-based upsert.

    The merge takes the rows in VIN order: two imports of overlapping files (in whatever order
    their rows come) then lock the rows they share in the same order, so the second waits for
    the first instead of deadlocking with it."""
    connection = session.connection().connection.driver_connection
    total = 0
    with connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(
            "CREATE TEMPORARY TABLE registry_import "
            "(vin varchar(17), brand varchar(100), model varchar(100), production_date date) ON COMMIT DROP"
        )
        with cursor.copy("COPY registry_import (vin, brand, model, production_date) FROM STDIN") as copy:
            for batch in _batches(rows):
                buffer = io.StringIO()
                for vin, brand, model, produced in batch:
                    buffer.write(f"{vin}\t{_escape_copy(brand)}\t{_escape_copy(model)}\t{produced or chr(92) + 'N'}\n")
                copy.write(buffer.getvalue())
                total += len(batch)
        cursor.execute(
            "WITH merged AS ("
            " INSERT INTO registered_vehicles (manufacturer_id, vin, brand, model, production_date)"
            " SELECT %s, vin, brand, model, production_date FROM registry_import ORDER BY vin"
            " ON CONFLICT (manufacturer_id, vin) DO UPDATE SET"
            "  brand = excluded.brand, model = excluded.model,"
            "  production_date = COALESCE(excluded.production_date, registered_vehicles.production_date)"
            " WHERE registered_vehicles.brand IS DISTINCT FROM excluded.brand"
            "  OR registered_vehicles.model IS DISTINCT FROM excluded.model"
            "  OR (excluded.production_date IS NOT NULL"
            "   AND registered_vehicles.production_date IS DISTINCT FROM excluded.production_date)"
            " RETURNING (xmax = 0) AS inserted)"
            " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged",
            (manufacturer_id,),
        )
        added, updated = cursor.fetchone()
        cursor.execute("DROP TABLE registry_import")
    return int(added), int(updated), total


def _escape_copy(text: str) -> str:
    """Escape a value for PostgreSQL's COPY text format."""
    if not any(ch in text for ch in "\\\t\n\r"):
        return text
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


_BULK_WRITERS = {"sqlite": _write_sqlite, "postgresql": _write_postgresql}
