"""Use cases for the organisations: manufacturers (tenants), exporters and the negative list."""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from issuer import clock
from issuer.domain.uscc import normalise_uscc, uscc_problem
from issuer.domain.vin import Wmi, parse_wmi
from issuer.errors import Conflict, NotFound, ValidationFailed
from issuer.models import Exporter, ExporterBlock, Manufacturer, ManufacturerType, ManufacturerWmi, Role, User
from issuer.models.manufacturer import DEFAULT_LETTER_VALIDITY_DAYS
from issuer.services import audit

# Codes appear in letter numbers, which use only A-Z, 0-9 and "-".
CODE_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
MAX_CODE_CHARS = 32
MAX_NAME_CHARS = 200
# A letter valid for more than ten years would outlive any export licence it supports.
MAX_LETTER_VALIDITY_DAYS = 3650


def normalise_code(raw: str, *, what: str) -> str:
    """Organisation codes are short upper-case identifiers: letters, digits, '-' and '_'.

    Anything but ASCII is refused, not upper-cased: "ß" or "ﬁ" would become "SS" or "FI", a
    code nobody typed, and "ＡＣＭＥ" or Cyrillic "АСМЕ" would be look-alikes of "ACME"."""
    stripped = raw.strip()
    code = stripped.upper()
    if not code:
        raise ValidationFailed(f"{what} code is empty", details={"code": ["must not be empty"]})
    if len(code) > MAX_CODE_CHARS or not stripped.isascii() or not set(code) <= CODE_ALPHABET:
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


def _manufacturer_type(raw: str) -> ManufacturerType:
    try:
        return ManufacturerType(raw)
    except ValueError:
        allowed = ", ".join(t.value for t in ManufacturerType)
        raise ValidationFailed(
            f"manufacturer type {raw!r} is not one of {allowed}", details={"type": [allowed]}
        ) from None


def _parse_wmis(texts: Sequence[str]) -> list[Wmi]:
    parsed: list[Wmi] = []
    for text in texts:
        try:
            wmi = parse_wmi(text)
        except ValueError as exc:
            raise ValidationFailed(
                f"WMI {text.strip()!r}: {exc}", details={"wmi": [f"{text.strip()}: {exc}"]}
            ) from None
        if wmi in parsed:
            raise ValidationFailed(f"WMI {wmi} is given twice", details={"wmi": [f"{wmi} given twice"]})
        parsed.append(wmi)
    return parsed


def _wmi_holder(session: Session, wmi: Wmi) -> str | None:
    return session.scalar(
        select(Manufacturer.code)
        .join(ManufacturerWmi)
        .where(ManufacturerWmi.wmi == wmi.code, ManufacturerWmi.plant_code == wmi.plant_code)
    )


def _letter_validity(days: int | None) -> int | None:
    """Days a letter stays valid after its date of issue; None means letters have no end date."""
    if days is not None and not 1 <= days <= MAX_LETTER_VALIDITY_DAYS:
        message = f"must be between 1 and {MAX_LETTER_VALIDITY_DAYS} days"
        raise ValidationFailed(f"letter validity {message}", details={"letter_validity_days": [message]})
    return days


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
    letter_validity_days: int | None = DEFAULT_LETTER_VALIDITY_DAYS,
) -> Manufacturer:
    """Add a tenant. Its WMIs must be free: a WMI identifies exactly one manufacturer."""
    code = normalise_code(code, what="manufacturer")
    kind = _manufacturer_type(manufacturer_type)
    parsed = _parse_wmis(wmis)
    manufacturer = Manufacturer(
        code=code,
        type=kind.value,
        name=_name(name, field="name"),
        name_en=_name(name_en, field="name_en"),
        uscc=_uscc(uscc),
        letter_validity_days=_letter_validity(letter_validity_days),
    )
    if session.scalar(select(Manufacturer.id).where(Manufacturer.code == code)) is not None:
        raise Conflict(f"a manufacturer with code {code} already exists", details={"code": code})
    holder_of_uscc = session.scalar(select(Manufacturer.code).where(Manufacturer.uscc == manufacturer.uscc))
    if holder_of_uscc is not None:
        raise Conflict(
            f"a manufacturer with credit code {manufacturer.uscc} already exists",
            details={"uscc": [f"already the credit code of {holder_of_uscc}"]},
        )
    for wmi in parsed:
        holder = _wmi_holder(session, wmi)
        if holder is not None:
            raise Conflict(f"WMI {wmi} already belongs to manufacturer {holder}", details={"wmi": str(wmi)})
        manufacturer.wmis.append(ManufacturerWmi(wmi=wmi.code, plant_code=wmi.plant_code))
    session.add(manufacturer)
    session.flush()  # its id scopes the audit entry to the new tenant
    audit.record(
        session,
        action="manufacturer.created",
        object_type="manufacturer",
        object_id=manufacturer.code,
        manufacturer_id=manufacturer.id,
        details={
            "name": manufacturer.name,
            "name_en": manufacturer.name_en,
            "uscc": manufacturer.uscc,
            "type": manufacturer.type,
            "wmis": [str(wmi) for wmi in parsed],
        },
    )
    session.commit()
    return manufacturer


