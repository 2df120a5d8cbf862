"""The demo data set (services.demo.load_demo): idempotent, and valid by the service's own rules."""

from __future__ import annotations

from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from issuer.db import Base
from issuer.domain.eligibility import ReasonCode
from issuer.domain.vin import has_valid_check_digit, is_well_formed
from issuer.models import (
    ApiToken,
    CoveredVin,
    Exporter,
    ExporterBlock,
    Letter,
    LetterRequest,
    Manufacturer,
    ManufacturerWmi,
    Outlet,
    OutletVersion,
    RegisteredVehicle,
    Role,
    User,
)
from issuer.services import accounts, letters, organisations, requests
from issuer.services.coverage_report import coverage_report
from issuer.services.demo import DEMO_PASSWORD, load_demo
from tests.conftest import TODAY
from tests.web.ui.conftest import Browser

TABLES = (
    Manufacturer,
    ManufacturerWmi,
    Exporter,
    ExporterBlock,
    User,
    ApiToken,
    RegisteredVehicle,
    Outlet,
    OutletVersion,
)


def table_sizes(session: Session) -> dict[str, int]:
    return {model.__name__: session.scalar(select(func.count()).select_from(model)) or 0 for model in TABLES}


def test_load_demo_gives_the_same_valid_data_for_every_role_when_run_twice(session: Session) -> None:
    demo_accounts = load_demo(session=session)
    sizes = table_sizes(session)
    vins = set(session.scalars(select(RegisteredVehicle.vin)))

    assert load_demo(session=session) == demo_accounts

    assert table_sizes(session) == sizes
    assert set(session.scalars(select(RegisteredVehicle.vin))) == vins

    manufacturers = list(session.scalars(select(Manufacturer)))
    issuers = [m for m in manufacturers if m.may_issue]
    assert len(issuers) >= 2
    assert any(not m.may_issue for m in manufacturers)  # a tenant that may not issue, for the refusals
    assert any(w.plant_code for m in issuers for w in m.wmi_values())  # a small maker

    vehicles = list(session.scalars(select(RegisteredVehicle)))
    assert len(vehicles) >= 300
    owners = {m.id: m for m in manufacturers}
    for vehicle in vehicles:
        assert is_well_formed(vehicle.vin), vehicle.vin
        assert has_valid_check_digit(vehicle.vin), vehicle.vin
        assert any(wmi.matches(vehicle.vin) for wmi in owners[vehicle.manufacturer_id].wmi_values()), vehicle.vin
        assert vehicle.brand
        assert vehicle.model
        assert vehicle.production_date is not None
        assert vehicle.production_date <= TODAY

    outlets = list(session.scalars(select(Outlet)))
    assert len({o.country for o in outlets}) >= 8
    for issuer in issuers:
        own = [o for o in outlets if o.manufacturer_id == issuer.id]
        assert own, issuer.code
        assert all(o.active and o.valid_from <= TODAY and (o.valid_to is None or o.valid_to >= TODAY) for o in own)
        registered_brands = {v.brand for v in vehicles if v.manufacturer_id == issuer.id}
        for brand in registered_brands:  # every demo brand can get a letter somewhere
            assert any(o.coverage(o.code).serves(country=o.country, brand=brand, on=TODAY) for o in own), brand

    assert session.scalar(select(func.count()).select_from(Exporter)) == 2
    assert session.scalar(select(func.count()).select_from(ExporterBlock).where(ExporterBlock.lifted_at.is_(None)))

    users = list(session.scalars(select(User)))
    assert {u.role for u in users} == {r.value for r in Role}
    for user in users:
        role = Role(user.role)
        assert (user.manufacturer_id is not None) == role.is_manufacturer_staff, user.email
        assert (user.exporter_id is not None) == (role is Role.EXPORTER), user.email
    assert {email for email, *_ in demo_accounts} == {u.email for u in users}
    clerk = next(u for u in users if u.role == Role.EXPORTER.value)
    assert accounts.password_matches(clerk.password_hash, DEMO_PASSWORD)


# -- the application in use: requests, letters and coverage made by `issuer demo` --------------


def all_row_counts(session: Session) -> dict[str, int]:
    """Rows of every table, so a second run that adds anything anywhere is seen."""
    return {
        table.name: session.scalar(select(func.count()).select_from(table)) or 0
        for table in Base.metadata.sorted_tables
    }


def demo_user(session: Session, email: str) -> User:
    return session.scalars(select(User).where(User.email == email)).one()


