"""The production registry import (services.registry.import_vehicles): CSV and XLSX, exact counts,
all or nothing with every bad line named, and ``skip_invalid``."""

from __future__ import annotations

import csv
import datetime as dt
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from issuer.errors import ImportRejected, NotFound
from issuer.models import Manufacturer, RegisteredVehicle
from issuer.services import registry
from issuer.services.registry import ImportResult, import_vehicles
from tests import factories
from tests.factories import make_vin

HEADER = ("vin", "brand", "model", "production_date")
V = [make_vin("LGX", n) for n in range(10)]  # V[0] .. V[9], all valid for WMI LGX
SMALL = make_vin("LA9", 7, plant="123")  # the small maker's plant code held by the test manufacturer


def write_table(path: Path, rows: Sequence[Sequence[object]], *, encoding: str = "utf-8") -> Path:
    """Write ``rows`` (the first is the header) as XLSX when the name ends in .xlsx, else as CSV."""
    if path.suffix == ".xlsx":
        workbook = Workbook()
        sheet = workbook.active
        assert sheet is not None
        for row in rows:
            sheet.append(list(row))
        workbook.save(path)
    else:
        with path.open("w", encoding=encoding, newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)
    return path


def wrong_check_digit(vin: str) -> str:
    wrong = "1" if vin[8] != "1" else "2"
    return vin[:8] + wrong + vin[9:]


@pytest.fixture
def maker(session: Session) -> Manufacturer:
    return factories.manufacturer(session, wmis=("LGX", "LA9/123"))


def stored(session: Session, manufacturer: Manufacturer) -> dict[str, tuple[str, str, dt.date | None]]:
    rows = session.execute(
        select(
            RegisteredVehicle.vin, RegisteredVehicle.brand, RegisteredVehicle.model, RegisteredVehicle.production_date
        ).where(RegisteredVehicle.manufacturer_id == manufacturer.id)
    )
    return {vin: (brand, model, produced) for vin, brand, model, produced in rows}


def total_rows(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(RegisteredVehicle)) or 0


def counts(result: ImportResult) -> tuple[int, int, int, int]:
    return result.added, result.updated, result.unchanged, result.rejected


def run(session: Session, manufacturer: Manufacturer, path: Path, **options: bool) -> ImportResult:
    return import_vehicles(session=session, manufacturer_code=manufacturer.code, path=path, **options)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_import_adds_every_row_when_file_is_valid(
    session: Session, maker: Manufacturer, tmp_path: Path, suffix: str
) -> None:
    path = write_table(
        tmp_path / f"registry{suffix}",
        [HEADER, (V[0], "东岳", "DY-S7", "2025-03-01"), (V[1], "东岳", "DY-E5 EV", ""), (SMALL, "江南", "JN-R2", "")],
    )

    result = run(session, maker, path)

    assert counts(result) == (3, 0, 0, 0)
    assert result.errors == []
    assert stored(session, maker) == {
        V[0]: ("东岳", "DY-S7", dt.date(2025, 3, 1)),
        V[1]: ("东岳", "DY-E5 EV", None),
        SMALL: ("江南", "JN-R2", None),
    }


