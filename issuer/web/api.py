"""The JSON API under /api/v1. Each view: parse with a schema, call one service, serialise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Blueprint, jsonify, request
from marshmallow import Schema
from marshmallow import ValidationError as SchemaError
from werkzeug.routing import IntegerConverter

from issuer.domain.countries import lookup_country
from issuer.domain.eligibility import (
    REASON_TEXT,
    Assessment,
    ReasonCode,
    VehicleAssessment,
    VehicleDeclaration,
    Warning,
)
from issuer.errors import BadRequest, ValidationFailed
from issuer.models import LetterRequest, Outlet, RequestStatus, Role
from issuer.schemas.outlets import (
    OutletDetailOutputSchema,
    OutletInputSchema,
    OutletListOutputSchema,
    OutletOutputSchema,
    OutletPatchInputSchema,
)
from issuer.schemas.requests import (
    PrecheckInputSchema,
    PrecheckOutputSchema,
    RequestInputSchema,
    RequestListOutputSchema,
    RequestOutputSchema,
    SplitPrecheckOutputSchema,
)
from issuer.services import idempotency
from issuer.services import outlets as outlet_service
from issuer.services import requests as request_service
from issuer.web import strict_json
from issuer.web.auth import MANUFACTURER_STAFF, current_user, requires
from issuer.web.errors import field_errors
from issuer.web.session import db_session

api = Blueprint("api", __name__, url_prefix="/api/v1")


# -- parsing ---------------------------------------------------------------------------------


@api.before_app_request
def refuse_nul_in_url() -> None:
    """A NUL character in a path or query parameter is never meaningful (and PostgreSQL cannot
    compare text with one): refuse it before any view, of any blueprint, queries with it."""
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
        raise BadRequest("the URL must not contain NUL characters")


def refuse_nul_in_form() -> None:
    """The same for a form field (PostgreSQL cannot store one either; uploaded files' names are
    cleaned where they are used). ``create_app`` runs it after the other checks before a view,
    once the pages that take large forms have raised the form limit."""
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data") and any(
        # A part without a name has the key None.
        "\x00" in (k or "") or "\x00" in v for k, v in request.form.items(multi=True)
    ):
        raise BadRequest("the form must not contain NUL characters")


def json_body() -> dict[str, Any]:
    """The JSON object the body carries, sent as ``application/json``; anything else is a 400
    naming the problem (``issuer.web.strict_json``)."""
    raw = request.get_data(cache=False)
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise BadRequest(
            f"the request body must be sent as Content-Type: application/json, not {request.mimetype or 'none'}"
        )
    if not raw.strip():
        raise BadRequest("the request body is empty; send a JSON object")
    return strict_json.load_object(raw)


def parse_body(schema: Schema, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parse the JSON body (or ``payload``, the body already read) with ``schema``; malformed
    JSON is a 400, invalid fields a 422."""
    if payload is None:
        payload = json_body()
    try:
        return schema.load(payload)  # type: ignore[no-any-return]
    except SchemaError as exc:
        errors = field_errors(exc.messages)
        shown = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ValidationFailed(f"invalid request: {shown}{more}", details=errors) from None


def _declarations(vehicles: Sequence[dict[str, Any]]) -> list[VehicleDeclaration]:
    return [VehicleDeclaration(**vehicle) for vehicle in vehicles]


# -- serialising -----------------------------------------------------------------------------


def _explanations(reasons: Sequence[ReasonCode | str]) -> list[dict[str, str]]:
    out = []
    for reason in reasons:
        zh, en = REASON_TEXT[ReasonCode(reason)]
        out.append({"code": str(reason), "zh": zh, "en": en})
    return out


def _verdict(vehicle: VehicleAssessment, declared_destination: str) -> dict[str, Any]:
    country = vehicle.destination
    return {
        "vin": vehicle.vin,
        "verdict": vehicle.verdict.value,
        "reasons": [r.value for r in vehicle.reasons],
        "explanations": _explanations(vehicle.reasons),
        "letter_required": vehicle.letter_required,
        "letter_not_needed_from": vehicle.letter_not_needed_from,
        "destination": country.alpha2 if country else declared_destination.strip().upper(),
        "destination_name_zh": country.name_zh if country else None,
        "destination_name_en": country.name_en if country else None,
    }


