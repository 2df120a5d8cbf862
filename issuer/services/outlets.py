"""Use cases of the outlet registry: list, add, edit (with history) and import.

Every change appends an ``OutletVersion``; a letter prints a version, never the live row.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from issuer import clock
from issuer.domain.countries import lookup_country
from issuer.domain.outlets import parse_brands
from issuer.errors import Conflict, ImportRejected, NotFound, ValidationFailed
from issuer.models import Manufacturer, Outlet, OutletVersion
from issuer.models.outlet import OUTLET_FIELDS
from issuer.services import audit
from issuer.services.organisations import get_manufacturer
from issuer.services.registry import parse_iso_date
from issuer.services.tabular import read_rows

OUTLET_COLUMNS = (
    "code",
    "country",
    "name",
    "provider",
    "address",
    "city",
    "phone",
    "email",
    "brands",
    "valid_from",
    "valid_to",
)
REQUIRED_COLUMNS = ("code", "country", "name", "provider", "address", "valid_from")
# An outlet XLSX unpacking to more than this is refused before it is parsed (a zip bomb). An
# outlet row is a few hundred bytes of sheet XML, so 50 MB is over 100,000 outlets: far more
# than any manufacturer's network, while the import keeps every parsed row in memory.
MAX_UNPACKED_BYTES = 50 * 1024 * 1024
OUTLET_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LIMITS = {"name": 200, "provider": 200, "address": 500, "city": 100, "phone": 50, "email": 254, "brands": 1000}


def _parse_date(value: object, name: str, errors: dict[str, list[str]]) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return parse_iso_date(str(value), what=name)
    except ValueError:
        errors.setdefault(name, []).append(f"{value!r} is not a date in the form YYYY-MM-DD")
        return None


def clean_outlet_fields(values: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate and normalise outlet fields; raises ``ValidationFailed`` naming every bad field.

    With ``partial`` only the given fields are checked (an edit)."""
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    for name in ("name", "provider", "address", "city", "phone", "email", "brands"):
        if name not in values:
            continue
        text = " ".join(str(values[name] or "").split())
        if len(text) > LIMITS[name]:
            errors.setdefault(name, []).append(f"longer than {LIMITS[name]} characters")
        # Outlets are printed on letters: a control character would make every letter to the
        # outlet's country unprintable (line breaks and tabs are whitespace, folded above).
        controls = sorted({f"U+{ord(c):04X}" for c in text if unicodedata.category(c) == "Cc"})
        if controls:
            errors.setdefault(name, []).append(f"holds {', '.join(controls)} (a control character)")
        cleaned[name] = text
    for name in ("name", "provider", "address"):
        if (name in values or not partial) and not cleaned.get(name):
            errors.setdefault(name, []).append("must not be empty")
    if cleaned.get("email") and not EMAIL.match(cleaned["email"]):
        errors.setdefault("email", []).append(f"{cleaned['email']!r} is not an e-mail address")
    if "brands" in cleaned:
        cleaned["brands"] = ";".join(sorted({b.strip() for b in re.split("[;；]", cleaned["brands"]) if b.strip()}))
        parse_brands(cleaned["brands"])
    if "country" in values or not partial:
        raw = str(values.get("country") or "")
        country = lookup_country(raw)
        if country is None:
            errors.setdefault("country", []).append(f"{raw!r} is not an ISO 3166-1 alpha-2 country code")
        else:
            cleaned["country"] = country.alpha2
    if "valid_from" in values or not partial:
        valid_from = _parse_date(values.get("valid_from"), "valid_from", errors)
        if valid_from is None and "valid_from" not in errors:
            errors.setdefault("valid_from", []).append("must not be empty")
        cleaned["valid_from"] = valid_from
    if "valid_to" in values:
        cleaned["valid_to"] = _parse_date(values.get("valid_to"), "valid_to", errors)
    if "active" in values:
        if not isinstance(values["active"], bool):
            errors.setdefault("active", []).append("must be true or false")
        cleaned["active"] = values["active"]
    if errors:
        summary = "; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items())
        raise ValidationFailed(f"invalid outlet: {summary}", details=errors)
    return cleaned


