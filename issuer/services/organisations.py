"""Use cases for the organisations: manufacturers (tenants), exporters and the negative list."""

from __future__ import annotations

import io
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from issuer import clock
from issuer.domain.uscc import normalise_uscc, uscc_problem
from issuer.domain.vin import Wmi, parse_wmi
from issuer.errors import Conflict, NotFound, ValidationFailed
from issuer.models import Exporter, ExporterBlock, Manufacturer, ManufacturerType, ManufacturerWmi

# Codes appear in letter numbers, which use only A-Z, 0-9 and "-".
CODE_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
MAX_CODE_CHARS = 32
MAX_NAME_CHARS = 200


def normalise_code(raw: str, *, what: str) -> str:
    """Organisation codes are short upper-case identifiers: letters, digits, '-' and '_'."""
    code = raw.strip().upper()
    if not code:
        raise ValidationFailed(f"{what} code is empty", details={"code": ["must not be empty"]})
    if len(code) > MAX_CODE_CHARS or not set(code) <= CODE_ALPHABET:
        raise ValidationFailed(
            f"{what} code {raw!r} must be 1-{MAX_CODE_CHARS} characters of A-Z, 0-9 and '-'",
            details={"code": ["invalid characters or too long"]},
        )
    return code


def _name(raw: str, *, field: str) -> str:
    name = " ".join(raw.split())
    if not name:
        raise ValidationFailed(f"{field} is empty", details={field: ["must not be empty"]})
    if len(name) > MAX_NAME_CHARS:
        raise ValidationFailed(f"{field} is longer than {MAX_NAME_CHARS} characters", details={field: ["too long"]})
    return name


def _uscc(raw: str) -> str:
    uscc = normalise_uscc(raw)
    problem = uscc_problem(uscc)
    if problem:
        raise ValidationFailed(f"unified social credit code {raw!r}: {problem}", details={"uscc": [problem]})
    return uscc


def get_manufacturer(session: Session, code: str) -> Manufacturer:
    manufacturer = session.scalar(
        select(Manufacturer).where(Manufacturer.code == code.strip().upper()).options(selectinload(Manufacturer.wmis))
    )
    if manufacturer is None:
        raise NotFound(f"no manufacturer with code {code.strip()!r}", details={"manufacturer": code})
    return manufacturer


def get_exporter(session: Session, code: str) -> Exporter:
    exporter = session.scalar(select(Exporter).where(Exporter.code == code.strip().upper()))
    if exporter is None:
        raise NotFound(f"no exporter with code {code.strip()!r}", details={"exporter": code})
    return exporter


def create_manufacturer(
    *,
    session: Session,
    code: str,
    name: str,
    name_en: str,
    uscc: str,
    wmis: Sequence[str],
    manufacturer_type: str = ManufacturerType.VEHICLE_MANUFACTURER.value,
) -> Manufacturer:
    """Add a tenant. Its WMIs must be free: a WMI identifies exactly one manufacturer."""
    code = normalise_code(code, what="manufacturer")
    try:
        kind = ManufacturerType(manufacturer_type)
    except ValueError:
        allowed = ", ".join(t.value for t in ManufacturerType)
        raise ValidationFailed(
            f"manufacturer type {manufacturer_type!r} is not one of {allowed}", details={"type": [allowed]}
        ) from None
    parsed: list[Wmi] = []
    for text in wmis:
        try:
            wmi = parse_wmi(text)
        except ValueError as exc:
            raise ValidationFailed(str(exc), details={"wmi": [str(exc)]}) from None
        if wmi in parsed:
            raise ValidationFailed(f"WMI {wmi} is given twice", details={"wmi": [f"{wmi} given twice"]})
        parsed.append(wmi)
    manufacturer = Manufacturer(
        code=code,
        type=kind.value,
        name=_name(name, field="name"),
        name_en=_name(name_en, field="name_en"),
        uscc=_uscc(uscc),
    )
    if session.scalar(select(Manufacturer.id).where(Manufacturer.code == code)) is not None:
        raise Conflict(f"a manufacturer with code {code} already exists", details={"code": code})
    if session.scalar(select(Manufacturer.code).where(Manufacturer.uscc == manufacturer.uscc)) is not None:
        raise Conflict(f"a manufacturer with credit code {manufacturer.uscc} already exists")
    for wmi in parsed:
        holder = session.scalar(
            select(Manufacturer.code)
            .join(ManufacturerWmi)
            .where(ManufacturerWmi.wmi == wmi.code, ManufacturerWmi.plant_code == wmi.plant_code)
        )
        if holder is not None:
            raise Conflict(f"WMI {wmi} already belongs to manufacturer {holder}", details={"wmi": str(wmi)})
        manufacturer.wmis.append(ManufacturerWmi(wmi=wmi.code, plant_code=wmi.plant_code))
    session.add(manufacturer)
    session.commit()
    return manufacturer