def test_import_reads_real_date_cells_when_file_is_xlsx(session: Session, maker: Manufacturer, tmp_path: Path) -> None:
    path = write_table(
        tmp_path / "registry.xlsx",
        [HEADER, (V[0], "B", "M", dt.date(2025, 4, 2)), (V[1], "B", "M", dt.datetime(2024, 12, 31, 0, 0))],
    )

    result = run(session, maker, path)

    assert counts(result) == (2, 0, 0, 0)
    assert stored(session, maker) == {V[0]: ("B", "M", dt.date(2025, 4, 2)), V[1]: ("B", "M", dt.date(2024, 12, 31))}


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_import_matches_columns_by_name_when_order_case_extras_and_bom_differ(
    session: Session, maker: Manufacturer, tmp_path: Path, suffix: str
) -> None:
    path = write_table(
        tmp_path / f"registry{suffix}",
        [
            (" Model", "colour", "Production_Date", "VIN ", "BRAND"),
            ("Trail\\Blazer,\tLWB", "red", "2025-01-31", f"  {V[2].lower()} ", " 岳峰 "),
        ],
        encoding="utf-8-sig",
    )

    result = run(session, maker, path)

    assert counts(result) == (1, 0, 0, 0)
    assert stored(session, maker) == {V[2]: ("岳峰", "Trail\\Blazer,\tLWB", dt.date(2025, 1, 31))}


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_reimport_counts_added_updated_unchanged_exactly_when_some_rows_change(
    session: Session, maker: Manufacturer, tmp_path: Path, suffix: str
) -> None:
    first = [
        (V[0], "B", "M1", "2025-01-01"),
        (V[1], "B", "M1", ""),
        (V[2], "B", "M1", "2025-01-01"),
        (V[3], "B", "M1", "2025-01-01"),
        (V[4], "B", "M1", "2025-01-01"),
        (V[5], "B", "M1", "2025-01-01"),
        (V[9], "B", "M1", "2025-01-01"),
    ]
    assert counts(run(session, maker, write_table(tmp_path / f"first{suffix}", [HEADER, *first]))) == (7, 0, 0, 0)
    second = [
        (V[0], "B", "M1", "2025-01-01"),  # identical
        (V[1].lower(), "B", "M1", ""),  # identical (no date either time), VIN in lower case
        (V[2], "B2", "M1", "2025-01-01"),  # brand changed
        (V[3], "B", "M2", "2025-01-01"),  # model changed
        (V[4], "B", "M1", "2025-02-01"),  # date changed
        (V[5], "B", "M1", ""),  # no date given: the stored date is kept
        (V[6], "B", "M1", "2025-03-01"),  # new
        (V[7], "B", "M1", ""),  # new
    ]

    result = run(session, maker, write_table(tmp_path / f"second{suffix}", [HEADER, *second]))

    assert counts(result) == (2, 3, 3, 0)
    assert stored(session, maker) == {
        V[0]: ("B", "M1", dt.date(2025, 1, 1)),
        V[1]: ("B", "M1", None),
        V[2]: ("B2", "M1", dt.date(2025, 1, 1)),
        V[3]: ("B", "M2", dt.date(2025, 1, 1)),
        V[4]: ("B", "M1", dt.date(2025, 2, 1)),
        V[5]: ("B", "M1", dt.date(2025, 1, 1)),
        V[6]: ("B", "M1", dt.date(2025, 3, 1)),
        V[7]: ("B", "M1", None),
        V[9]: ("B", "M1", dt.date(2025, 1, 1)),  # not in the second file: left alone
    }
    again = run(session, maker, write_table(tmp_path / f"third{suffix}", [HEADER, *second]))
    assert counts(again) == (0, 0, 8, 0)