def create_exporter(*, session: Session, code: str, name: str, uscc: str, name_en: str = "") -> Exporter:
    code = normalise_code(code, what="exporter")
    exporter = Exporter(code=code, name=_name(name, field="name"), name_en=" ".join(name_en.split()), uscc=_uscc(uscc))
    if session.scalar(select(Exporter.id).where(Exporter.code == code)) is not None:
        raise Conflict(f"an exporter with code {code} already exists", details={"code": code})
    holder_of_uscc = session.scalar(select(Exporter.code).where(Exporter.uscc == exporter.uscc))
    if holder_of_uscc is not None:
        raise Conflict(
            f"an exporter with credit code {exporter.uscc} already exists",
            details={"uscc": [f"already the credit code of {holder_of_uscc}"]},
        )
    session.add(exporter)
    session.flush()  # its id scopes the audit entry to the new exporter
    audit.record(
        session,
        action="exporter.created",
        object_type="exporter",
        object_id=exporter.code,
        exporter_id=exporter.id,
        details={"name": exporter.name, "name_en": exporter.name_en, "uscc": exporter.uscc},
    )
    session.commit()
    return exporter


def update_manufacturer(
    *,
    session: Session,
    code: str,
    name: str,
    name_en: str,
    manufacturer_type: str,
    letter_validity_days: int | None,
    wmis: Sequence[str],
    actor: str | None = None,
) -> Manufacturer:
    """Correct a manufacturer: its names, its type, how long its letters stay valid, its WMIs.

    The code and the unified social credit code cannot be changed. The code is part of every
    letter number and seal key id already issued, and of the key-set entries reviewers check
    old letters against: a new code would leave them naming a manufacturer that no longer
    exists. The credit code identifies the legal entity and is in the seal certificates
    (organizationIdentifier): a different credit code is a different enterprise, so it is a new
    manufacturer, not an edit. Renaming keeps the current seal key, whose self-issued
    certificate still names the old name, until the key is rotated.

    Removing a WMI stops routing that WMI's VINs to this manufacturer from now on; letters
    already issued are unchanged. An added WMI must be free, as on creation. A type that may
    not issue stops new letters at the next decision (the rules check ``may_issue``).
    """
    manufacturer = get_manufacturer(session, code)
    kind = _manufacturer_type(manufacturer_type)
    new_name = _name(name, field="name")
    new_name_en = _name(name_en, field="name_en")
    validity = _letter_validity(letter_validity_days)
    parsed = _parse_wmis(wmis)
    held = {Wmi(w.wmi, w.plant_code): w for w in manufacturer.wmis}
    for wmi in parsed:
        if wmi not in held:
            holder = _wmi_holder(session, wmi)
            if holder is not None:
                raise Conflict(
                    f"WMI {wmi} already belongs to manufacturer {holder}",
                    details={"wmi": [f"{wmi} already belongs to {holder}"]},
                )
    changes: dict[str, list[object]] = {}
    for field, old, new in (
        ("name", manufacturer.name, new_name),
        ("name_en", manufacturer.name_en, new_name_en),
        ("type", manufacturer.type, kind.value),
        ("letter_validity_days", manufacturer.letter_validity_days, validity),
    ):
        if old != new:
            changes[field] = [old, new]
    old_wmis = [str(w) for w in manufacturer.wmi_values()]
    if set(held) != set(parsed):
        changes["wmis"] = [old_wmis, [str(w) for w in parsed]]
    if not changes:
        return manufacturer
    manufacturer.name, manufacturer.name_en = new_name, new_name_en
    manufacturer.type, manufacturer.letter_validity_days = kind.value, validity
    for wmi, row in held.items():
        if wmi not in parsed:
            manufacturer.wmis.remove(row)
    session.flush()  # a WMI given back is free before it is taken again (unique wmi + plant)
    for wmi in parsed:
        if wmi not in held:
            manufacturer.wmis.append(ManufacturerWmi(wmi=wmi.code, plant_code=wmi.plant_code))
    audit.record(
        session,
        action="manufacturer.updated",
        object_type="manufacturer",
        object_id=manufacturer.code,
        actor=actor,
        manufacturer_id=manufacturer.id,
        details={"changes": changes},
    )
    session.commit()
    return manufacturer


