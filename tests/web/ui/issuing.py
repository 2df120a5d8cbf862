"""A world for the request and letter pages: a manufacturer ready to issue (seal key, registry,
outlets), a second manufacturer, two exporters and the staff of both, built with the real
services; requests are filed through the exporter's service, as the precheck page does."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from issuer.config import Settings
from issuer.domain.eligibility import VehicleDeclaration
from issuer.models import Exporter, Manufacturer, Outlet, User
from issuer.services import requests as request_service
from issuer.services.keys import generate_key
from tests import factories
from tests.conftest import TODAY

REGISTERED_ON = TODAY - dt.timedelta(days=30)
APPLYING_ON = TODAY + dt.timedelta(days=10)


@dataclass
class World:
    session: Session
    manufacturer: Manufacturer
    other_manufacturer: Manufacturer
    exporter: Exporter
    other_exporter: Exporter
    vins: list[str]
    outlet_kz: Outlet
    outlet_th: Outlet
    outlet_kz_other_brand: Outlet
    exporter_user: User
    other_exporter_user: User
    aftersales: User
    admin: User
    other_aftersales: User
    platform_admin: User

    def file(
        self,
        vins: list[str] | None = None,
        *,
        destination: str = "KZ",
        destinations: dict[str, str] | None = None,
        user: User | None = None,
        reference: str = "CONTRACT-2026-001",
        supersedes: str | None = None,
    ) -> int:
        """File a request for ``vins`` (default: all) and return its id."""
        destinations = destinations or {}
        vehicles = [
            VehicleDeclaration(
                vin=vin,
                brand="Example",
                model="E1",
                registration_date=REGISTERED_ON,
                destination=destinations.get(vin, destination),
            )
            for vin in (vins if vins is not None else self.vins)
        ]
        letter_request, _ = request_service.submit_request(
            session=self.session,
            user=user or self.exporter_user,
            manufacturer_code=self.manufacturer.code,
            application_date=APPLYING_ON,
            reference=reference,
            vehicles=vehicles,
            supersedes=supersedes,
        )
        return letter_request.id


def build_world(session: Session, settings: Settings) -> World:
    maker = factories.manufacturer(session, wmis=("LGX",))
    other = factories.manufacturer(session, wmis=("LRW",))
    for m in (maker, other):
        generate_key(
            session=session, manufacturer_code=m.code, keys_dir=settings.keys_dir, passphrase=settings.seal_passphrase
        )
    vins = factories.random_vins("LGX", 6, seed=11)
    factories.register(session, maker, vins)
    exporter = factories.exporter(session)
    other_exporter = factories.exporter(session)
    world = World(
        session=session,
        manufacturer=maker,
        other_manufacturer=other,
        exporter=exporter,
        other_exporter=other_exporter,
        vins=vins,
        outlet_kz=factories.outlet(session, maker, code="KZ-1", country="KZ"),
        outlet_th=factories.outlet(session, maker, code="TH-1", country="TH"),
        outlet_kz_other_brand=factories.outlet(session, maker, code="KZ-OTHER", country="KZ", brands="Othermake"),
        exporter_user=factories.user(session, "exporter", exporter=exporter),
        other_exporter_user=factories.user(session, "exporter", exporter=other_exporter),
        aftersales=factories.user(session, "aftersales", manufacturer=maker),
        admin=factories.user(session, "manufacturer_admin", manufacturer=maker),
        other_aftersales=factories.user(session, "aftersales", manufacturer=other),
        platform_admin=factories.user(session, "platform_admin"),
    )
    # A user's saved language wins over the browser's; the page tests read English.
    for user in (
        world.exporter_user,
        world.other_exporter_user,
        world.aftersales,
        world.admin,
        world.other_aftersales,
        world.platform_admin,
    ):
        user.locale = "en"
    session.commit()
    return world


def issue_through_page(make_browser: Any, world: World, vins: list[str] | None = None, **form: str) -> str:
    """File a request and approve every eligible vehicle on its page; the letter's number."""
    request_id = world.file(vins)
    staff = make_browser(world.aftersales)
    answer = staff.post(
        f"/requests/{request_id}/decision", {"action": "all_eligible", **form}, form_page=f"/requests/{request_id}"
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    match = re.search(r"/letters/([A-Z0-9-]+)$", answer.headers["Location"])
    assert match, answer.headers["Location"]
    return match.group(1)
