"""Manufacturers (tenants and their WMIs), exporters and the manufacturers' negative lists."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from issuer import clock
from issuer.errors import Conflict, NotFound, ValidationFailed
from issuer.models import Exporter, ExporterBlock, Manufacturer, ManufacturerWmi
from issuer.services import organisations
from tests import factories


def create_manufacturer(session: Session, **changes: object) -> Manufacturer:
    values: dict[str, object] = {
        "code": "GWM",
        "name": "长城汽车股份有限公司",
        "name_en": "Great Wall Motor Company Limited",
        "uscc": factories.uscc(42),
        "wmis": ("LGW",),
    }
    values.update(changes)
    return organisations.create_manufacturer(session=session, **values)  # type: ignore[arg-type]


def sizes(session: Session) -> tuple[int, ...]:
    return tuple(
        session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Manufacturer, ManufacturerWmi, Exporter, ExporterBlock)
    )


def wrong_check_character(uscc: str) -> str:
    return uscc[:17] + ("A" if uscc[17] != "A" else "B")


def test_create_manufacturer_stores_normalised_fields_when_input_is_valid(session: Session) -> None:
    created = create_manufacturer(
        session,
        code=" gwm ",
        name=" 长城汽车股份有限公司 ",
        name_en="Great  Wall Motor\tCompany Limited",
        uscc=f" {factories.uscc(42).lower()} ",
        wmis=("lgw", " la9/123 "),
    )

    stored = organisations.get_manufacturer(session, "GWM")
    assert stored.id == created.id
    assert (stored.code, stored.name, stored.name_en) == (
        "GWM",
        "长城汽车股份有限公司",
        "Great Wall Motor Company Limited",
    )
    assert stored.uscc == factories.uscc(42)
    assert [str(w) for w in stored.wmi_values()] == ["LGW", "LA9/123"]
    assert stored.type == "vehicle_manufacturer"
    assert stored.may_issue


@pytest.mark.parametrize(
    ("kind", "may_issue"),
    [
        ("vehicle_manufacturer", True),
        ("modified_vehicle_manufacturer", False),
        ("sales_company", False),
        ("overseas_sales_department", False),
        ("overseas_dealer", False),
    ],
)
def test_create_manufacturer_records_type_when_type_is_known(session: Session, kind: str, may_issue: bool) -> None:
    created = create_manufacturer(session, manufacturer_type=kind)

    assert (created.type, created.may_issue) == (kind, may_issue)


def test_create_manufacturer_allows_two_small_makers_when_their_plant_codes_differ(session: Session) -> None:
    create_manufacturer(session, code="A", uscc=factories.uscc(1), wmis=("LA9/123",))
    create_manufacturer(session, code="B", uscc=factories.uscc(2), wmis=("LA9/124",))

    assert [str(w) for w in organisations.get_manufacturer(session, "B").wmi_values()] == ["LA9/124"]


REFUSALS = {
    "duplicate_code": ({"code": "gwm", "uscc": factories.uscc(2), "wmis": ("LRW",)}, Conflict, "code GWM"),
    "duplicate_uscc": ({"code": "OTHER", "wmis": ("LRW",)}, Conflict, "credit code"),
    "uscc_bad_check": (
        {"code": "OTHER", "uscc": wrong_check_character(factories.uscc(2)), "wmis": ("LRW",)},
        ValidationFailed,
        "check character",
    ),
    "uscc_short": ({"code": "OTHER", "uscc": "91310000123", "wmis": ("LRW",)}, ValidationFailed, "18 characters"),
    "wmi_of_another": ({"code": "OTHER", "uscc": factories.uscc(2), "wmis": ("lgw",)}, Conflict, "belongs to"),
    "second_wmi_of_another": (
        {"code": "OTHER", "uscc": factories.uscc(2), "wmis": ("LRW", "LGW")},
        Conflict,
        "WMI LGW already belongs to manufacturer GWM",
    ),
    "small_maker_taken": (
        {"code": "OTHER", "uscc": factories.uscc(2), "wmis": ("LA9/123",)},
        Conflict,
        "LA9/123 already belongs",
    ),
    "small_maker_without_plant": (
        {"code": "OTHER", "uscc": factories.uscc(2), "wmis": ("LA9",)},
        ValidationFailed,
        "small-maker WMI",
    ),
    "plant_on_plain_wmi": (
        {"code": "OTHER", "uscc": factories.uscc(2), "wmis": ("LRW/123",)},
        ValidationFailed,
        "not a small-maker WMI",
    ),
    "wmi_given_twice": (
        {"code": "OTHER", "uscc": factories.uscc(2), "wmis": ("LRW", "lrw")},
        ValidationFailed,
        "given twice",
    ),
    "wmi_with_letter_o": ({"code": "OTHER", "uscc": factories.uscc(2), "wmis": ("LOW",)}, ValidationFailed, "WMI"),
    "unknown_type": (
        {"code": "OTHER", "uscc": factories.uscc(2), "wmis": ("LRW",), "manufacturer_type": "dealer"},
        ValidationFailed,
        "'dealer' is not one of vehicle_manufacturer",
    ),
    "empty_name": (
        {"code": "OTHER", "uscc": factories.uscc(2), "wmis": ("LRW",), "name": " "},
        ValidationFailed,
        "name",
    ),
    "code_with_space": ({"code": "O T", "uscc": factories.uscc(2), "wmis": ("LRW",)}, ValidationFailed, "code"),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_create_manufacturer_writes_nothing_when_input_is_refused(
    session: Session, case: tuple[dict[str, object], type[Exception], str]
) -> None:
    changes, error, fragment = case
    create_manufacturer(session, wmis=("LGW", "LA9/123"))  # GWM, factories.uscc(42)
    before = sizes(session)

    with pytest.raises(error, match=fragment):
        create_manufacturer(session, **changes)

    session.rollback()
    assert sizes(session) == before
    assert session.scalar(select(Manufacturer.id).where(Manufacturer.code == "OTHER")) is None


def test_create_exporter_stores_normalised_fields_when_input_is_valid(session: Session) -> None:
    exporter = organisations.create_exporter(
        session=session, code=" yuanhang ", name=" 宁波远航 汽车出口有限公司", uscc=factories.uscc(7).lower()
    )

    stored = organisations.get_exporter(session, "YUANHANG")
    assert stored.id == exporter.id
    assert (stored.name, stored.uscc, stored.name_en) == ("宁波远航 汽车出口有限公司", factories.uscc(7), "")


@pytest.mark.parametrize(
    ("code", "uscc", "error", "fragment"),
    [
        ("yuanhang", factories.uscc(8), Conflict, "code YUANHANG"),
        ("OTHER", factories.uscc(7), Conflict, "credit code"),
        ("OTHER", wrong_check_character(factories.uscc(8)), ValidationFailed, "check character"),
        ("", factories.uscc(8), ValidationFailed, "code is empty"),
    ],
    ids=["duplicate_code", "duplicate_uscc", "uscc_bad_check", "empty_code"],
)
def test_create_exporter_writes_nothing_when_input_is_refused(
    session: Session, code: str, uscc: str, error: type[Exception], fragment: str
) -> None:
    organisations.create_exporter(
        session=session, code="YUANHANG", name="宁波远航汽车出口有限公司", uscc=factories.uscc(7)
    )
    before = sizes(session)

    with pytest.raises(error, match=fragment):
        organisations.create_exporter(session=session, code=code, name="另一家出口公司", uscc=uscc)

    session.rollback()
    assert sizes(session) == before


@pytest.fixture
def parties(session: Session) -> tuple[Manufacturer, Exporter]:
    return factories.manufacturer(session), factories.exporter(session)


def blocks(session: Session) -> list[ExporterBlock]:
    session.expire_all()
    return list(session.scalars(select(ExporterBlock).order_by(ExporterBlock.id)))


def test_block_exporter_puts_it_on_the_negative_list_when_not_blocked(
    session: Session, parties: tuple[Manufacturer, Exporter]
) -> None:
    maker, exporter = parties

    organisations.block_exporter(
        session=session,
        manufacturer_code=maker.code.lower(),
        exporter_code=exporter.code.lower(),
        reason="  resold   vehicles ",
        actor="admin@example.test",
    )

    block = organisations.active_block(session, manufacturer_id=maker.id, exporter_id=exporter.id)
    assert block is not None
    assert (block.reason, block.blocked_by, block.lifted_at) == ("resold vehicles", "admin@example.test", None)
    other = factories.manufacturer(session, wmis=("LRW",))
    assert organisations.active_block(session, manufacturer_id=other.id, exporter_id=exporter.id) is None


def test_block_exporter_refuses_when_exporter_is_already_blocked(
    session: Session, parties: tuple[Manufacturer, Exporter]
) -> None:
    maker, exporter = parties
    organisations.block_exporter(session=session, manufacturer_code=maker.code, exporter_code=exporter.code, reason="r")

    with pytest.raises(Conflict, match="already on"):
        organisations.block_exporter(
            session=session, manufacturer_code=maker.code, exporter_code=exporter.code, reason="again"
        )
    session.rollback()
    assert [b.reason for b in blocks(session)] == ["r"]


@pytest.mark.parametrize(
    ("manufacturer", "exporter", "reason", "error"),
    [
        (None, None, "  ", ValidationFailed),
        ("NOPE", None, "r", NotFound),
        (None, "NOPE", "r", NotFound),
    ],
    ids=["empty_reason", "unknown_manufacturer", "unknown_exporter"],
)
def test_block_exporter_writes_nothing_when_input_is_refused(
    session: Session,
    parties: tuple[Manufacturer, Exporter],
    manufacturer: str | None,
    exporter: str | None,
    reason: str,
    error: type[Exception],
) -> None:
    maker, exporter_ = parties

    with pytest.raises(error):
        organisations.block_exporter(
            session=session,
            manufacturer_code=manufacturer or maker.code,
            exporter_code=exporter or exporter_.code,
            reason=reason,
        )
    session.rollback()
    assert blocks(session) == []


def test_unblock_exporter_keeps_the_entry_with_lifted_at_when_exporter_was_blocked(
    session: Session, parties: tuple[Manufacturer, Exporter]
) -> None:
    maker, exporter = parties
    organisations.block_exporter(
        session=session, manufacturer_code=maker.code, exporter_code=exporter.code, reason="first"
    )

    organisations.unblock_exporter(
        session=session, manufacturer_code=maker.code, exporter_code=exporter.code, reason=" settled ", actor="cli"
    )

    assert organisations.active_block(session, manufacturer_id=maker.id, exporter_id=exporter.id) is None
    [entry] = blocks(session)
    assert (entry.reason, entry.lifted_at, entry.lifted_by, entry.lift_reason) == (
        "first",
        clock.now_utc(),
        "cli",
        "settled",
    )
    organisations.block_exporter(
        session=session, manufacturer_code=maker.code, exporter_code=exporter.code, reason="second"
    )
    assert [(b.reason, b.lifted_at is None) for b in blocks(session)] == [("first", False), ("second", True)]


def test_unblock_exporter_refuses_when_exporter_is_not_blocked(
    session: Session, parties: tuple[Manufacturer, Exporter]
) -> None:
    maker, exporter = parties

    with pytest.raises(Conflict, match="is not on"):
        organisations.unblock_exporter(session=session, manufacturer_code=maker.code, exporter_code=exporter.code)

    organisations.block_exporter(session=session, manufacturer_code=maker.code, exporter_code=exporter.code, reason="r")
    organisations.unblock_exporter(session=session, manufacturer_code=maker.code, exporter_code=exporter.code)
    with pytest.raises(Conflict, match="is not on"):
        organisations.unblock_exporter(session=session, manufacturer_code=maker.code, exporter_code=exporter.code)
