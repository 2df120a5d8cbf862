"""Use cases of the seal keys: generate, import and rotate; the published key set.

The newest unretired key of a manufacturer signs; every key ever used stays in the table (and
in ``/.well-known/letter-keys.json``) so that old letters keep verifying after a rotation.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from issuer import clock
from issuer.errors import Conflict, ValidationFailed
from issuer.models import Manufacturer, SealKey
from issuer.sealing.keys import (
    KeyMaterialError,
    SealMaterial,
    certificate_pem,
    generate_material,
    key_id,
    load_imported_material,
    write_private_key,
)
from issuer.services import audit
from issuer.services.organisations import get_manufacturer

# Every letter's signature embeds the chain: a CA's chain holds two or three certificates; a
# file of thousands would swell every letter (or break its sealing) and is no chain.
MAX_CHAIN_CERTIFICATES = 8


def current_key(session: Session, manufacturer: Manufacturer) -> SealKey | None:
    """The key that signs now: the newest one not retired."""
    return session.scalar(
        select(SealKey)
        .where(SealKey.manufacturer_id == manufacturer.id, SealKey.retired_at.is_(None))
        .order_by(SealKey.created_at.desc(), SealKey.id.desc())
        .limit(1)
    )


def _store(
    session: Session,
    manufacturer: Manufacturer,
    material: SealMaterial,
    *,
    keys_dir: Path,
    passphrase: str,
    source: str,
) -> SealKey:
    kid = key_id(manufacturer.code, material.certificate)
    if session.scalar(select(SealKey.id).where(SealKey.kid == kid)) is not None:
        raise Conflict(f"the key {kid} is already registered")
    key_file = f"{kid}.key.pem"
    record = SealKey(
        kid=kid,
        manufacturer_id=manufacturer.id,
        algorithm=material.algorithm,
        certificate_pem=certificate_pem(material.certificate),
        chain_pem="".join(certificate_pem(c) for c in material.chain),
        source=source,
        key_file=key_file,
        not_before=material.certificate.not_valid_before_utc,
        not_after=material.certificate.not_valid_after_utc,
        created_at=clock.now_utc(),
    )
    session.add(record)
    session.flush()  # the unique kid is claimed before the file is written
    write_private_key(material, keys_dir / key_file, passphrase=passphrase)
    return record


def _commit_keeping_file_consistent(
    session: Session, record: SealKey, keys_dir: Path, *, action: str, retired: SealKey | None = None
) -> SealKey:
    """Record the change in the audit trail and commit; if either fails, remove the key file
    just written so no orphan stays."""
    try:
        audit.record(
            session,
            action=action,
            object_type="key",
            object_id=record.kid,
            manufacturer_id=record.manufacturer_id,
            details={
                "algorithm": record.algorithm,
                "source": record.source,
                "not_before": record.not_before,
                "not_after": record.not_after,
                "retired": retired.kid if retired is not None else None,
            },
        )
        session.commit()
    except BaseException:
        session.rollback()
        (keys_dir / record.key_file).unlink(missing_ok=True)
        raise
    return record


def _retire_current(session: Session, manufacturer: Manufacturer) -> SealKey | None:
    previous = current_key(session, manufacturer)
    if previous is not None:
        previous.retired_at = clock.now_utc()
    return previous


def generate_key(*, session: Session, manufacturer_code: str, keys_dir: Path, passphrase: str) -> SealKey:
    """Create the manufacturer's first seal key with a self-issued certificate."""
    manufacturer = get_manufacturer(session, manufacturer_code)
    existing = current_key(session, manufacturer)
    if existing is not None:
        raise Conflict(f"{manufacturer.code} already has the seal key {existing.kid}; use `issuer keys rotate`")
    material = generate_material(name=manufacturer.name, uscc=manufacturer.uscc, now=clock.now_utc())
    record = _store(session, manufacturer, material, keys_dir=keys_dir, passphrase=passphrase, source="generated")
    return _commit_keeping_file_consistent(session, record, keys_dir, action="key.generated")


