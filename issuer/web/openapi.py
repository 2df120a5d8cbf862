"""The OpenAPI 3 document, generated from the marshmallow schemas by apispec."""

from __future__ import annotations

from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from issuer.models import RequestStatus
from issuer.schemas.common import NO_NUL_PATTERN, ErrorOutputSchema
from issuer.schemas.letters import (
    DecisionInputSchema,
    DecisionOutputSchema,
    JobOutputSchema,
    LetterListOutputSchema,
    LetterOutputSchema,
    RevokeInputSchema,
    VerifyByCodeOutputSchema,
    VerifyPdfOutputSchema,
)
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
from issuer.web.api import MAX_ID

ERRORS = {
    "400": "malformed body, or a NUL character in the URL",
    "401": "no or a bad token",
    "403": "the role may not do this",
    "404": "unknown, or another tenant's",
    "409": "conflicts with existing data",
    "413": "body over 10 MB",
    "422": "invalid fields",
    "429": "too many requests; retry after the Retry-After header's seconds",
    "503": "the database is busy with another change; nothing was changed, retry after Retry-After seconds",
}
# What any operation may answer: a NUL character in the URL is refused before any view runs
# (400), a rate limit may be reached (429), and SQLite's single writer may be busy (503).
ANY_OPERATION = ("400", "429", "503")
# The largest offset the list views accept (``int_arg`` in issuer.web.api and issuer.web.letters).
MAX_OFFSET = 10**9


def _json(schema: Any) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(
    summary: str,
    *,
    ok: tuple[str, Any],
    body: Any = None,
    errors: tuple[str, ...] = (),
    params: list[dict[str, Any]] | None = None,
    public: bool = False,
) -> dict[str, Any]:
    responses = {ok[0]: {"description": "success", **_json(ok[1])}}
    statuses = {*ANY_OPERATION, *errors}
    if not public:
        statuses |= {"401", "403"}
    if body is not None:
        statuses.add("413")
    for status in sorted(statuses):
        responses[status] = {"description": ERRORS[status], **_json("Error")}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True, **_json(body)}
    if params:
        operation["parameters"] = params
    if public:
        operation["security"] = []
    return operation


def _parameter_schema(kind: str, constraints: dict[str, Any]) -> dict[str, Any]:
    # A URL holding a NUL character is refused (400) before any view runs.
    extra = {"pattern": NO_NUL_PATTERN} if kind == "string" else {}
    return {"type": kind, **extra, **constraints}


def _query(name: str, kind: str, description: str, **constraints: Any) -> dict[str, Any]:
    """A query parameter; an empty value (``?limit=``) counts as not given."""
    return {
        "in": "query",
        "name": name,
        "required": False,
        "allowEmptyValue": True,
        "schema": _parameter_schema(kind, constraints),
        "description": description,
    }


def _path(name: str, kind: str, **constraints: Any) -> dict[str, Any]:
    return {"in": "path", "name": name, "required": True, "schema": _parameter_schema(kind, constraints)}


def _request_id() -> dict[str, Any]:
    return _path("request_id", "integer", minimum=1, maximum=MAX_ID)


def _paging() -> list[dict[str, Any]]:
    return [
        _query("limit", "integer", "1-500, default 50", minimum=1, maximum=500),
        _query("offset", "integer", "default 0", minimum=0, maximum=MAX_OFFSET),
    ]


IDEMPOTENCY_KEY = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    # Printable ASCII; white space around the value is not part of it, so some other character.
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]*[!-~][ -~]*$"},
    "description": "Files the request at most once (draft-ietf-httpapi-idempotency-key-header): sent "
    "again by the same user with the same key and the same JSON body within 24 hours, the request is "
    "not filed again and the first answer is given again, with `Idempotent-Replayed: true`. The same "
    "key with another body is a 422 (`IDEMPOTENCY_KEY_REUSED`); while the first is still being "
    "processed, a 409 (`IDEMPOTENCY_KEY_IN_FLIGHT`). A failed attempt stores nothing. Keys are "
    "case-sensitive, the user's own, and forgotten after 24 hours; use a new UUID per request.",
}


def _idempotent(operation: dict[str, Any]) -> dict[str, Any]:
    """Document an operation that takes ``IDEMPOTENCY_KEY``: its replay header and its refusals."""
    responses = operation["responses"]
    responses["201"]["headers"] = {
        "Idempotent-Replayed": {
            "description": "`true` when this is the stored answer to an earlier request with the same key",
            "schema": {"type": "string", "enum": ["true"]},
        }
    }
    responses["400"]["description"] += "; or an Idempotency-Key that is not 1-255 printable ASCII characters"
    responses["409"]["description"] = "a request with this Idempotency-Key is still being processed; retry"
    responses["422"]["description"] += "; or an Idempotency-Key already used with another body"
    return operation


