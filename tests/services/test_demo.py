"""The demo data set (services.demo.load_demo): idempotent, and valid by the service's own rules."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from issuer.domain.vin import has_valid_check_digit, is_well_formed
from issuer.models import (
    ApiToken,
    Exporter,
    ExporterBlock,
    Manufacturer,
    ManufacturerWmi,
    Outlet,
    OutletVersion,
    RegisteredVehicle,
    Role,
    User,
)
from issuer.services import accounts
from issuer.services.demo import DEMO_PASSWORD, load_demo
from tests.conftest import TODAY

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
