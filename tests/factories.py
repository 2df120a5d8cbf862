"""Test data builders, on top of the real services (so the data is always valid)."""

from __future__ import annotations

import datetime as dt
import itertools
import random

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session

from issuer import clock
from issuer.domain.uscc import with_uscc_check
from issuer.domain.vin import VIN_ALPHABET, with_check_digit
from issuer.models import Exporter, Manufacturer, RegisteredVehicle, User
from issuer.services import accounts, organisations, outlets

PASSWORD = "correct-horse-battery"
_counter = itertools.count(1)


def uscc(seed: int) -> str:
    body = f"9131000{seed:010d}"[:17]
    return with_uscc_check(body)


def make_vin(wmi: str, serial: int, *, plant: str = "", year: str = "T") -> str:
    """A valid VIN for ``wmi`` (and small-maker plant code) with the given serial number."""
    vds = "AB1C2"
    tail = f"{plant}{serial % 1000:03d}" if plant else f"{serial % 1_000_000:06d}"
    return with_check_digit(f"{wmi}{vds}0{year}A{tail}")


def random_vins(wmi: str, count: int, *, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < count:
        body = (
            wmi
            + "".join(rng.choice(VIN_ALPHABET) for _ in range(5))
            + "0"
            + "T"
            + "".join(rng.choice("0123456789") for _ in range(7))
        )
        seen.add(with_check_digit(body))
    return sorted(seen)


def manufacturer(
    session: Session, code: str | None = None, *, wmis: tuple[str, ...] = ("LGX",), kind: str = "vehicle_manufacturer"
) -> Manufacturer:
    n = next(_counter)
    return organisations.create_manufacturer(
        session=session,
        code=code or f"M{n}",
        name=f"测试汽车制造有限公司{n}",
        name_en=f"Test Motor {n} Co., Ltd.",
        uscc=uscc(1000 + n),
        wmis=wmis,
        manufacturer_type=kind,
    )


def exporter(session: Session, code: str | None = None) -> Exporter:
    n = next(_counter)
    return organisations.create_exporter(
        session=session, code=code or f"E{n}", name=f"测试出口有限公司{n}", uscc=uscc(500_000 + n)
    )


def user(
    session: Session, role: str, *, manufacturer: Manufacturer | None = None, exporter: Exporter | None = None
) -> User:
    n = next(_counter)
    return accounts.create_user(
        session=session,
        email=f"user{n}@example.test",
        role=role,
        password=PASSWORD,
        manufacturer_code=manufacturer.code if manufacturer else None,
        exporter_code=exporter.code if exporter else None,
    )


def token(session: Session, user: User) -> str:
    return accounts.create_token(session=session, email=user.email)


def register(
    session: Session,
    manufacturer: Manufacturer,
    vins: list[str],
    *,
    brand: str = "Example",
    model: str = "E1",
    production_date: dt.date | None = dt.date(2025, 5, 1),
) -> None:
    session.add_all(
        RegisteredVehicle(
            manufacturer_id=manufacturer.id, vin=v, brand=brand, model=model, production_date=production_date
        )
        for v in vins
    )
    session.commit()


def outlet(
    session: Session,
    manufacturer: Manufacturer,
    *,
    code: str | None = None,
    country: str = "KZ",
    brands: str = "",
    valid_from: dt.date = dt.date(2025, 1, 1),
    valid_to: dt.date | None = None,
):  # type: ignore[no-untyped-def]
    n = next(_counter)
    return outlets.create_outlet(
        session=session,
        manufacturer=manufacturer,
        actor="test",
        values={
            "code": code or f"O-{n}",
            "country": country,
            "name": f"Service {n}",
            "provider": f"Provider {n} LLP",
            "address": f"{n} Main St",
            "city": "Almaty",
            "phone": "+7 700 000 0000",
            "email": "",
            "brands": brands,
            "valid_from": valid_from,
            "valid_to": valid_to,
        },
    )


def ca_issued(
    uscc: str,
    *,
    days: int = 365,
    not_before: dt.datetime | None = None,
    content_commitment: bool | None = None,
    organisation: str = "测试汽车制造有限公司",
    ca_common_name: str = "Test Root CA",
) -> tuple[bytes, bytes]:
    """A private key and a PEM bundle (leaf + root) as a certificate authority hands them out.

    ``content_commitment`` adds a KeyUsage extension with non-repudiation on or off; None leaves
    the extension out. ``organisation`` is the leaf's O, ``ca_common_name`` the root's CN."""
    now = clock.now_utc()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_common_name)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or now - dt.timedelta(days=1)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                    x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, uscc),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
    )
    if content_commitment is not None:
        leaf = leaf.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=content_commitment,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    certificate = leaf.sign(ca_key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