def _warnings(warnings: Sequence[Warning]) -> list[dict[str, Any]]:
    return [{"code": w.code, "message": w.message, "details": dict(w.details)} for w in warnings]


def _assessment(assessment: Assessment, declarations: Sequence[VehicleDeclaration]) -> dict[str, Any]:
    return {
        "vehicles": [_verdict(v, d.destination) for v, d in zip(assessment.vehicles, declarations, strict=True)],
        "warnings": _warnings(assessment.warnings),
    }


def _request_summary(letter_request: LetterRequest, vehicle_count: int) -> dict[str, Any]:
    return {
        "id": letter_request.id,
        "status": letter_request.status,
        "manufacturer": letter_request.manufacturer.code,
        "exporter": letter_request.exporter.code,
        "application_date": letter_request.application_date,
        "reference": letter_request.reference,
        "created_at": letter_request.created_at,
        "vehicle_count": vehicle_count,
    }


def _request_detail(letter_request: LetterRequest) -> dict[str, Any]:
    vehicles = []
    for v in letter_request.vehicles:
        country = lookup_country(v.destination)
        vehicles.append(
            {
                "vin": v.vin,
                "brand": v.brand,
                "model": v.model,
                "registration_date": v.registration_date,
                "export_transfer_date": v.export_transfer_date,
                "destination": v.destination,
                "destination_name_zh": country.name_zh if country else None,
                "destination_name_en": country.name_en if country else None,
                "verdict": v.verdict,
                "reasons": list(v.reasons),
                "explanations": _explanations(v.reasons),
                "letter_required": v.letter_not_needed_from is not None,
                "letter_not_needed_from": v.letter_not_needed_from,
                "decision": v.decision,
                "decision_reason": v.decision_reason,
            }
        )
    return {
        **_request_summary(letter_request, len(vehicles)),
        "assessed_on": letter_request.assessed_on,
        "vehicles": vehicles,
        "warnings": list(letter_request.warnings),
    }


def _outlet(outlet: Outlet) -> dict[str, Any]:
    country = lookup_country(outlet.country)
    return {
        "code": outlet.code,
        "country": outlet.country,
        "country_name_zh": country.name_zh if country else outlet.country,
        "country_name_en": country.name_en if country else outlet.country,
        "name": outlet.name,
        "provider": outlet.provider,
        "address": outlet.address,
        "city": outlet.city,
        "phone": outlet.phone,
        "email": outlet.email,
        "brands": [b for b in outlet.brands.split(";") if b],
        "valid_from": outlet.valid_from,
        "valid_to": outlet.valid_to,
        "active": outlet.active,
        "version": outlet.version,
        "updated_at": outlet.updated_at,
    }


# -- precheck and requests -------------------------------------------------------------------