def _check_period(outlet: Outlet | Mapping[str, Any]) -> None:
    valid_from = outlet["valid_from"] if isinstance(outlet, Mapping) else outlet.valid_from
    valid_to = outlet.get("valid_to") if isinstance(outlet, Mapping) else outlet.valid_to
    if valid_to is not None and valid_from is not None and valid_to < valid_from:
        raise ValidationFailed(
            f"valid_to {valid_to} is before valid_from {valid_from}", details={"valid_to": ["before valid_from"]}
        )


def _record_version(outlet: Outlet, *, change: str, actor: str) -> None:
    version = OutletVersion(version=outlet.version, recorded_by=actor, change=change, recorded_at=clock.now_utc())
    for name in OUTLET_FIELDS:
        setattr(version, name, getattr(outlet, name))
    outlet.versions.append(version)


def _normalise_code(raw: str) -> str:
    code = str(raw or "").strip()
    if not OUTLET_CODE.match(code):
        raise ValidationFailed(
            f"outlet code {code!r} must be 1-64 characters of letters, digits, '.', '_' and '-'",
            details={"code": ["invalid"]},
        )
    return code.upper()


def _lock_outlets(session: Session, manufacturer_id: int) -> None:
    """Queue the writers of one manufacturer's outlets behind each other, before they read what
    they change: two at once would both add the same new code, or both raise an outlet to the
    same version. A row lock on the manufacturer on PostgreSQL (not a key update, so rows that
    refer to it can still be written meanwhile); on SQLite, the database's one write lock."""
    session.execute(text("UPDATE manufacturers SET id = id WHERE id = :id"), {"id": manufacturer_id})


def find_outlet(session: Session, manufacturer: Manufacturer, code: str) -> Outlet:
    outlet = session.scalar(
        select(Outlet).where(Outlet.manufacturer_id == manufacturer.id, Outlet.code == code.strip().upper())
    )
    if outlet is None:
        raise NotFound(f"no outlet {code.strip()!r} in {manufacturer.code}'s registry")
    return outlet


def list_outlets(
    *, session: Session, manufacturer: Manufacturer, country: str | None = None, active: bool | None = None
) -> list[Outlet]:
    query = select(Outlet).where(Outlet.manufacturer_id == manufacturer.id).order_by(Outlet.country, Outlet.code)
    if country:
        query = query.where(Outlet.country == country.strip().upper())
    if active is not None:
        query = query.where(Outlet.active.is_(active))
    return list(session.scalars(query))


def create_outlet(
    *, session: Session, manufacturer: Manufacturer, values: Mapping[str, Any], actor: str = ""
) -> Outlet:
    code = _normalise_code(values.get("code", ""))
    cleaned = clean_outlet_fields(values)
    _check_period(cleaned)
    _lock_outlets(session, manufacturer.id)
    if session.scalar(select(Outlet.id).where(Outlet.manufacturer_id == manufacturer.id, Outlet.code == code)):
        raise Conflict(f"outlet {code} already exists in {manufacturer.code}'s registry", details={"code": code})
    outlet = Outlet(manufacturer_id=manufacturer.id, code=code, version=1, updated_at=clock.now_utc(), **cleaned)
    outlet.active = cleaned.get("active", True)
    _record_version(outlet, change="created", actor=actor)
    session.add(outlet)
    audit.record(
        session,
        action="outlet.created",
        object_type="outlet",
        object_id=code,
        actor=actor or None,
        manufacturer_id=manufacturer.id,
        details={"manufacturer": manufacturer.code, **{k: v for k, v in cleaned.items() if v not in (None, "")}},
    )
    session.commit()
    return outlet


