"""The OpenAPI 3 document, generated from the marshmallow schemas by apispec."""

from __future__ import annotations

from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from issuer.schemas.common import ErrorOutputSchema
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

ERRORS = {
    "400": "malformed body",
    "401": "no or a bad token",
    "403": "the role may not do this",
    "404": "unknown, or another tenant's",
    "409": "conflicts with existing data",
    "413": "body over 10 MB",
    "422": "invalid fields",
}


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
    for status in ("401", "403", *errors) if not public else errors:
        responses[status] = {"description": ERRORS[status], **_json("Error")}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True, **_json(body)}
    if params:
        operation["parameters"] = params
    if public:
        operation["security"] = []
    return operation


def _query(name: str, kind: str, description: str) -> dict[str, Any]:
    return {"in": "query", "name": name, "required": False, "schema": {"type": kind}, "description": description}


def _path(name: str, kind: str) -> dict[str, Any]:
    return {"in": "path", "name": name, "required": True, "schema": {"type": kind}}


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
                errors=("400", "413", "422"),
            )
        },
    )
    spec.path(
        path="/requests",
        operations={
            "post": _operation(
                "File a request to a manufacturer",
                ok=("201", RequestOutputSchema),
                body=RequestInputSchema,
                errors=("400", "413", "422"),
            ),
            "get": _operation(
                "Requests visible to the caller",
                ok=("200", RequestListOutputSchema),
                errors=("422",),
                params=[
                    _query("status", "string", "filter by status"),
                    _query("limit", "integer", "1-500, default 50"),
                    _query("offset", "integer", "default 0"),
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
                params=[_path("request_id", "integer")],
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
                "Add an outlet", ok=("201", OutletOutputSchema), body=OutletInputSchema, errors=("400", "409", "422")
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
                body=OutletPatchInputSchema,
                errors=("400", "404", "422"),
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
                "responses": {"200": {"description": "the OpenAPI document"}},
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
        errors=("400", "404", "409", "422"),
        params=[_path("request_id", "integer")],
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
                params=[_query("limit", "integer", "1-500, default 50"), _query("offset", "integer", "default 0")],
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
                errors=("400", "404", "409", "422"),
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
        "Public: check an uploaded letter PDF", ok=("200", VerifyPdfOutputSchema), errors=("400", "413"), public=True
    )
    upload["requestBody"] = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            }
        },
    }
    spec.path(path="/verify", operations={"post": upload})