def test_import_accepts_production_date_when_it_is_today_in_china(
    session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    path = write_table(tmp_path / "registry.csv", [HEADER, (V[0], "B", "M", "2026-09-15")])

    assert counts(run(session, maker, path)) == (1, 0, 0, 0)


# (row on line 3, a fragment of the reason)
BAD_ROWS = {
    "vin_too_short": (("LGX1234", "B", "M", ""), "is not 17 characters"),
    "vin_with_letter_o": ((V[5][:4] + "O" + V[5][5:], "B", "M", ""), "is not 17 characters"),
    "wrong_check_digit": ((wrong_check_digit(V[5]), "B", "M", ""), "wrong check digit"),
    "another_makers_wmi": ((make_vin("LRW", 5), "B", "M", ""), "does not carry a WMI"),
    "small_maker_wrong_plant": ((make_vin("LA9", 5, plant="124"), "B", "M", ""), "does not carry a WMI"),
    "duplicate_of_line_2": ((V[0], "B", "M", ""), "already appears on line 2"),
    "empty_brand": ((V[5], "", "M", ""), "brand is empty"),
    "empty_model": ((V[5], "B", " ", ""), "model is empty"),
    "brand_too_long": ((V[5], "B" * 101, "M", ""), "brand is longer than 100 characters"),
    "impossible_date": ((V[5], "B", "M", "2025-02-30"), "is not a date"),
    "day_first_date": ((V[5], "B", "M", "15/09/2025"), "is not a date"),
    "future_date": ((V[5], "B", "M", "2026-09-16"), "is in the future"),
}


@pytest.mark.parametrize("case", BAD_ROWS.values(), ids=BAD_ROWS.keys())
def test_import_writes_nothing_and_names_the_line_when_one_row_is_bad(
    session: Session,
    maker: Manufacturer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[tuple[str, ...], str],
) -> None:
    bad_row, reason = case
    factories.manufacturer(session, wmis=("LRW", "LA9/124"))  # the holder of the foreign VINs below
    factories.register(session, maker, [V[0]], brand="Old", model="Old", production_date=dt.date(2024, 1, 1))
    before = total_rows(session)
    monkeypatch.setattr(registry, "BATCH_SIZE", 1)  # the good line 2 is written before line 3 is read
    path = write_table(
        tmp_path / "registry.csv", [HEADER, (V[0], "New", "New", "2025-01-01"), bad_row, (V[8], "B", "M", "")]
    )

    with pytest.raises(ImportRejected) as caught:
        run(session, maker, path)

    assert [d["line"] for d in caught.value.details] == [3]
    assert reason in caught.value.details[0]["message"]
    assert "line 3: " in caught.value.message
    assert "nothing was imported" in caught.value.message
    assert total_rows(session) == before
    assert stored(session, maker) == {V[0]: ("Old", "Old", dt.date(2024, 1, 1))}


def test_import_names_every_bad_line_when_several_rows_are_bad(
    session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    rows: list[Sequence[str]] = [HEADER, (V[0], "B", "M", "")]  # line 2 is good
    bad_lines = []
    for offset, (bad_row, _reason) in enumerate(BAD_ROWS.values()):
        rows.append(bad_row)
        bad_lines.append(3 + 2 * offset)
        rows.append((make_vin("LGX", 100 + offset), "B", "M", ""))
    rows = rows[:-1]  # end on a bad row
    path = write_table(tmp_path / "registry.csv", rows)

    with pytest.raises(ImportRejected) as caught:
        run(session, maker, path)

    assert [d["line"] for d in caught.value.details] == bad_lines
    for (_row, reason), detail in zip(BAD_ROWS.values(), caught.value.details, strict=True):
        assert reason in detail["message"]
    for line in bad_lines:
        assert f"\nline {line}: " in caught.value.message
    assert caught.value.message.startswith(f"{len(bad_lines)} invalid row(s); nothing was imported")
    assert total_rows(session) == 0


def test_import_lists_every_problem_of_a_row_when_a_row_has_several(
    session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    path = write_table(tmp_path / "registry.csv", [HEADER, (wrong_check_digit(V[0]), "", "M", "2027-01-01")])

    with pytest.raises(ImportRejected) as caught:
        run(session, maker, path)

    message = caught.value.details[0]["message"]
    assert "wrong check digit" in message
    assert "brand is empty" in message
    assert "is in the future" in message


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_import_counts_physical_lines_when_blank_rows_are_skipped(
    session: Session, maker: Manufacturer, tmp_path: Path, suffix: str
) -> None:
    path = write_table(
        tmp_path / f"registry{suffix}", [HEADER, (V[0], "B", "M", ""), ("", "", "", ""), (V[1], "", "M", "")]
    )

    with pytest.raises(ImportRejected) as caught:
        run(session, maker, path)

    assert [d["line"] for d in caught.value.details] == [4]


def test_import_writes_valid_rows_and_reports_invalid_ones_when_skipping_invalid(
    session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    factories.register(session, maker, [V[0]], brand="Old", model="Old", production_date=None)
    path = write_table(
        tmp_path / "registry.csv",
        [
            HEADER,
            (V[0], "New", "New", ""),  # line 2: updates
            (wrong_check_digit(V[1]), "B", "M", ""),  # line 3: bad
            (V[2], "B", "M", ""),  # line 4: added
            (V[2], "B", "M", ""),  # line 5: duplicate of line 4
            (V[3], "B", "M", "2030-01-01"),  # line 6: future
        ],
    )

    result = run(session, maker, path, skip_invalid=True)

    assert counts(result) == (1, 1, 0, 3)
    assert [line for line, _message in result.errors] == [3, 5, 6]
    assert "already appears on line 4" in result.errors[1][1]
    assert stored(session, maker) == {V[0]: ("New", "New", None), V[2]: ("B", "M", None)}


def test_import_refuses_file_when_header_lacks_a_required_column(
    session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    path = write_table(tmp_path / "registry.csv", [("vin", "brand", "production_date"), (V[0], "B", "2025-01-01")])

    with pytest.raises(ImportRejected, match=r"line 1: the header lacks the column\(s\) model"):
        run(session, maker, path)
    assert total_rows(session) == 0


def test_import_refuses_file_when_a_column_appears_twice(session: Session, maker: Manufacturer, tmp_path: Path) -> None:
    path = write_table(tmp_path / "registry.csv", [("vin", "brand", "model", "VIN"), (V[0], "B", "M", V[1])])

    with pytest.raises(ImportRejected, match="vin appear more than once"):
        run(session, maker, path)
    assert total_rows(session) == 0


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_import_refuses_file_when_it_is_empty(
    session: Session, maker: Manufacturer, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"registry{suffix}"
    if suffix == ".csv":
        path.write_bytes(b"")
    else:
        write_table(path, [])

    with pytest.raises(ImportRejected, match="empty"):
        run(session, maker, path)


def test_import_refuses_file_when_csv_is_not_utf8(session: Session, maker: Manufacturer, tmp_path: Path) -> None:
    path = tmp_path / "registry.csv"
    path.write_bytes(f"vin,brand,model,production_date\n{V[0]},东岳,DY-S7,2025-01-01\n".encode("gbk"))

    with pytest.raises(ImportRejected, match="not UTF-8"):
        run(session, maker, path)
    assert total_rows(session) == 0


def _zip_with(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


@pytest.mark.parametrize(
    "make_file",
    [
        lambda p: p.write_bytes(b"PK\x03\x04" + b"not a zip archive" * 20),
        lambda p: _zip_with(p, {"readme.txt": "a plain zip archive"}),
        lambda p: _zip_with(p, {"[Content_Types].xml": "<broken"}),
    ],
    ids=["pk_then_garbage", "plain_zip", "zip_with_broken_xml"],
)
@pytest.mark.parametrize("name", ["registry.xlsx", "registry.csv"])
def test_import_refuses_file_when_it_starts_with_pk_but_is_no_xlsx(
    session: Session, maker: Manufacturer, tmp_path: Path, make_file, name: str
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    make_file(path)

    with pytest.raises(ImportRejected, match="not a readable XLSX workbook"):
        run(session, maker, path)
    assert total_rows(session) == 0


@pytest.mark.parametrize("name", ["registry.csv", "registry"])
def test_import_reads_xlsx_when_its_name_lacks_the_xlsx_suffix(
    session: Session, maker: Manufacturer, tmp_path: Path, name: str
) -> None:
    write_table(tmp_path / "registry.xlsx", [HEADER, (V[0], "B", "M", dt.date(2025, 1, 1))])
    path = (tmp_path / "registry.xlsx").rename(tmp_path / name)

    assert counts(run(session, maker, path)) == (1, 0, 0, 0)


def test_import_raises_not_found_when_manufacturer_is_unknown(session: Session, tmp_path: Path) -> None:
    path = write_table(tmp_path / "registry.csv", [HEADER, (V[0], "B", "M", "")])

    with pytest.raises(NotFound, match="NOPE"):
        import_vehicles(session=session, manufacturer_code="NOPE", path=path)


def test_import_refuses_when_file_does_not_exist(session: Session, maker: Manufacturer, tmp_path: Path) -> None:
    with pytest.raises(ImportRejected, match="no such file"):
        run(session, maker, tmp_path / "missing.csv")


def test_import_refuses_when_manufacturer_holds_no_wmi(session: Session, tmp_path: Path) -> None:
    sales = factories.manufacturer(session, wmis=(), kind="sales_company")
    path = write_table(tmp_path / "registry.csv", [HEADER, (V[0], "B", "M", "")])

    with pytest.raises(ImportRejected, match="holds no WMI"):
        run(session, sales, path)
    assert total_rows(session) == 0


# -- the write lock is held only to write -------------------------------------------------------


def test_the_validation_phase_holds_no_write_lock_so_other_writes_go_through(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the file is read and validated, another connection can write at once (on SQLite, the
    one writer): an import no longer makes sign-ins wait for it. A database of the test's own, as
    the shared test connection holds the lock itself."""
    import uuid

    from sqlalchemy import text

    from issuer.db import Database, make_engine
    from issuer.migrate import upgrade
    from tests.conftest import TEST_DATABASE_URL

    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'lock.db'}"
        admin = None
    else:
        admin = make_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
        name = f"issuer_lock_{uuid.uuid4().hex[:10]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_engine(TEST_DATABASE_URL).url.set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    probe_engine = make_engine(url)
    try:
        upgrade(database.engine)
        with database.session() as setup:
            code = factories.manufacturer(setup, "LOCK", wmis=("LGX",)).code
        monkeypatch.setattr(registry, "BATCH_SIZE", 2)
        path = write_table(tmp_path / "registry.csv", [HEADER, *[(make_vin("LGX", n), "B", "M", "") for n in range(9)]])
        writes: list[bool] = []

        def another_write(_rows: int, _line: int) -> None:
            with probe_engine.connect() as probe:
                try:
                    if probe.dialect.name == "sqlite":
                        probe.exec_driver_sql("PRAGMA busy_timeout=0")
                    else:
                        probe.exec_driver_sql("SET lock_timeout = '200ms'")
                    probe.execute(text("UPDATE manufacturers SET name = name WHERE code = :c"), {"c": code})
                    probe.commit()
                    writes.append(True)
                except Exception:  # "database is locked" / lock timeout
                    probe.rollback()
                    writes.append(False)

        with database.session() as session:
            result = import_vehicles(session=session, manufacturer_code=code, path=path, progress=another_write)
        assert result.added == 9
        assert len(writes) == 5  # every 2 rows, and at the end of the file
        assert all(writes), writes
    finally:
        database.engine.dispose()
        probe_engine.dispose()
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def test_an_xlsx_unpacking_beyond_the_limit_is_refused_before_it_is_parsed(
    session: Session, maker: Manufacturer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr(registry, "MAX_UNPACKED_BYTES", 1024 * 1024)
    path = write_table(tmp_path / "registry.xlsx", [HEADER, (make_vin("LGX", 1), "B", "M", "")])
    source = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    with zipfile.ZipFile(tmp_path / "bomb.xlsx", "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"<sheetData>", b"<sheetData>" + b" " * (2 * 1024 * 1024), 1)
            bomb.writestr(info.filename, data)
    with pytest.raises(ImportRejected, match="unpacks to 2 MB, more than the 1 MB allowed"):
        import_vehicles(session=session, manufacturer_code=maker.code, path=tmp_path / "bomb.xlsx")
    assert session.scalar(select(func.count()).select_from(RegisteredVehicle)) == 0