@cache
def build_document() -> dict[str, Any]:
    spec = APISpec(
        title="issuer API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "Issue and verify After-sales Maintenance Service Confirmation Letters (售后维修服务确认书)."
        },
        servers=[{"url": "/api/v1"}],
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.options["security"] = [{"bearer": []}]
    spec.components.schema("Error", schema=ErrorOutputSchema)
    precheck_answer = {"oneOf": [PrecheckOutputSchema, SplitPrecheckOutputSchema]}
    spec.path(
        path="/precheck",
        operations={
            "post": _operation(
                "Verdict per vehicle (stores nothing). Without `manufacturer`, the list is split by WMI.",
                ok=("200", precheck_answer),
                body=PrecheckInputSchema,
                errors=("422",),
            )
        },
    )
    spec.path(
        path="/requests",
        operations={
            "post": _idempotent(
                _operation(
                    "File a request to a manufacturer",
                    ok=("201", RequestOutputSchema),
                    body=RequestInputSchema,
                    errors=("409", "422"),
                    params=[IDEMPOTENCY_KEY],
                )
            ),
            "get": _operation(
                "Requests visible to the caller",
                ok=("200", RequestListOutputSchema),
                errors=("422",),
                params=[
                    _query("status", "string", "filter by status", enum=[s.value for s in RequestStatus]),
                    *_paging(),
                ],
            ),
        },
    )
    spec.path(
        path="/requests/{request_id}",
        operations={
            "get": _operation(
                "One request with its vehicles and verdicts",
                ok=("200", RequestOutputSchema),
                errors=("404",),
                params=[_request_id()],
            )
        },
    )
    spec.path(
        path="/outlets",
        operations={
            "get": _operation(
                "The caller's manufacturer's outlet registry",
                ok=("200", OutletListOutputSchema),
                errors=("422",),
                params=[
                    _query("country", "string", "ISO 3166-1 alpha-2"),
                    _query("active", "boolean", "only active / inactive outlets"),
                ],
            ),
            "post": _operation(
                "Add an outlet", ok=("201", OutletOutputSchema), body=OutletInputSchema, errors=("409", "422")
            ),
        },
    )
    spec.path(
        path="/outlets/{code}",
        operations={
            "get": _operation(
                "An outlet with its history",
                ok=("200", OutletDetailOutputSchema),
                errors=("404",),
                params=[_path("code", "string")],
            ),
            "patch": _operation(
                "Edit an outlet (a new version is recorded); `active: false` deactivates it",
                ok=("200", OutletOutputSchema),
                # An empty patch changes nothing and is refused.
                body={"allOf": [OutletPatchInputSchema], "minProperties": 1},
                errors=("404", "422"),
                params=[_path("code", "string")],
            ),
        },
    )
    _letter_paths(spec)
    spec.path(
        path="/openapi.json",
        operations={
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {"description": "the OpenAPI document", **_json({"type": "object"})},
                    "400": {"description": ERRORS["400"], **_json("Error")},
                },
            }
        },
    )
    return spec.to_dict()


def _letter_paths(spec: APISpec) -> None:
    """Decisions, letters and public verification."""
    number = _path("number", "string")
    decision = _operation(
        "Approve (`all_eligible` or VINs) and reject vehicles; approving issues the letter",
        ok=("200", DecisionOutputSchema),
        body=DecisionInputSchema,
        errors=("404", "409", "422"),
        params=[_request_id()],
    )
    decision["responses"]["202"] = {
        "description": "the letter is reserved and a worker seals it: poll `status_url` (also in Location)",
        **_json(DecisionOutputSchema),
    }
    spec.path(path="/requests/{request_id}/decision", operations={"post": decision})
    spec.path(
        path="/jobs/{job_id}",
        operations={
            "get": _operation(
                "A queued issuance: `state` queued, running, done (with `letter_number`) or failed (with `error`)",
                ok=("200", JobOutputSchema),
                errors=("404",),
                params=[_path("job_id", "string")],
            )
        },
    )
    spec.path(
        path="/letters",
        operations={
            "get": _operation(
                "Letters visible to the caller",
                ok=("200", LetterListOutputSchema),
                errors=("422",),
                params=_paging(),
            )
        },
    )
    spec.path(
        path="/letters/{number}",
        operations={"get": _operation("One letter", ok=("200", LetterOutputSchema), errors=("404",), params=[number])},
    )
    pdf = _operation("The sealed PDF, byte for byte as issued", ok=("200", {}), errors=("404",), params=[number])
    pdf["responses"]["200"] = {
        "description": "the sealed PDF",
        "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
    }
    spec.path(path="/letters/{number}/pdf", operations={"get": pdf})
    spec.path(
        path="/letters/{number}/revoke",
        operations={
            "post": _operation(
                "Revoke a letter with a reason",
                ok=("200", LetterOutputSchema),
                body=RevokeInputSchema,
                errors=("404", "409", "422"),
                params=[number],
            )
        },
    )
    spec.path(
        path="/verify/{number}",
        operations={
            "get": _operation(
                "Public: a letter's status and content by number and verification code",
                ok=("200", VerifyByCodeOutputSchema),
                errors=("404",),
                params=[number, {**_query("code", "string", "the verification code"), "required": True}],
                public=True,
            )
        },
    )
    upload = _operation(
        "Public: check an uploaded letter PDF", ok=("200", VerifyPdfOutputSchema), errors=("413",), public=True
    )
    upload["requestBody"] = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary", "minLength": 1}},
                    "required": ["file"],
                }
            }
        },
    }
    spec.path(path="/verify", operations={"post": upload})