def list_manufacturers(session: Session) -> list[Manufacturer]:
    """Every tenant, by code (the platform administrator's list)."""
    return list(
        session.scalars(select(Manufacturer).options(selectinload(Manufacturer.wmis)).order_by(Manufacturer.code))
    )


def list_exporters(session: Session) -> list[Exporter]:
    """Every exporter, by code (the platform administrator's list)."""
    return list(session.scalars(select(Exporter).order_by(Exporter.code)))


def manufacturer_for(session: Session, user: User, code: str) -> Manufacturer:
    """The manufacturer ``code`` as ``user`` may manage it: a platform administrator any, its
    staff only their own; any other manufacturer is not found, as if it did not exist."""
    if user.user_role is Role.PLATFORM_ADMIN:
        return get_manufacturer(session, code)
    own = user.manufacturer if user.user_role.is_manufacturer_staff else None
    if own is not None and own.code == code.strip().upper():
        return get_manufacturer(session, code)
    raise NotFound(f"no manufacturer with code {code.strip()!r}", details={"manufacturer": code})


def has_seal_image(session: Session, manufacturer: Manufacturer) -> bool:
    """Whether a seal image is stored, without loading the (deferred) image itself."""
    query = select(Manufacturer.id).where(Manufacturer.id == manufacturer.id, Manufacturer.seal_image.is_not(None))
    return session.scalar(query) is not None


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
    audit.record(
        session,
        action="exporter.blocked",
        object_type="exporter",
        object_id=exporter.code,
        actor=actor or None,
        manufacturer_id=manufacturer.id,
        exporter_id=exporter.id,
        details={"manufacturer": manufacturer.code, "reason": reason},
    )
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
    audit.record(
        session,
        action="exporter.unblocked",
        object_type="exporter",
        object_id=exporter.code,
        actor=actor or None,
        manufacturer_id=manufacturer.id,
        exporter_id=exporter.id,
        details={"manufacturer": manufacturer.code, "reason": block.lift_reason},
    )
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
# Printed about 42 mm wide, a seal needs no more than ~2,400 dpi. A PNG of one colour packs
# 10,000 x 10,000 pixels (400 MB once decoded, for every letter rendered) into 12 kB.
MAX_SEAL_IMAGE_SIDE = 4096


def set_seal_image(*, session: Session, manufacturer_code: str, image: bytes) -> Manufacturer:
    """Store the image of the manufacturer's official seal (a PNG, ideally with transparency)."""
    manufacturer = get_manufacturer(session, manufacturer_code)
    if not image.startswith(PNG_SIGNATURE):
        raise ValidationFailed("the seal image must be a PNG file")
    if len(image) > MAX_SEAL_IMAGE_BYTES:
        raise ValidationFailed(f"the seal image is larger than {MAX_SEAL_IMAGE_BYTES // (1024 * 1024)} MB")
    if image[12:16] == b"IHDR" and len(image) >= 24:  # the header chunk, first in a PNG: width, height
        width, height = struct.unpack(">II", image[16:24])
        if max(width, height) > MAX_SEAL_IMAGE_SIDE:
            raise ValidationFailed(
                f"the seal image is {width} x {height} pixels; at most {MAX_SEAL_IMAGE_SIDE} x "
                f"{MAX_SEAL_IMAGE_SIDE} are printed"
            )
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(image)) as picture:
            picture.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValidationFailed(f"the seal image is not a readable PNG ({exc})") from None
    manufacturer.seal_image = image
    audit.record(
        session,
        action="manufacturer.seal_image_set",
        object_type="manufacturer",
        object_id=manufacturer.code,
        manufacturer_id=manufacturer.id,
        details={"bytes": len(image), "sha256": hashlib.sha256(image).hexdigest()},
    )
    session.commit()
    return manufacturer