def _apply(outlet: Outlet, cleaned: Mapping[str, Any], *, change: str, actor: str) -> dict[str, Any]:
    """Apply changed fields; record a new version when anything changed. Returns the changed
    fields with their new values (empty, so false, when nothing changed)."""
    changed = {k: v for k, v in cleaned.items() if getattr(outlet, k) != v}
    if not changed:
        return {}
    for name, value in changed.items():
        setattr(outlet, name, value)
    _check_period(outlet)
    outlet.version += 1
    outlet.updated_at = clock.now_utc()
    _record_version(outlet, change=change, actor=actor)
    return changed


def update_outlet(
    *, session: Session, manufacturer: Manufacturer, code: str, values: Mapping[str, Any], actor: str = ""
) -> Outlet:
    if "code" in values and str(values["code"]).strip().upper() != code.strip().upper():
        raise ValidationFailed("an outlet's code cannot be changed", details={"code": ["read-only"]})
    _lock_outlets(session, manufacturer.id)
    outlet = find_outlet(session, manufacturer, code)
    cleaned = clean_outlet_fields({k: v for k, v in values.items() if k != "code"}, partial=True)
    try:
        changed = _apply(outlet, cleaned, change="updated", actor=actor)
    except ValidationFailed:
        session.rollback()
        raise
    if changed:
        audit.record(
            session,
            action="outlet.updated",
            object_type="outlet",
            object_id=outlet.code,
            actor=actor or None,
            manufacturer_id=manufacturer.id,
            details={"manufacturer": manufacturer.code, "version": outlet.version, "changed": changed},
        )
    session.commit()
    return outlet


@dataclass
class OutletImportResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def import_outlets(
    *, session: Session, manufacturer_code: str, path: str | Path, actor: str = ""
) -> OutletImportResult:
    """Load outlets from CSV or XLSX. All or nothing: any bad row and nothing changes.

    Re-importing a code updates that outlet (a new version when anything differs). Outlets not
    in the file are left as they are: a file may cover one country only.
    """
    manufacturer = get_manufacturer(session, manufacturer_code)
    session.commit()  # no transaction is held while the file is read
    result = OutletImportResult()
    parsed: list[tuple[int, str, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    rows = read_rows(path, columns=OUTLET_COLUMNS, required=REQUIRED_COLUMNS, max_unpacked_bytes=MAX_UNPACKED_BYTES)
    for line, values in rows:
        row = dict(zip(OUTLET_COLUMNS, values, strict=True))
        try:
            code = _normalise_code(row.pop("code"))
            if code in seen:
                raise ValidationFailed(f"outlet code {code} already appears on line {seen[code]}")
            seen[code] = line
            cleaned = clean_outlet_fields(row)
            cleaned["valid_to"] = cleaned.get("valid_to")
            _check_period(cleaned)
        except ValidationFailed as exc:
            result.rejected += 1
            result.errors.append((line, exc.message))
            continue
        parsed.append((line, code, cleaned))
    if result.errors:
        lines = "\n".join(f"line {line}: {message}" for line, message in result.errors)
        raise ImportRejected(
            f"{result.rejected} invalid row(s); nothing was imported\n{lines}",
            details=[{"line": line, "message": message} for line, message in result.errors],
        )
    _lock_outlets(session, manufacturer.id)
    existing = {o.code: o for o in session.scalars(select(Outlet).where(Outlet.manufacturer_id == manufacturer.id))}
    now = clock.now_utc()
    for _line, code, cleaned in parsed:
        outlet = existing.get(code)
        if outlet is None:
            outlet = Outlet(
                manufacturer_id=manufacturer.id, code=code, version=1, updated_at=now, active=True, **cleaned
            )
            _record_version(outlet, change="import", actor=actor)
            session.add(outlet)
            result.added += 1
        elif _apply(outlet, cleaned, change="import", actor=actor):
            result.updated += 1
        else:
            result.unchanged += 1
    audit.record(
        session,
        action="outlets.imported",
        object_type="manufacturer",
        object_id=manufacturer.code,
        actor=actor or None,
        manufacturer_id=manufacturer.id,
        details={
            "file": Path(path).name,
            "added": result.added,
            "updated": result.updated,
            "unchanged": result.unchanged,
        },
    )
    session.commit()
    return result
