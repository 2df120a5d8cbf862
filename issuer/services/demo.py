"""The demo data set: two manufacturers (one a small maker), a sales company that may not issue,
a few hundred registered VINs, outlets in ten countries, two exporters, one negative-list entry
and a user of every role. Names and WMIs are invented for the demo.

Loading is idempotent: what already exists (by code or e-mail) is left alone.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from issuer import clock
from issuer.domain.uscc import with_uscc_check
from issuer.domain.vin import VIN_ALPHABET, with_check_digit
from issuer.models import Exporter, Manufacturer, Outlet, RegisteredVehicle, User
from issuer.services import accounts, keys, organisations, outlets

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
    *, session: Session, keys_dir: Path | None = None, passphrase: str | None = None
) -> list[tuple[str, str, str, str]]:
    """Load the demo data set; returns the demo accounts (email, role, organisation, password).

    With ``keys_dir`` and ``passphrase``, every demo manufacturer that may issue and has no
    seal key gets a development key, so the demo can issue letters at once."""
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
    return accounts_out
