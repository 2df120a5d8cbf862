"""The outlet import (services.outlets.import_outlets): CSV and XLSX, brands, versioned history,
all or nothing with every bad line named."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from issuer.errors import ImportRejected, NotFound
from issuer.models import Manufacturer, Outlet, OutletVersion
from issuer.models.outlet import OUTLET_FIELDS
from issuer.services.outlets import OutletImportResult, find_outlet, import_outlets
from tests import factories
from tests.conftest import TODAY
from tests.services.test_registry_import import write_table

HEADER = (
    "code",
    "country",
    "name",
    "provider",
    "address",
    "city",
    "phone",
    "email",
    "brands",
    "valid_from",
    "valid_to",
)
DEFAULTS: dict[str, Any] = {
    "country": "KZ",
    "name": "Service Almaty",
    "provider": "Almaty Motors LLP",
    "address": "12 Raiymbek Ave",
    "city": "Almaty",
    "phone": "+7 727 300 1001",
    "email": "service@almaty-motors.kz",
    "brands": "",
    "valid_from": "2025-01-01",
    "valid_to": "",
}


def row(code: str, **changes: Any) -> tuple[Any, ...]:
    values = {"code": code, **DEFAULTS, **changes}
    return tuple(values[column] for column in HEADER)


@pytest.fixture
def maker(session: Session) -> Manufacturer:
    return factories.manufacturer(session)


def run(session: Session, manufacturer: Manufacturer, path: Path) -> OutletImportResult:
    return import_outlets(session=session, manufacturer_code=manufacturer.code, path=path, actor="importer")


def counts(result: OutletImportResult) -> tuple[int, int, int, int]:
    return result.added, result.updated, result.unchanged, result.rejected


def versions(session: Session, outlet: Outlet) -> list[dict[str, Any]]:
    """Every recorded version of the outlet, read afresh from the database."""
    session.expire_all()
    records = session.scalars(
        select(OutletVersion).where(OutletVersion.outlet_id == outlet.id).order_by(OutletVersion.version)
    )
    return [
        {"version": v.version, "change": v.change, "recorded_by": v.recorded_by}
        | {name: getattr(v, name) for name in OUTLET_FIELDS}
        for v in records
    ]


def table_sizes(session: Session) -> tuple[int, int]:
    outlets = session.scalar(select(func.count()).select_from(Outlet)) or 0
    history = session.scalar(select(func.count()).select_from(OutletVersion)) or 0
    return outlets, history


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_import_adds_outlets_with_a_first_version_when_file_is_valid(
    session: Session, maker: Manufacturer, tmp_path: Path, suffix: str
) -> None:
    date = dt.date(2025, 3, 1) if suffix == ".xlsx" else "2025-03-01"  # a real date cell in the workbook
    path = write_table(
        tmp_path / f"outlets{suffix}",
        [
            HEADER,
            row("kz-ala-01", country="kz", brands=" 岳峰 ；东岳 ; ", valid_from=date, valid_to="2027-12-31"),
            row("AE-DXB-01", country="AE", name="  Service   Dubai ", email="", brands=""),
        ],
    )

    result = run(session, maker, path)

    assert counts(result) == (2, 0, 0, 0)
    almaty = find_outlet(session, maker, "KZ-ALA-01")
    assert (almaty.code, almaty.country, almaty.brands) == ("KZ-ALA-01", "KZ", "东岳;岳峰")
    assert (almaty.valid_from, almaty.valid_to, almaty.active) == (dt.date(2025, 3, 1), dt.date(2027, 12, 31), True)
    dubai = find_outlet(session, maker, "ae-dxb-01")
    assert (dubai.name, dubai.email, dubai.brands, dubai.valid_to) == ("Service Dubai", "", "", None)
    assert [(v["version"], v["change"], v["recorded_by"]) for v in versions(session, almaty)] == [
        (1, "import", "importer")
    ]


def test_import_covers_listed_brands_only_when_brands_are_given_and_all_when_empty(
    session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    path = write_table(tmp_path / "outlets.csv", [HEADER, row("SOME", brands="东岳;YueFeng"), row("ALL", brands="")])
    run(session, maker, path)

    some = find_outlet(session, maker, "SOME").coverage("SOME")
    every = find_outlet(session, maker, "ALL").coverage("ALL")
    assert some.serves(country="KZ", brand="东岳", on=TODAY)
    assert some.serves(country="KZ", brand="yuefeng", on=TODAY)
    assert not some.serves(country="KZ", brand="江南", on=TODAY)
    assert every.serves(country="KZ", brand="江南", on=TODAY)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_reimport_records_a_new_version_only_when_an_outlet_changed(
    session: Session, maker: Manufacturer, tmp_path: Path, suffix: str
) -> None:
    first = [row("SAME", brands="东岳;岳峰"), row("MOVED"), row("RENAMED"), row("ENDED")]
    assert counts(run(session, maker, write_table(tmp_path / f"a{suffix}", [HEADER, *first]))) == (4, 0, 0, 0)
    outlets = {code: find_outlet(session, maker, code) for code in ("SAME", "MOVED", "RENAMED", "ENDED")}
    history_before = {code: versions(session, outlet) for code, outlet in outlets.items()}
    second = [
        row("same", brands="岳峰; 东岳"),  # the same brands in another order and spacing: unchanged
        row("MOVED", address="99 Abay Ave"),
        row("RENAMED", name="Service Almaty North", email="north@almaty-motors.kz"),
        row("ENDED", valid_to="2026-12-31"),
        row("NEW", country="UZ"),
    ]

    result = run(session, maker, write_table(tmp_path / f"b{suffix}", [HEADER, *second]))

    assert counts(result) == (1, 3, 1, 0)
    assert [v["version"] for v in versions(session, outlets["SAME"])] == [1]
    for code in ("MOVED", "RENAMED", "ENDED"):
        history = versions(session, outlets[code])
        assert [v["version"] for v in history] == [1, 2]
        assert history[0] == history_before[code][0]  # what a letter printed from version 1 never changes
        assert history[1]["change"] == "import"
        assert find_outlet(session, maker, code).version == 2
    assert versions(session, outlets["MOVED"])[1]["address"] == "99 Abay Ave"
    assert versions(session, outlets["MOVED"])[0]["address"] == DEFAULTS["address"]
    assert find_outlet(session, maker, "ENDED").valid_to == dt.date(2026, 12, 31)

    again = run(session, maker, write_table(tmp_path / f"c{suffix}", [HEADER, *second]))
    assert counts(again) == (0, 0, 5, 0)
    assert table_sizes(session) == (5, 8)


def test_import_leaves_outlets_alone_when_they_are_not_in_the_file(
    session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    kept = factories.outlet(session, maker, code="RU-MOW-01", country="RU")
    before = versions(session, kept)

    run(session, maker, write_table(tmp_path / "outlets.csv", [HEADER, row("KZ-ALA-01")]))

    assert versions(session, kept) == before
    assert find_outlet(session, maker, "RU-MOW-01").country == "RU"


def test_import_touches_only_its_manufacturer_when_another_uses_the_same_code(
    session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    other = factories.manufacturer(session, wmis=("LRW",))
    theirs = factories.outlet(session, other, code="KZ-ALA-01", country="KZ")
    before = versions(session, theirs)

    result = run(session, maker, write_table(tmp_path / "outlets.csv", [HEADER, row("KZ-ALA-01", name="Ours")]))

    assert counts(result) == (1, 0, 0, 0)
    assert versions(session, theirs) == before
    assert find_outlet(session, maker, "KZ-ALA-01").name == "Ours"


# the row on line 3, a fragment of the reason
BAD_ROWS = {
    "bloc_eu": (row("B", country="EU"), "'EU' is not an ISO 3166-1 alpha-2 country code"),
    "unassigned_xx": (row("B", country="XX"), "'XX' is not an ISO 3166-1"),
    "china_itself": (row("B", country="CN"), "'CN' is not an ISO 3166-1"),
    "empty_country": (row("B", country=""), "country"),
    "valid_to_before_valid_from": (row("B", valid_from="2026-01-02", valid_to="2026-01-01"), "before valid_from"),
    "duplicate_code": (row("kz-1"), "already appears on line 2"),
    "empty_name": (row("B", name=" "), "name: must not be empty"),
    "empty_provider": (row("B", provider=""), "provider: must not be empty"),
    "empty_address": (row("B", address=""), "address: must not be empty"),
    "empty_valid_from": (row("B", valid_from=""), "valid_from: must not be empty"),
    "empty_code": (row(""), "outlet code"),
    "code_with_space": (row("KZ 2"), "outlet code"),
    "bad_email": (row("B", email="service.almaty-motors.kz"), "is not an e-mail address"),
    "bad_valid_to": (row("B", valid_to="31.12.2026"), "is not a date"),
    "name_too_long": (row("B", name="N" * 201), "longer than 200 characters"),
}


@pytest.mark.parametrize("case", BAD_ROWS.values(), ids=BAD_ROWS.keys())
def test_import_writes_nothing_and_names_the_line_when_one_row_is_bad(
    session: Session, maker: Manufacturer, tmp_path: Path, case: tuple[tuple[Any, ...], str]
) -> None:
    bad_row, reason = case
    existing = factories.outlet(session, maker, code="KZ-1", country="KZ")
    history = versions(session, existing)
    sizes = table_sizes(session)
    path = write_table(tmp_path / "outlets.csv", [HEADER, row("KZ-1", name="Changed"), bad_row, row("NEW")])

    with pytest.raises(ImportRejected) as caught:
        run(session, maker, path)

    assert [d["line"] for d in caught.value.details] == [3]
    assert reason in caught.value.details[0]["message"]
    assert "line 3: " in caught.value.message
    assert table_sizes(session) == sizes
    assert versions(session, existing) == history
    assert find_outlet(session, maker, "KZ-1").name == existing.name


def test_import_names_every_bad_line_when_several_rows_are_bad(
    session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    rows = [HEADER, row("KZ-1")]
    for n, (bad_row, _reason) in enumerate(BAD_ROWS.values()):
        rows += [bad_row if bad_row[0] != "B" else (f"B{n}", *bad_row[1:]), row(f"GOOD-{n}")]

    with pytest.raises(ImportRejected) as caught:
        run(session, maker, write_table(tmp_path / "outlets.csv", rows))

    bad_lines = [3 + 2 * n for n in range(len(BAD_ROWS))]
    assert [d["line"] for d in caught.value.details] == bad_lines
    for (_row, reason), detail in zip(BAD_ROWS.values(), caught.value.details, strict=True):
        assert reason in detail["message"]
    assert caught.value.message.startswith(f"{len(BAD_ROWS)} invalid row(s); nothing was imported")
    assert table_sizes(session) == (0, 0)


def test_import_accepts_file_when_optional_columns_are_absent(
    session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    path = write_table(
        tmp_path / "outlets.csv",
        [("Valid_From", "ADDRESS", "provider", "name", "country", "code"), ("2025-01-01", "1 Rd", "P", "N", "th", "T")],
    )

    assert counts(run(session, maker, path)) == (1, 0, 0, 0)
    outlet = find_outlet(session, maker, "T")
    assert (outlet.country, outlet.brands, outlet.email, outlet.valid_to) == ("TH", "", "", None)


def test_import_refuses_file_when_header_lacks_a_required_column(
    session: Session, maker: Manufacturer, tmp_path: Path
) -> None:
    header = tuple(c for c in HEADER if c != "valid_from")
    path = write_table(tmp_path / "outlets.csv", [header, (*row("A")[:-2], "")])

    with pytest.raises(ImportRejected, match=r"line 1: the header lacks the column\(s\) valid_from"):
        run(session, maker, path)
    assert table_sizes(session) == (0, 0)


def test_import_raises_not_found_when_manufacturer_is_unknown(session: Session, tmp_path: Path) -> None:
    path = write_table(tmp_path / "outlets.csv", [HEADER, row("A")])

    with pytest.raises(NotFound):
        import_outlets(session=session, manufacturer_code="NOPE", path=path)


def test_import_refuses_when_file_does_not_exist(session: Session, maker: Manufacturer, tmp_path: Path) -> None:
    with pytest.raises(ImportRejected, match="no such file"):
        run(session, maker, tmp_path / "missing.xlsx")