@api.post("/precheck")
@requires(Role.EXPORTER)
def precheck():  # type: ignore[no-untyped-def]
    """Verdict per vehicle; stores nothing."""
    body = parse_body(PrecheckInputSchema())
    user = current_user()
    declarations = _declarations(body["vehicles"])
    session = db_session()
    if body["manufacturer"]:
        manufacturer, assessment = request_service.precheck_for_manufacturer(
            session=session,
            manufacturer_code=body["manufacturer"],
            exporter=user.exporter,
            application_date=body["application_date"],
            vehicles=declarations,
        )
        answer = {"manufacturer": manufacturer.code, **_assessment(assessment, declarations)}
        return PrecheckOutputSchema().dump(answer)
    split = request_service.precheck_split(
        session=session, exporter=user.exporter, application_date=body["application_date"], vehicles=declarations
    )
    groups = []
    for group in split.groups:
        part = [declarations[i] for i in group.indexes]
        groups.append(
            {
                "manufacturer": group.manufacturer.code,
                "manufacturer_name": group.manufacturer.name,
                "indexes": list(group.indexes),
                **_assessment(group.assessment, part),
            }
        )
    unassigned = [
        {
            "vin": vin,
            "index": index,
            "verdict": "refused",
            "reasons": [reason.value],
            "explanations": _explanations([reason]),
        }
        for index, vin, reason in split.unassigned
    ]
    warnings: list[dict[str, Any]] = []
    if len(groups) > 1:
        warnings.append(
            {
                "code": "MULTIPLE_MANUFACTURERS",
                "message": "the vehicles belong to several manufacturers; each issues its own letter, "
                "so file one request per manufacturer",
                "details": {"manufacturers": [g["manufacturer"] for g in groups]},
            }
        )
    # The list as a whole, not only each group, is told when it spans several countries.
    countries = sorted({v.destination.alpha2 for g in split.groups for v in g.assessment.vehicles if v.destination})
    if len(countries) > 1:
        warnings.append(
            {
                "code": "MULTIPLE_DESTINATIONS",
                "message": f"The vehicles go to {len(countries)} countries ({', '.join(countries)}). An export "
                "license names one importing country, so one license per country is needed.",
                "details": {"countries": countries},
            }
        )
    return SplitPrecheckOutputSchema().dump({"groups": groups, "unassigned": unassigned, "warnings": warnings})


def _filed_answer(letter_request: LetterRequest) -> dict[str, Any]:
    return RequestOutputSchema().dump(_request_detail(letter_request))  # type: ignore[no-any-return]


@api.post("/requests")
@requires(Role.EXPORTER)
def submit_request():  # type: ignore[no-untyped-def]
    """File a request; with an ``Idempotency-Key`` a repeat of it is answered as the first was
    (``issuer.services.idempotency``)."""
    key = idempotency.parse_key(request.headers.get(idempotency.HEADER))
    payload = json_body()
    filing = None
    if key is not None:
        fingerprint = idempotency.fingerprint(payload)
        stored = idempotency.claim(db_session(), user=current_user(), key=key, fingerprint=fingerprint)
        if stored is not None:
            return stored.body, stored.status, {idempotency.REPLAYED_HEADER: "true"}
        filing = idempotency.IdempotentFiling(key=key, fingerprint=fingerprint, status=201, answer=_filed_answer)
    body = parse_body(RequestInputSchema(), payload)
    letter_request, _ = request_service.submit_request(
        session=db_session(),
        user=current_user(),
        manufacturer_code=body["manufacturer"],
        application_date=body["application_date"],
        reference=body["reference"],
        vehicles=_declarations(body["vehicles"]),
        supersedes=body["supersedes"],
        idempotency_filing=filing,
    )
    return _filed_answer(letter_request), 201


@api.get("/requests")
@requires(Role.EXPORTER, Role.MANUFACTURER_ADMIN, Role.AFTERSALES, Role.PLATFORM_ADMIN)
def list_requests():  # type: ignore[no-untyped-def]
    limit = int_arg("limit", default=50, low=1, high=500)
    offset = int_arg("offset", default=0, low=0, high=10**9)
    status = request.args.get("status") or None
    if status is not None and status not in {s.value for s in RequestStatus}:
        raise ValidationFailed(
            f"query parameter status must be one of {', '.join(s.value for s in RequestStatus)}",
            details={"status": ["not a request status"]},
        )
    rows = request_service.list_requests(
        session=db_session(), user=current_user(), status=status, limit=limit, offset=offset
    )
    counts = request_service.vehicle_counts(session=db_session(), request_ids=[r.id for r in rows])
    return RequestListOutputSchema().dump({"requests": [_request_summary(r, counts.get(r.id, 0)) for r in rows]})


# Ids are 32-bit integers on every backend; a larger number is simply no request (404), not a
# database overflow.
MAX_ID = 2**31 - 1