def create_exporter(*, session: Session, code: str, name: str, uscc: str, name_en: str = "") -> Exporter:
    code = normalise_code(code, what="exporter")
    exporter = Exporter(code=code, name=_name(name, field="name"), name_en=" ".join(name_en.split()), uscc=_uscc(uscc))
    if session.scalar(select(Exporter.id).where(Exporter.code == code)) is not None:
        raise Conflict(f"an exporter with code {code} already exists", details={"code": code})
    if session.scalar(select(Exporter.code).where(Exporter.uscc == exporter.uscc)) is not None:
        raise Conflict(f"an exporter with credit code {exporter.uscc} already exists")
    session.add(exporter)
    session.commit()
    return exporter


def active_block(session: Session, *, manufacturer_id: int, exporter_id: int) -> ExporterBlock | None:
    return session.scalar(
        select(ExporterBlock).where(
            ExporterBlock.manufacturer_id == manufacturer_id,
            ExporterBlock.exporter_id == exporter_id,
            ExporterBlock.lifted_at.is_(None),
        )
    )


def block_exporter(
    *, session: Session, manufacturer_code: str, exporter_code: str, reason: str, actor: str = ""
) -> ExporterBlock:
    """Put an exporter on the manufacturer's negative list; it then gets no letters from it."""
    manufacturer = get_manufacturer(session, manufacturer_code)
    exporter = get_exporter(session, exporter_code)
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationFailed("a reason is required to block an exporter", details={"reason": ["must not be empty"]})
    if active_block(session, manufacturer_id=manufacturer.id, exporter_id=exporter.id) is not None:
        raise Conflict(f"exporter {exporter.code} is already on {manufacturer.code}'s negative list")
    block = ExporterBlock(manufacturer_id=manufacturer.id, exporter_id=exporter.id, reason=reason, blocked_by=actor)
    session.add(block)
    session.commit()
    return block


def unblock_exporter(
    *, session: Session, manufacturer_code: str, exporter_code: str, reason: str = "", actor: str = ""
) -> ExporterBlock:
    manufacturer = get_manufacturer(session, manufacturer_code)
    exporter = get_exporter(session, exporter_code)
    block = active_block(session, manufacturer_id=manufacturer.id, exporter_id=exporter.id)
    if block is None:
        raise Conflict(f"exporter {exporter.code} is not on {manufacturer.code}'s negative list")
    block.lifted_at = clock.now_utc()
    block.lifted_by = actor
    block.lift_reason = " ".join(reason.split()) or None
    session.commit()
    return block


def exporters_asking(session: Session, *, manufacturer_id: int) -> list[Exporter]:
    """The exporters that have asked the manufacturer for letters, by code: the ones its
    negative-list form suggests (others are named by their code; exporters are not listed to
    a manufacturer that has had nothing to do with them)."""
    from issuer.models import LetterRequest

    asking = select(LetterRequest.exporter_id).where(LetterRequest.manufacturer_id == manufacturer_id)
    return list(session.scalars(select(Exporter).where(Exporter.id.in_(asking)).order_by(Exporter.code)))


def list_blocks(session: Session, *, manufacturer_id: int) -> list[ExporterBlock]:
    """The manufacturer's negative list with its history: entries in force first, then the
    lifted ones, newest first within each."""
    return list(
        session.scalars(
            select(ExporterBlock)
            .where(ExporterBlock.manufacturer_id == manufacturer_id)
            .options(selectinload(ExporterBlock.exporter))
            .order_by(ExporterBlock.lifted_at.is_not(None), ExporterBlock.blocked_at.desc(), ExporterBlock.id.desc())
        )
    )


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SEAL_IMAGE_BYTES = 2 * 1024 * 1024


def set_seal_image(*, session: Session, manufacturer_code: str, image: bytes) -> Manufacturer:
    """Store the image of the manufacturer's official seal (a PNG, ideally with transparency)."""
    manufacturer = get_manufacturer(session, manufacturer_code)
    if not image.startswith(PNG_SIGNATURE):
        raise ValidationFailed("the seal image must be a PNG file")
    if len(image) > MAX_SEAL_IMAGE_BYTES:
        raise ValidationFailed(f"the seal image is larger than {MAX_SEAL_IMAGE_BYTES // (1024 * 1024)} MB")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(image)) as picture:
            picture.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValidationFailed(f"the seal image is not a readable PNG ({exc})") from None
    manufacturer.seal_image = image
    session.commit()
    return manufacturer
