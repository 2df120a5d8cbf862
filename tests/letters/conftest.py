"""A manufacturer ready to issue: seal key, registry, outlets, an exporter, and staff with tokens."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from issuer.services.keys import generate_key
from tests import factories
from tests.conftest import TODAY

REGISTERED_ON = TODAY - dt.timedelta(days=30)
APPLYING_ON = TODAY + dt.timedelta(days=10)


@dataclass
class World:
    manufacturer: object
    other_manufacturer: object
    exporter: object
    vins: list[str]
    exporter_token: str
    aftersales_token: str
    admin_token: str
    other_exporter_token: str
    other_aftersales_token: str
    reviewer_token: str

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def request_body(self, vins: list[str] | None = None, destination: str = "KZ", **extra: object) -> dict:
        return {
            "manufacturer": self.manufacturer.code,
            "application_date": APPLYING_ON.isoformat(),
            "reference": "CONTRACT-2026-001",
            "vehicles": [
                {
                    "vin": vin,
                    "brand": "Example",
                    "model": "E1",
                    "registration_date": REGISTERED_ON.isoformat(),
                    "destination": destination,
                }
                for vin in (vins if vins is not None else self.vins)
            ],
            **extra,
        }


@pytest.fixture
def world(session, settings) -> World:
    maker = factories.manufacturer(session, wmis=("LGX",))
    other = factories.manufacturer(session, wmis=("LRW",))
    for m in (maker, other):
        generate_key(
            session=session, manufacturer_code=m.code, keys_dir=settings.keys_dir, passphrase=settings.seal_passphrase
        )
    vins = factories.random_vins("LGX", 6, seed=7)
    factories.register(session, maker, vins)
    factories.outlet(session, maker, code="KZ-1", country="KZ")
    factories.outlet(session, maker, code="TH-1", country="TH")
    exporter = factories.exporter(session)
    other_exporter = factories.exporter(session)
    token = factories.token
    return World(
        manufacturer=maker,
        other_manufacturer=other,
        exporter=exporter,
        vins=vins,
        exporter_token=token(session, factories.user(session, "exporter", exporter=exporter)),
        aftersales_token=token(session, factories.user(session, "aftersales", manufacturer=maker)),
        admin_token=token(session, factories.user(session, "manufacturer_admin", manufacturer=maker)),
        other_exporter_token=token(session, factories.user(session, "exporter", exporter=other_exporter)),
        other_aftersales_token=token(session, factories.user(session, "aftersales", manufacturer=other)),
        reviewer_token=token(session, factories.user(session, "reviewer")),
    )


@pytest.fixture
def issue(client, world):
    """File a request for ``vins`` and approve them all; returns (letter number, letter JSON, PDF bytes)."""

    def _issue(vins: list[str] | None = None, **extra: object) -> tuple[str, dict, bytes]:
        filed = client.post(
            "/api/v1/requests", json=world.request_body(vins, **extra), headers=world.auth(world.exporter_token)
        )
        assert filed.status_code == 201, filed.json
        decided = client.post(
            f"/api/v1/requests/{filed.json['id']}/decision",
            json={"approve": "all_eligible"},
            headers=world.auth(world.aftersales_token),
        )
        assert decided.status_code == 200, decided.json
        number = decided.json["letter_number"]
        letter = client.get(f"/api/v1/letters/{number}", headers=world.auth(world.exporter_token)).json
        pdf = client.get(f"/api/v1/letters/{number}/pdf", headers=world.auth(world.exporter_token)).data
        return number, letter, pdf

    return _issue
