"""Re-importing a registry without production dates keeps the dates already stored."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from issuer.models import RegisteredVehicle
from issuer.services.registry import import_vehicles
from tests import factories


def test_reimport_without_production_dates_keeps_the_stored_dates_and_counts_them_unchanged(session, tmp_path):
    maker = factories.manufacturer(session, wmis=("LGX",))
    vins = factories.random_vins("LGX", 3, seed=5)
    first = tmp_path / "first.csv"
    first.write_text("vin,brand,model,production_date\n" + "".join(f"{v},Ex,E1,2025-05-01\n" for v in vins))
    import_vehicles(session=session, manufacturer_code=maker.code, path=first)
    second = tmp_path / "second.csv"
    second.write_text("vin,brand,model\n" + f"{vins[0]},Ex,E1\n{vins[1]},Ex,E2\n{vins[2]},Ex,E1\n")

    result = import_vehicles(session=session, manufacturer_code=maker.code, path=second)

    assert (result.added, result.updated, result.unchanged) == (0, 1, 2)
    rows = {
        r.vin: r
        for r in session.scalars(select(RegisteredVehicle).where(RegisteredVehicle.manufacturer_id == maker.id))
    }
    assert all(row.production_date == dt.date(2025, 5, 1) for row in rows.values())
    assert rows[vins[1]].model == "E2"


def test_reimport_with_a_new_production_date_updates_it(session, tmp_path):
    maker = factories.manufacturer(session, wmis=("LGX",))
    vin = factories.random_vins("LGX", 1, seed=6)[0]
    path = tmp_path / "r.csv"
    path.write_text(f"vin,brand,model,production_date\n{vin},Ex,E1,2025-05-01\n")
    import_vehicles(session=session, manufacturer_code=maker.code, path=path)
    path.write_text(f"vin,brand,model,production_date\n{vin},Ex,E1,2025-06-02\n")

    result = import_vehicles(session=session, manufacturer_code=maker.code, path=path)

    assert result.updated == 1
    row = session.scalar(select(RegisteredVehicle).where(RegisteredVehicle.vin == vin))
    assert row.production_date == dt.date(2025, 6, 2)