def test_demo_command_files_and_decides_requests_through_the_services(cli: FlaskCliRunner, session: Session) -> None:
    result = cli.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    aftersales = demo_user(session, "aftersales@dongyue.demo")

    queue = requests.list_requests(session=session, user=aftersales, status="submitted")
    yuanhang = next(r for r in queue if r.exporter.code == "YUANHANG")
    verdicts = [v.verdict for v in yuanhang.vehicles]
    assert verdicts.count("eligible") >= 2
    refused = [v for v in yuanhang.vehicles if v.verdict == "refused"]
    assert [v.reasons for v in refused] == [[ReasonCode.REGISTRATION_DATE_INVALID.value]]
    for vehicle in yuanhang.vehicles:  # dates consistent with the registry and the 180-day window
        produced = session.scalars(
            select(RegisteredVehicle.production_date).where(RegisteredVehicle.vin == vehicle.vin)
        )
        assert vehicle.registration_date <= TODAY <= yuanhang.application_date
        if vehicle.verdict == "eligible":
            assert vehicle.registration_date >= produced.one()
            assert (yuanhang.application_date - vehicle.registration_date).days <= 180
            assert vehicle.letter_not_needed_from is not None

    silkroad = next(r for r in queue if r.exporter.code == "SILKROAD")
    assert {v.destination for v in silkroad.vehicles} == {"KG"}
    assert all(ReasonCode.NO_OUTLET_IN_DESTINATION.value in v.reasons for v in silkroad.vehicles)

    issued = letters.list_letters(session=session, user=aftersales)
    by_status = {letter.status: letter for letter in issued}
    assert sorted(by_status) == ["revoked", "valid"]
    assert len(issued) == 2
    valid, revoked = by_status["valid"], by_status["revoked"]
    assert valid.exporter.code == revoked.exporter.code == "YUANHANG"
    assert revoked.revocation_reason
    assert revoked.revoked_by == aftersales.email
    partly = session.get(LetterRequest, valid.request_id)
    assert partly is not None
    assert partly.status == "approved"
    decisions = sorted(v.decision for v in partly.vehicles)
    assert decisions.count("approved") == len(valid.vehicles) >= 2
    assert "rejected" in decisions
    assert all(v.decision_reason for v in partly.vehicles if v.decision == "rejected")
    assert {r.vin for r in session.scalars(select(CoveredVin))} == {v.vin for v in valid.vehicles}
    for letter in (valid, revoked):
        pdf = letters.get_letter(session=session, user=aftersales, number=letter.number, with_pdf=True).pdf
        assert pdf is not None
        check = letters.verify_pdf(session=session, pdf=pdf)
        assert check.authentic, check.reasons
        assert check.status == letter.status

    report = coverage_report(session, manufacturer=organisations.get_manufacturer(session, "DYAUTO"))
    uncovered = {c.country: c for c in report.asked_without_coverage}
    assert "KG" in uncovered
    assert uncovered["KG"].outlets == 0
    assert uncovered["KG"].state == "uncovered"
    assert uncovered["KG"].refused_no_outlet == len(silkroad.vehicles)
    assert {"KZ", "AE", "UZ"} <= {c.country for c in report.countries if c.vehicles and c.state == "covered"}


def test_demo_command_adds_nothing_when_run_again(cli: FlaskCliRunner, session: Session) -> None:
    first = cli.invoke(args=["demo"])
    sizes = all_row_counts(session)
    second = cli.invoke(args=["demo"])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert all_row_counts(session) == sizes
    assert second.stdout == first.stdout
    assert sizes["letter_requests"] == 4
    assert sizes["letters"] == 2
    assert "aftersales@dongyue.demo" in first.stdout


def test_demo_command_decides_the_requests_a_run_without_keys_left(cli: FlaskCliRunner, session: Session) -> None:
    load_demo(session=session)  # no issuance: only the requests waiting for review are filed
    waiting = {r.reference: r.id for r in session.scalars(select(LetterRequest))}
    assert len(waiting) == 2
    assert session.scalar(select(func.count()).select_from(Letter)) == 0

    result = cli.invoke(args=["demo"])

    assert result.exit_code == 0, result.output
    session.expire_all()
    after = {r.reference: r for r in session.scalars(select(LetterRequest))}
    assert {ref: after[ref].id for ref in waiting} == waiting  # the same requests, not filed again
    assert len(after) == 4
    assert all(after[ref].status == "submitted" for ref in waiting)
    vins = [v.vin for r in after.values() for v in r.vehicles]
    assert len(vins) == len(set(vins))  # no request repeats another's vehicles
    assert sorted(session.scalars(select(Letter.status))) == ["revoked", "valid"]


def test_demo_pages_show_the_requests_letters_and_coverage(cli: FlaskCliRunner, app, session: Session) -> None:  # type: ignore[no-untyped-def]
    assert cli.invoke(args=["demo"]).exit_code == 0
    staff = Browser(app.test_client()).sign_in(demo_user(session, "aftersales@dongyue.demo"), DEMO_PASSWORD)
    numbers = list(session.scalars(select(Letter.number)))

    queue = staff.get("/requests").get_data(as_text=True)
    letters_page = staff.get("/letters").get_data(as_text=True)
    coverage = staff.get("/registry/coverage")

    assert "DEMO-2026-003" in queue
    assert "DEMO-2026-004" in queue
    assert all(number in letters_page for number in numbers)
    assert coverage.status_code == 200
    assert "KG" in coverage.get_data(as_text=True)
    clerk = Browser(app.test_client()).sign_in(demo_user(session, "clerk@yuanhang.demo"), DEMO_PASSWORD)
    own = clerk.get("/requests").get_data(as_text=True)
    assert "DEMO-2026-001" in own
    assert "DEMO-2026-004" not in own
    valid = session.scalars(select(Letter).where(Letter.status == "valid")).one()
    pdf = clerk.get(f"/letters/{valid.number}/pdf")
    assert pdf.status_code == 200
    assert pdf.data.startswith(b"%PDF")