class AsciiIntegerConverter(IntegerConverter):
    """``<int:…>`` in every route (``create_app`` installs it): Werkzeug's own matches any
    Unicode digit, so ``/requests/１`` (a full-width one) would be request 1."""

    regex = r"[0-9]+"


@api.get(f"/requests/<int(max={MAX_ID}):request_id>")
@requires(Role.EXPORTER, Role.MANUFACTURER_ADMIN, Role.AFTERSALES, Role.PLATFORM_ADMIN)
def get_request(request_id: int):  # type: ignore[no-untyped-def]
    letter_request = request_service.get_request(session=db_session(), user=current_user(), request_id=request_id)
    return RequestOutputSchema().dump(_request_detail(letter_request))


def _bool_arg(name: str) -> bool | None:
    raw = request.args.get(name, "").strip().lower()
    if raw == "":
        return None
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise ValidationFailed(f"query parameter {name} must be true or false", details={name: ["not a boolean"]})


def _country_arg(name: str) -> str | None:
    raw = request.args.get(name, "").strip()
    if raw == "":
        return None
    country = lookup_country(raw)
    if country is None:
        raise ValidationFailed(
            f"query parameter {name} must be an ISO 3166-1 alpha-2 country code",
            details={name: ["not a country code"]},
        )
    return country.alpha2


def int_arg(name: str, *, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        if not raw.isascii():  # int() would read full-width and other scripts' digits too
            raise ValueError(raw)
        value = int(raw)
    except ValueError:
        raise ValidationFailed(
            f"query parameter {name} must be an integer", details={name: ["not an integer"]}
        ) from None
    if not low <= value <= high:
        raise ValidationFailed(
            f"query parameter {name} must be between {low} and {high}", details={name: ["out of range"]}
        )
    return value


# -- outlets ---------------------------------------------------------------------------------


def _staff_manufacturer():  # type: ignore[no-untyped-def]
    user = current_user()
    assert user.manufacturer is not None  # manufacturer staff always belong to one  # noqa: S101
    return user.manufacturer, user.email


@api.get("/outlets")
@requires(*MANUFACTURER_STAFF)
def list_outlets():  # type: ignore[no-untyped-def]
    manufacturer, _ = _staff_manufacturer()
    rows = outlet_service.list_outlets(
        session=db_session(), manufacturer=manufacturer, country=_country_arg("country"), active=_bool_arg("active")
    )
    return OutletListOutputSchema().dump({"outlets": [_outlet(o) for o in rows]})


@api.post("/outlets")
@requires(*MANUFACTURER_STAFF)
def create_outlet():  # type: ignore[no-untyped-def]
    manufacturer, actor = _staff_manufacturer()
    body = parse_body(OutletInputSchema())
    outlet = outlet_service.create_outlet(session=db_session(), manufacturer=manufacturer, values=body, actor=actor)
    return OutletOutputSchema().dump(_outlet(outlet)), 201


@api.get("/outlets/<code>")
@requires(*MANUFACTURER_STAFF)
def get_outlet(code: str):  # type: ignore[no-untyped-def]
    manufacturer, _ = _staff_manufacturer()
    outlet = outlet_service.find_outlet(db_session(), manufacturer, code)
    detail = _outlet(outlet)
    detail["versions"] = outlet.versions
    return OutletDetailOutputSchema().dump(detail)


@api.patch("/outlets/<code>")
@requires(*MANUFACTURER_STAFF)
def update_outlet(code: str):  # type: ignore[no-untyped-def]
    manufacturer, actor = _staff_manufacturer()
    body = parse_body(OutletPatchInputSchema())
    if not body:
        raise ValidationFailed("nothing to change: send at least one field")
    outlet = outlet_service.update_outlet(
        session=db_session(), manufacturer=manufacturer, code=code, values=body, actor=actor
    )
    return OutletOutputSchema().dump(_outlet(outlet))


@api.get("/openapi.json")
def openapi_document():  # type: ignore[no-untyped-def]
    from issuer.web.openapi import build_document

    return jsonify(build_document())