def rotate_key(*, session: Session, manufacturer_code: str, keys_dir: Path, passphrase: str) -> SealKey:
    """Retire the signing key and create a new one; the old one keeps verifying."""
    manufacturer = get_manufacturer(session, manufacturer_code)
    retired = _retire_current(session, manufacturer)
    material = generate_material(name=manufacturer.name, uscc=manufacturer.uscc, now=clock.now_utc())
    record = _store(session, manufacturer, material, keys_dir=keys_dir, passphrase=passphrase, source="generated")
    return _commit_keeping_file_consistent(session, record, keys_dir, action="key.rotated", retired=retired)


def import_key(
    *,
    session: Session,
    manufacturer_code: str,
    key_pem: bytes,
    certificates_pem: bytes,
    key_password: bytes | None,
    keys_dir: Path,
    passphrase: str,
) -> SealKey:
    """Make a CA-issued key and certificate chain the signing key (the current one is retired).

    The certificate must be valid now and name the manufacturer's unified social credit code."""
    manufacturer = get_manufacturer(session, manufacturer_code)
    try:
        material = load_imported_material(key_pem=key_pem, certificates_pem=certificates_pem, key_password=key_password)
    except KeyMaterialError as exc:
        raise ValidationFailed(str(exc)) from None
    if len(material.chain) > MAX_CHAIN_CERTIFICATES:
        raise ValidationFailed(
            f"the certificate file holds {len(material.chain) + 1} certificates; a seal's certificate and its "
            f"chain are at most {MAX_CHAIN_CERTIFICATES + 1}"
        )
    now = clock.now_utc()
    certificate = material.certificate
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise ValidationFailed(
            f"the certificate is valid from {certificate.not_valid_before_utc:%Y-%m-%d} "
            f"to {certificate.not_valid_after_utc:%Y-%m-%d}, not now"
        )
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.content_commitment:
        raise ValidationFailed(
            "the certificate does not allow non-repudiation (content commitment) signatures; "
            "PDF validators refuse such seals — ask the CA for a document-signing certificate"
        )
    subject = certificate.subject.rfc4514_string()
    if manufacturer.uscc not in subject:
        raise ValidationFailed(
            f"the certificate subject ({subject}) does not name {manufacturer.code}'s credit code {manufacturer.uscc}"
        )
    retired = _retire_current(session, manufacturer)
    record = _store(session, manufacturer, material, keys_dir=keys_dir, passphrase=passphrase, source="imported")
    return _commit_keeping_file_consistent(session, record, keys_dir, action="key.imported", retired=retired)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def published_keys(session: Session) -> list[dict[str, Any]]:
    """Every seal key ever used, for ``/.well-known/letter-keys.json``."""
    rows = session.scalars(select(SealKey).options(joinedload(SealKey.manufacturer)).order_by(SealKey.id))
    return [
        {
            "kid": key.kid,
            "manufacturer": key.manufacturer.code,
            "manufacturer_name": key.manufacturer.name,
            "alg": key.algorithm,
            "not_before": _iso(key.not_before),
            "not_after": _iso(key.not_after),
            "created_at": _iso(key.created_at),
            "retired_at": _iso(key.retired_at),
            "source": key.source,
            "certificate": key.certificate_pem,
            "chain": key.chain_pem,
        }
        for key in rows
    ]


def certificate_of(key: SealKey) -> x509.Certificate:
    return x509.load_pem_x509_certificate(key.certificate_pem.encode("ascii"))


def keys_of(session: Session, manufacturer: Manufacturer) -> list[SealKey]:
    """Every seal key of the manufacturer, the signing one first, then the retired ones newest first."""
    query = (
        select(SealKey)
        .where(SealKey.manufacturer_id == manufacturer.id)
        .order_by(SealKey.retired_at.is_not(None), SealKey.created_at.desc(), SealKey.id.desc())
    )
    return list(session.scalars(query))


def signing_keys(session: Session) -> dict[int, SealKey]:
    """The current (unretired) key of every manufacturer that has one, by manufacturer id."""
    current: dict[int, SealKey] = {}
    query = select(SealKey).where(SealKey.retired_at.is_(None)).order_by(SealKey.created_at, SealKey.id)
    for key in session.scalars(query):
        current[key.manufacturer_id] = key  # the newest wins, as in current_key
    return current
