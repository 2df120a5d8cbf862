"""Use cases of the exporter's side: precheck a list of vehicles, file a request, read requests.

The rules live in ``issuer.domain.eligibility``; this module only gathers what they need from
the database with set-based queries (one query for the VINs, one for the outlets), so a
10,000-vehicle list costs a handful of round trips.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, String, any_, bindparam, case, exists, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, selectinload

from issuer import clock
from issuer.domain.eligibility import (
    Assessment,
    AssessmentContext,
    IssuerProfile,
    ManufacturerWmis,
    ReasonCode,
    RegistryEntry,
    VehicleDeclaration,
    Verdict,
    assess,
    split_by_manufacturer,
)
from issuer.domain.vin import is_well_formed, normalise_vin
from issuer.errors import NotFound, ValidationFailed
from issuer.models import (
    Exporter,
    LetterRequest,
    Manufacturer,
    Outlet,
    RegisteredVehicle,
    RequestStatus,
    RequestVehicle,
    User,
)
from issuer.services import audit, idempotency
from issuer.services.coverage import covered_vins
from issuer.services.organisations import active_block
from issuer.services.scoping import scoped

LOOKUP_CHUNK = 900  # under SQLite's default 999 bound parameters


@dataclass(frozen=True)
class ManufacturerAssessment:
    manufacturer: Manufacturer
    indexes: tuple[int, ...]  # positions in the submitted list
    assessment: Assessment


@dataclass(frozen=True)
class SplitPrecheck:
    groups: tuple[ManufacturerAssessment, ...]
    unassigned: tuple[tuple[int, str, ReasonCode], ...]  # (position, normalised VIN, reason)


def _manufacturer_for(session: Session, code: str) -> Manufacturer:
    manufacturer = session.scalar(
        select(Manufacturer).where(Manufacturer.code == code.strip().upper()).options(selectinload(Manufacturer.wmis))
    )
    if manufacturer is None:
        raise ValidationFailed(
            f"no manufacturer with code {code.strip()!r} is hosted here",
            details={"manufacturer": [f"unknown manufacturer {code.strip()!r}"]},
        )
    return manufacturer


def _matching(session: Session, column: ColumnElement[str], values: list[str]) -> list[ColumnElement[bool]]:
    """Conditions that together select the rows whose ``column`` is one of ``values``, one query
    each. PostgreSQL takes the values as one array parameter and SQLite as one JSON list; other
    databases get IN-lists of LOOKUP_CHUNK. (As IN-lists, 10,000 VINs would be a dozen queries,
    each compiling and sending 900 parameters.)"""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return [column == any_(bindparam("values", values, type_=ARRAY(String)))]
    if dialect == "sqlite":
        listed = func.json_each(bindparam("values", json.dumps(values))).table_valued("value")
        return [column.in_(select(listed.c.value))]
    return [column.in_(values[i : i + LOOKUP_CHUNK]) for i in range(0, len(values), LOOKUP_CHUNK)]


def _registry_entries(session: Session, manufacturer_id: int, vins: Sequence[str]) -> dict[str, RegistryEntry]:
    wanted = sorted({vin for vin in vins if is_well_formed(vin)})
    entries: dict[str, RegistryEntry] = {}
    if not wanted:
        return entries
    for condition in _matching(session, RegisteredVehicle.vin, wanted):
        rows = session.execute(
            select(
                RegisteredVehicle.vin,
                RegisteredVehicle.brand,
                RegisteredVehicle.model,
                RegisteredVehicle.production_date,
            ).where(RegisteredVehicle.manufacturer_id == manufacturer_id, condition)
        )
        for vin, brand, model, production_date in rows:
            entries[vin] = RegistryEntry(brand=brand, model=model, production_date=production_date)
    return entries


def assessment_context(
    session: Session,
    *,
    manufacturer: Manufacturer,
    exporter: Exporter | None,
    vehicles: Sequence[VehicleDeclaration],
    application_date: dt.date,
    today: dt.date,
    ignore_letter_id: int | None = None,
) -> AssessmentContext:
    """Everything the rules need to judge these vehicles for this manufacturer today."""
    vins = [normalise_vin(v.vin) for v in vehicles]
    keeps_registry = bool(session.scalar(select(exists().where(RegisteredVehicle.manufacturer_id == manufacturer.id))))
    outlets = tuple(
        o.coverage(o.code) for o in session.scalars(select(Outlet).where(Outlet.manufacturer_id == manufacturer.id))
    )
    blocked = exporter is not None and (
        active_block(session, manufacturer_id=manufacturer.id, exporter_id=exporter.id) is not None
    )
    return AssessmentContext(
        issuer=IssuerProfile(
            code=manufacturer.code,
            wmis=manufacturer.wmi_values(),
            may_issue=manufacturer.may_issue,
            keeps_registry=keeps_registry,
        ),
        today=today,
        application_date=application_date,
        registry=_registry_entries(session, manufacturer.id, vins) if keeps_registry else {},
        outlets=outlets,
        covered_vins=covered_vins(
            session, (v for v in vins if is_well_formed(v)), today=today, ignore_letter_id=ignore_letter_id
        ),
        exporter_blocked=blocked,
    )


def precheck_for_manufacturer(
    *,
    session: Session,
    manufacturer_code: str,
    exporter: Exporter | None,
    application_date: dt.date,
    vehicles: Sequence[VehicleDeclaration],
    ignore_letter_id: int | None = None,
) -> tuple[Manufacturer, Assessment]:
    """Verdicts for every vehicle as if the manufacturer were asked for a letter today."""
    manufacturer = _manufacturer_for(session, manufacturer_code)
    context = assessment_context(
        session,
        manufacturer=manufacturer,
        exporter=exporter,
        vehicles=vehicles,
        application_date=application_date,
        today=clock.today_in_china(),
        ignore_letter_id=ignore_letter_id,
    )
    return manufacturer, assess(vehicles, context)


def precheck_split(
    *,
    session: Session,
    exporter: Exporter | None,
    application_date: dt.date,
    vehicles: Sequence[VehicleDeclaration],
) -> SplitPrecheck:
    """Split a mixed list by WMI across the hosted manufacturers and assess each part."""
    manufacturers = list(session.scalars(select(Manufacturer).options(selectinload(Manufacturer.wmis))))
    by_code = {m.code: m for m in manufacturers}
    vins = [v.vin for v in vehicles]
    parts, unassigned = split_by_manufacturer(
        vins, [ManufacturerWmis(code=m.code, wmis=m.wmi_values()) for m in manufacturers]
    )
    today = clock.today_in_china()
    groups = []
    for code in sorted(parts):
        indexes = parts[code]
        part = [vehicles[i] for i in indexes]
        context = assessment_context(
            session,
            manufacturer=by_code[code],
            exporter=exporter,
            vehicles=part,
            application_date=application_date,
            today=today,
        )
        groups.append(ManufacturerAssessment(by_code[code], tuple(indexes), assess(part, context)))
    return SplitPrecheck(
        groups=tuple(groups),
        unassigned=tuple((i, normalise_vin(vins[i]), reason) for i, reason in unassigned),
    )


def _refuse_look_alikes(vehicles: Sequence[VehicleDeclaration]) -> None:
    """A request stores its vehicles as typed, refused ones too. A VIN or destination holding
    anything but printable ASCII (a Cyrillic А, a full-width Ｌ, a zero-width space, a
    right-to-left override) would be stored as a look-alike of a real one, so such a request
    is refused, naming each vehicle. (The precheck, which stores nothing, answers VIN_FORMAT
    and DESTINATION_INVALID for them.) Surrounding white space is not part of the value."""
    errors: dict[str, list[str]] = {}
    for index, vehicle in enumerate(vehicles):
        for name in ("vin", "destination"):
            foreign = next((ch for ch in getattr(vehicle, name).strip() if not " " <= ch <= "~"), None)
            if foreign is not None:
                label = unicodedata.name(foreign, "a control character")
                errors[f"vehicles[{index}].{name}"] = [
                    f"holds U+{ord(foreign):04X} ({label}), not an ASCII letter or digit"
                ]
    if errors:
        shown = "; ".join(f"{field}: {messages[0]}" for field, messages in list(errors.items())[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ValidationFailed(f"nothing was filed: {shown}{more}", details=errors)


def submit_request(
    *,
    session: Session,
    user: User,
    manufacturer_code: str,
    application_date: dt.date,
    reference: str,
    vehicles: Sequence[VehicleDeclaration],
    supersedes: str | None = None,
    idempotency_filing: idempotency.IdempotentFiling | None = None,
) -> tuple[LetterRequest, Assessment]:
    """File a request to a manufacturer: stores every vehicle with its verdict; starts ``submitted``.

    With ``supersedes`` the request corrects one of the exporter's valid letters from this
    manufacturer: that letter's VINs do not count as covered, and it is superseded on issue.
    With ``idempotency_filing`` (its key claimed by ``idempotency.claim``) the key and the answer
    are stored in the same transaction as the request."""
    if user.exporter is None:
        raise ValidationFailed("only a user of an exporter can file a request")
    _refuse_look_alikes(vehicles)
    superseded_id = None
    if supersedes:
        superseded_id = _correctable_letter(session, user, manufacturer_code, supersedes)
    manufacturer, assessment = precheck_for_manufacturer(
        session=session,
        manufacturer_code=manufacturer_code,
        exporter=user.exporter,
        application_date=application_date,
        vehicles=vehicles,
        ignore_letter_id=superseded_id,
    )
    request = LetterRequest(
        manufacturer_id=manufacturer.id,
        exporter_id=user.exporter.id,
        submitted_by_id=user.id,
        application_date=application_date,
        reference=" ".join(reference.split()),
        status=RequestStatus.SUBMITTED.value,
        warnings=[{"code": w.code, "message": w.message, "details": dict(w.details)} for w in assessment.warnings],
        assessed_on=clock.today_in_china(),
        created_at=clock.now_utc(),
        supersedes_number=supersedes.strip().upper() if supersedes else None,
    )
    request.vehicles = [
        RequestVehicle(
            position=position,
            vin=verdict.vin,
            brand=declared.brand,
            model=declared.model,
            registration_date=declared.registration_date,
            export_transfer_date=declared.export_transfer_date,
            destination=verdict.destination.alpha2 if verdict.destination else declared.destination.strip().upper(),
            verdict=verdict.verdict.value,
            reasons=[r.value for r in verdict.reasons],
            letter_not_needed_from=verdict.letter_not_needed_from,
        )
        for position, (declared, verdict) in enumerate(zip(vehicles, assessment.vehicles, strict=True))
    ]
    session.add(request)
    session.flush()  # the request's id names it in the audit trail
    if idempotency_filing is not None:
        idempotency.record(session, user=user, filing=idempotency_filing, request=request)
    audit.record(
        session,
        action="request.submitted",
        object_type="request",
        object_id=request.id,
        actor=user.email,
        manufacturer_id=manufacturer.id,
        exporter_id=user.exporter.id,
        details={
            "manufacturer": manufacturer.code,
            "reference": request.reference,
            "vehicle_count": len(request.vehicles),
            "eligible": sum(1 for v in assessment.vehicles if v.verdict is Verdict.ELIGIBLE),
            "supersedes": request.supersedes_number,
        },
    )
    session.commit()
    return request, assessment


def visible_requests(session: Session, user: User):  # type: ignore[no-untyped-def]
    """The query of requests this user may see: an exporter its own, manufacturer staff those
    addressed to their manufacturer, a platform administrator all."""
    return scoped(
        select(LetterRequest),
        user,
        manufacturer_column=LetterRequest.manufacturer_id,
        exporter_column=LetterRequest.exporter_id,
    )


def list_requests(
    *,
    session: Session,
    user: User,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
    queue_order: bool = False,
) -> list[LetterRequest]:
    """Requests the user may see, newest first; ``queue_order`` lists them as a review queue
    instead: the submitted ones first, oldest first (they have waited longest), then the
    decided ones, most recently decided first."""
    query = visible_requests(session, user)
    if status:
        query = query.where(LetterRequest.status == status)
    if queue_order:
        waiting = LetterRequest.status == RequestStatus.SUBMITTED.value
        query = query.order_by(
            case((waiting, 0), else_=1),
            case((waiting, LetterRequest.id), else_=None),
            LetterRequest.decided_at.desc(),
            LetterRequest.id.desc(),
        )
    else:
        query = query.order_by(LetterRequest.id.desc())
    query = query.limit(limit).offset(offset)
    return list(
        session.scalars(query.options(selectinload(LetterRequest.manufacturer), selectinload(LetterRequest.exporter)))
    )


def get_request(*, session: Session, user: User, request_id: int) -> LetterRequest:
    """A request the user may see; another tenant's request is reported as not found."""
    request = session.scalar(
        visible_requests(session, user)
        .where(LetterRequest.id == request_id)
        .options(selectinload(LetterRequest.vehicles))
    )
    if request is None:
        raise NotFound(f"no request {request_id}")
    return request


