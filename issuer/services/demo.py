"""The demo data set: two manufacturers (one a small maker), a sales company that may not issue,
a few hundred registered VINs, outlets in ten countries, two exporters, one negative-list entry
and a user of every role — and the application in use: requests filed by the exporters (one
waiting for review, one partly approved with its letter, one whose letter was revoked, one to a
country without an outlet), so every role's pages have something real to show. Names and WMIs are
invented for the demo.

Loading is idempotent: what already exists (by code, e-mail or request reference) is left alone.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from issuer import clock
from issuer.domain.eligibility import VehicleDeclaration
from issuer.domain.uscc import with_uscc_check
from issuer.domain.vin import VIN_ALPHABET, with_check_digit
from issuer.models import (
    CoveredVin,
    Exporter,
    Letter,
    LetterRequest,
    LetterStatus,
    Manufacturer,
    Outlet,
    RegisteredVehicle,
    RequestStatus,
    RequestVehicle,
    User,
)
from issuer.services import accounts, keys, letters, organisations, outlets, requests
from issuer.services.letters import Issuance

DEMO_PASSWORD = "demo-password-1"  # noqa: S105 - published demo credentials, development only
MODEL_YEARS = "ABCDEFGHJKLMNPRSTVWXY123456789"


@dataclass(frozen=True)
class DemoManufacturer:
    code: str
    name: str
    name_en: str
    uscc_body: str
    wmis: tuple[str, ...]
    kind: str
    models: tuple[tuple[str, str], ...]  # (brand, model)
    vehicles: int


MANUFACTURERS = (
    DemoManufacturer(
        "DYAUTO",
        "东岳汽车制造有限公司",
        "Dongyue Automobile Manufacturing Co., Ltd.",
        "91370100MA3C4DY1X",
        ("LDY", "LDZ"),
        "vehicle_manufacturer",
        (("东岳", "DY-S7"), ("东岳", "DY-E5 EV"), ("岳峰", "YF-X9"), ("岳峰", "YF-T3 Pickup")),
        300,
    ),
    DemoManufacturer(
        "JNTZ",
        "江南特种车辆有限公司",
        "Jiangnan Special Vehicles Co., Ltd.",
        "91320500MA1N8JN2T",
        ("LJ9/817",),
        "vehicle_manufacturer",
        (("江南", "JN-V6 Van"), ("江南", "JN-R2")),
        120,
    ),
    DemoManufacturer(
        "DYSALES",
        "东岳汽车销售有限公司",
        "Dongyue Automobile Sales Co., Ltd.",
        "91370100MA3C4DY2Q",
        (),
        "sales_company",
        (),
        0,
    ),
)

EXPORTERS = (
    ("YUANHANG", "宁波远航汽车出口有限公司", "Ningbo Yuanhang Auto Export Co., Ltd.", "91330200MA2GY7H3K"),
    ("SILKROAD", "霍尔果斯丝路车贸有限公司", "Khorgos Silk Road Auto Trade Co., Ltd.", "91654004MA7ML8R5P"),
)

# (code, country, name, provider, address, city, phone, email, brands)
OUTLETS = {
    "DYAUTO": (
        (
            "KZ-ALA-01",
            "KZ",
            "Dongyue Service Almaty",
            "Almaty Motors LLP",
            "12 Raiymbek Ave",
            "Almaty",
            "+7 727 300 1001",
            "service@almaty-motors.kz",
            "",
        ),
        (
            "KZ-AST-01",
            "KZ",
            "Dongyue Service Astana",
            "Steppe Auto LLP",
            "45 Kabanbay Batyr Ave",
            "Astana",
            "+7 7172 55 0102",
            "",
            "东岳",
        ),
        (
            "RU-MOW-01",
            "RU",
            "Dongyue Service Moscow",
            "Volga Avto LLC",
            "8 Leninsky Prospekt",
            "Moscow",
            "+7 495 120 3344",
            "",
            "",
        ),
        (
            "UZ-TAS-01",
            "UZ",
            "Dongyue Service Tashkent",
            "Samarkand Trade Motors",
            "17 Amir Temur St",
            "Tashkent",
            "+998 71 200 1122",
            "",
            "",
        ),
        (
            "AE-DXB-01",
            "AE",
            "Dongyue Service Dubai",
            "Gulf Wheels Trading LLC",
            "Al Quoz Industrial Area 3",
            "Dubai",
            "+971 4 330 1200",
            "",
            "",
        ),
        (
            "SA-RUH-01",
            "SA",
            "Dongyue Service Riyadh",
            "Najd Auto Services Co.",
            "King Fahd Rd, Al Olaya",
            "Riyadh",
            "+966 11 460 3300",
            "",
            "岳峰",
        ),
        (
            "TH-BKK-01",
            "TH",
            "Dongyue Service Bangkok",
            "Siam Motor Works Co., Ltd.",
            "99 Rama IV Rd",
            "Bangkok",
            "+66 2 250 1100",
            "",
            "",
        ),
        (
            "MX-MEX-01",
            "MX",
            "Dongyue Servicio Ciudad de México",
            "Autoservicios del Valle S.A. de C.V.",
            "Av. Insurgentes Sur 1500",
            "Ciudad de México",
            "+52 55 5200 1000",
            "",
            "",
        ),
        (
            "CL-SCL-01",
            "CL",
            "Dongyue Servicio Santiago",
            "Andes Automotriz SpA",
            "Av. Vicuña Mackenna 2100",
            "Santiago",
            "+56 2 2400 1200",
            "",
            "",
        ),
        (
            "AU-SYD-01",
            "AU",
            "Dongyue Service Sydney",
            "Harbour Auto Care Pty Ltd",
            "21 Parramatta Rd",
            "Sydney",
            "+61 2 9000 1200",
            "",
            "东岳",
        ),
    ),
    "JNTZ": (
        (
            "KZ-ALA-J1",
            "KZ",
            "Jiangnan Service Almaty",
            "Almaty Motors LLP",
            "12 Raiymbek Ave",
            "Almaty",
            "+7 727 300 1002",
            "",
            "",
        ),
        (
            "BR-SAO-J1",
            "BR",
            "Jiangnan Serviço São Paulo",
            "Paulista Veículos Ltda.",
            "Av. Paulista 1000",
            "São Paulo",
            "+55 11 3000 1200",
            "",
            "",
        ),
        (
            "AE-DXB-J1",
            "AE",
            "Jiangnan Service Dubai",
            "Gulf Wheels Trading LLC",
            "Al Quoz Industrial Area 3",
            "Dubai",
            "+971 4 330 1201",
            "",
            "",
        ),
    ),
}

USERS = (
    ("admin@demo.issuer.test", "platform_admin", None, None),
    ("admin@dongyue.demo", "manufacturer_admin", "DYAUTO", None),
    ("aftersales@dongyue.demo", "aftersales", "DYAUTO", None),
    ("aftersales@jiangnan.demo", "aftersales", "JNTZ", None),
    ("admin@jiangnan.demo", "manufacturer_admin", "JNTZ", None),
    ("clerk@yuanhang.demo", "exporter", None, "YUANHANG"),
    ("clerk@silkroad.demo", "exporter", None, "SILKROAD"),
    ("reviewer@mofcom.demo", "reviewer", None, None),
)

DEMO_MANUFACTURER = "DYAUTO"
DEMO_EXPORTER_USERS = {"YUANHANG": "clerk@yuanhang.demo", "SILKROAD": "clerk@silkroad.demo"}
DEMO_AFTERSALES = "aftersales@dongyue.demo"


@dataclass(frozen=True)
class DemoRequest:
    """One request of the demo's history, filed to DYAUTO and taken as far as ``outcome``.

    ``vehicles`` are registered VINs declared as the registry has them; ``refused`` more are
    declared registered before they were produced, so the review shows a refusal with its reason
    (REGISTRATION_DATE_INVALID). After-sales approves the eligible ones except the first
    ``rejected``, which it rejects with ``rejection_reason``; a ``revoked`` request's letter is then
    revoked with ``revocation_reason``."""

    reference: str
    exporter: str
    destination: str
    vehicles: int
    outcome: Literal["submitted", "approved", "revoked"]
    refused: int = 0
    rejected: int = 0
    rejection_reason: str = ""
    revocation_reason: str = ""
    note: str = ""


# Ordered as they happened: the revoked letter first, the request waiting for review last.
# KG has no DYAUTO outlet: that request shows as demand without coverage on the chart.
REQUESTS = (
    DemoRequest(
        "DEMO-2026-001",
        "YUANHANG",
        "AE",
        vehicles=2,
        outcome="revoked",
        revocation_reason="The buyer cancelled the contract; the vehicles stay in China (demo entry)",
    ),
    DemoRequest(
        "DEMO-2026-002",
        "YUANHANG",
        "KZ",
        vehicles=4,
        outcome="approved",
        rejected=1,
        rejection_reason="This vehicle was sold to a domestic dealer before the export contract (demo entry)",
        note="Approved except the vehicle already sold in China",
    ),
    DemoRequest("DEMO-2026-003", "YUANHANG", "UZ", vehicles=3, refused=1, outcome="submitted"),
    DemoRequest("DEMO-2026-004", "SILKROAD", "KG", vehicles=3, outcome="submitted"),
)


def demo_vin(rng: random.Random, wmi: str) -> str:
    """A syntactically valid VIN with a correct check digit for the given WMI (or WMI/plant)."""
    code, _, plant = wmi.partition("/")
    vds = "".join(rng.choice(VIN_ALPHABET) for _ in range(5))
    year = rng.choice("RST")  # model years 2024-2026
    plant_letter = rng.choice("ABCDEFGH")
    serial = (
        plant + "".join(rng.choice("0123456789") for _ in range(3))
        if plant
        else "".join(rng.choice("0123456789") for _ in range(6))
    )
    return with_check_digit(code + vds + "0" + year + plant_letter + serial)


def load_demo(
    *,
    session: Session,
    keys_dir: Path | None = None,
    passphrase: str | None = None,
    issuance: Issuance | None = None,
) -> list[tuple[str, str, str, str]]:
    """Load the demo data set; returns the demo accounts (email, role, organisation, password).

    With ``keys_dir`` and ``passphrase`` (or an ``issuance``, which holds both), every demo
    manufacturer that may issue and has no seal key gets a development key, so the demo can
    issue letters at once. The requests waiting for review are always filed; the decided ones,
    with their letters, only with an ``issuance`` — issuing renders and seals real letters."""
    if issuance is not None:
        keys_dir, passphrase = keys_dir or issuance.keys_dir, passphrase or issuance.passphrase
    rng = random.Random(20260101)  # noqa: S311 - reproducible demo data, not secrets
    today = clock.today_in_china()
    for spec in MANUFACTURERS:
        if session.scalar(select(Manufacturer.id).where(Manufacturer.code == spec.code)) is None:
            organisations.create_manufacturer(
                session=session,
                code=spec.code,
                name=spec.name,
                name_en=spec.name_en,
                uscc=with_uscc_check(spec.uscc_body),
                wmis=spec.wmis,
                manufacturer_type=spec.kind,
            )
        manufacturer = organisations.get_manufacturer(session, spec.code)
        has_vehicles = session.scalar(
            select(RegisteredVehicle.id).where(RegisteredVehicle.manufacturer_id == manufacturer.id).limit(1)
        )
        if spec.vehicles and has_vehicles is None:
            for _ in range(spec.vehicles):
                brand, model = rng.choice(spec.models)
                session.add(
                    RegisteredVehicle(
                        manufacturer_id=manufacturer.id,
                        vin=demo_vin(rng, rng.choice(spec.wmis)),
                        brand=brand,
                        model=model,
                        production_date=today - dt.timedelta(days=rng.randint(60, 400)),
                    )
                )
            session.commit()
        for code, country, name, provider, address, city, phone, email, brands in OUTLETS.get(spec.code, ()):
            exists = session.scalar(
                select(Outlet.id).where(Outlet.manufacturer_id == manufacturer.id, Outlet.code == code)
            )
            if exists is None:
                outlets.create_outlet(
                    session=session,
                    manufacturer=manufacturer,
                    actor="demo",
                    values={
                        "code": code,
                        "country": country,
                        "name": name,
                        "provider": provider,
                        "address": address,
                        "city": city,
                        "phone": phone,
                        "email": email,
                        "brands": brands,
                        "valid_from": dt.date(2025, 1, 1),
                        "valid_to": None,
                    },
                )
    for code, name, name_en, uscc_body in EXPORTERS:
        if session.scalar(select(Exporter.id).where(Exporter.code == code)) is None:
            organisations.create_exporter(
                session=session, code=code, name=name, name_en=name_en, uscc=with_uscc_check(uscc_body)
            )
    jntz = organisations.get_manufacturer(session, "JNTZ")
    silkroad = organisations.get_exporter(session, "SILKROAD")
    if organisations.active_block(session, manufacturer_id=jntz.id, exporter_id=silkroad.id) is None:
        organisations.block_exporter(
            session=session,
            manufacturer_code="JNTZ",
            exporter_code="SILKROAD",
            actor="demo",
            reason="Resold vehicles under another exporter's letter (demo entry)",
        )
    if keys_dir is not None and passphrase is not None:
        for spec in MANUFACTURERS:
            manufacturer = organisations.get_manufacturer(session, spec.code)
            if manufacturer.may_issue and keys.current_key(session, manufacturer) is None:
                keys.generate_key(
                    session=session, manufacturer_code=spec.code, keys_dir=keys_dir, passphrase=passphrase
                )
    accounts_out = []
    for email, role, manufacturer_code, exporter_code in USERS:
        if session.scalar(select(User.id).where(User.email == email)) is None:
            accounts.create_user(
                session=session,
                email=email,
                role=role,
                password=DEMO_PASSWORD,
                manufacturer_code=manufacturer_code,
                exporter_code=exporter_code,
            )
        accounts_out.append((email, role, manufacturer_code or exporter_code or "-", DEMO_PASSWORD))
    _load_requests(session, issuance=issuance, today=today)
    return accounts_out


def _demo_user(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == email))
    if user is None:  # created above; gone only if someone deleted a demo account
        raise LookupError(f"the demo account {email} is missing")
    return user


def _fresh_vehicles(
    session: Session, manufacturer: Manufacturer, count: int, today: dt.date
) -> list[RegisteredVehicle]:
    """Registered vehicles in no request to this manufacturer and no valid letter: a demo
    request never repeats another's VINs, so its verdicts stay clean however often it runs.
    Produced at least 11 days ago, so a registration after production and before today exists."""
    in_requests = (
        select(RequestVehicle.vin)
        .join(LetterRequest, LetterRequest.id == RequestVehicle.request_id)
        .where(LetterRequest.manufacturer_id == manufacturer.id)
    )
    return list(
        session.scalars(
            select(RegisteredVehicle)
            .where(
                RegisteredVehicle.manufacturer_id == manufacturer.id,
                RegisteredVehicle.production_date.is_not(None),
                RegisteredVehicle.production_date <= today - dt.timedelta(days=11),
                RegisteredVehicle.vin.not_in(in_requests),
                RegisteredVehicle.vin.not_in(select(CoveredVin.vin)),
            )
            .order_by(RegisteredVehicle.vin)
            .limit(count)
        )
    )


def _declarations(vehicles: list[RegisteredVehicle], plan: DemoRequest, today: dt.date) -> list[VehicleDeclaration]:
    """The exporter's list: registered 10 days after production but within the last 120 days
    (inside the 180-day window of an application a week from now); the ``refused`` last ones
    declared registered three days before they were produced."""
    declarations = []
    for index, vehicle in enumerate(vehicles):
        produced = vehicle.production_date or today  # never None: _fresh_vehicles picks produced ones
        if index < plan.vehicles:
            registered = max(produced + dt.timedelta(days=10), today - dt.timedelta(days=120))
        else:
            registered = produced - dt.timedelta(days=3)
        declarations.append(
            VehicleDeclaration(
                vin=vehicle.vin,
                brand=vehicle.brand,
                model=vehicle.model,
                registration_date=registered,
                destination=plan.destination,
            )
        )
    return declarations


def _load_requests(session: Session, *, issuance: Issuance | None, today: dt.date) -> None:
    """File the demo's requests through the exporter's service and decide them through
    after-sales', as a user would. Each step runs only if its result is missing (request by
    reference, decision by status, revocation by the letter's status), so a second run adds
    nothing and an interrupted run is finished by the next."""
    manufacturer = organisations.get_manufacturer(session, DEMO_MANUFACTURER)
    application_date = today + dt.timedelta(days=7)  # the export licence is applied for next week
    for plan in REQUESTS:
        if plan.outcome != "submitted" and issuance is None:
            continue  # a decision issues a letter: that needs the seal and the renderer
        exporter = organisations.get_exporter(session, plan.exporter)
        request = session.scalar(
            select(LetterRequest).where(
                LetterRequest.manufacturer_id == manufacturer.id,
                LetterRequest.exporter_id == exporter.id,
                LetterRequest.reference == plan.reference,
            )
        )
        if request is None:
            vehicles = _fresh_vehicles(session, manufacturer, plan.vehicles + plan.refused, today)
            if len(vehicles) < plan.vehicles + plan.refused:
                continue  # the registry was emptied or used up: no demo request rather than a wrong one
            request, _ = requests.submit_request(
                session=session,
                user=_demo_user(session, DEMO_EXPORTER_USERS[plan.exporter]),
                manufacturer_code=manufacturer.code,
                application_date=application_date,
                reference=plan.reference,
                vehicles=_declarations(vehicles, plan, today),
            )
        if plan.outcome == "submitted" or issuance is None:
            continue
        staff = _demo_user(session, DEMO_AFTERSALES)
        unfinished = letters.pending_letter_of(session=session, request_id=request.id)
        if request.status == RequestStatus.SUBMITTED.value or unfinished is not None:
            rejected = [v.vin for v in request.vehicles[: plan.rejected]]
            letters.decide_request(
                session=session,
                user=staff,
                request_id=request.id,
                approve="all_eligible",
                reject=[(vin, plan.rejection_reason) for vin in rejected],
                note=plan.note,
                issuance=issuance,
            )
        if plan.outcome == "revoked":
            letter = session.scalar(
                select(Letter).where(Letter.request_id == request.id, Letter.status == LetterStatus.VALID.value)
            )
            if letter is not None:
                letters.revoke_letter(session=session, user=staff, number=letter.number, reason=plan.revocation_reason)