def status_counts(*, session: Session, user: User) -> dict[str, int]:
    """How many of the requests the user may see are in each status (for the queue's filters)."""
    visible = visible_requests(session, user).subquery()
    rows = session.execute(select(visible.c.status, func.count()).group_by(visible.c.status))
    counts = {status.value: 0 for status in RequestStatus}
    counts.update({status: count for status, count in rows})
    return counts


def vehicle_counts(*, session: Session, request_ids: Sequence[int]) -> dict[int, int]:
    """How many vehicles each request holds, in one grouped query."""
    if not request_ids:
        return {}
    rows = session.execute(
        select(RequestVehicle.request_id, func.count())
        .where(RequestVehicle.request_id.in_(request_ids))
        .group_by(RequestVehicle.request_id)
    )
    return {request_id: count for request_id, count in rows}


def _correctable_letter(session: Session, user: User, manufacturer_code: str, number: str) -> int:
    """The id of the exporter's valid letter from this manufacturer that a request may correct."""
    from issuer.models import Letter, LetterStatus

    letter = session.scalar(
        select(Letter)
        .join(Manufacturer, Manufacturer.id == Letter.manufacturer_id)
        .where(
            Letter.number == number.strip().upper(),
            Letter.exporter_id == user.exporter_id,
            Manufacturer.code == manufacturer_code.strip().upper(),
        )
    )
    if letter is None:
        raise ValidationFailed(
            f"letter {number.strip()!r} is not one of your letters from {manufacturer_code.strip().upper()}",
            details={"supersedes": ["unknown letter"]},
        )
    if letter.status != LetterStatus.VALID.value:
        raise ValidationFailed(
            f"letter {letter.number} is {letter.status}; only a valid letter can be superseded",
            details={"supersedes": [letter.status]},
        )
    return letter.id
