"""GET /api/v1/openapi.json: a valid OpenAPI 3 document that documents every /api/v1 route the
app serves, and whose schemas the real answers satisfy."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_spec_validator import validate as validate_spec
from sqlalchemy.orm import Session

from issuer.models import Manufacturer
from tests import factories
from tests.web.conftest import VIN_OTHER, Caller, caller, request_body, vehicle

PREFIX = "/api/v1"
IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get(f"{PREFIX}/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def served_operations(app: Flask) -> set[tuple[str, str]]:
    """(path template as OpenAPI writes it, method) of every /api/v1 route in the app's url_map."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/"):
            continue
        # <int(max=...):request_id> and <code> both become {request_id} / {code}
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule.removeprefix(PREFIX))
        for method in (rule.methods or set()) - IGNORED_METHODS:
            operations.add((path, method.lower()))
    return operations


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {(path, method) for path, item in document["paths"].items() for method in item if method in methods}


def response_schema(document: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    """The documented JSON schema of one answer, made self-contained for validation."""
    operation = document["paths"][path][method]
    assert str(status) in operation["responses"], f"{method.upper()} {path} does not document {status}"
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    return {"allOf": [schema], "components": document["components"]}


def assert_documented(document: dict[str, Any], path: str, method: str, response: Any) -> None:
    """The real answer validates against the schema the document gives for its status."""
    schema = response_schema(document, path, method, response.status_code)
    OAS30Validator(schema, format_checker=oas30_format_checker).validate(response.get_json())


# -- the document ----------------------------------------------------------------------------


def test_openapi_document_is_valid_openapi_3_when_fetched_without_a_token(document: dict[str, Any]) -> None:
    validate_spec(document)

    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": PREFIX}]
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def test_openapi_document_lists_every_api_route_when_compared_with_the_url_map(
    app: Flask, document: dict[str, Any]
) -> None:
    served = served_operations(app)
    documented = documented_operations(document)

    assert served, "no /api/v1 routes found in the url_map"
    assert sorted(served - documented) == [], "routes served but not documented"
    assert sorted(documented - served) == [], "operations documented but not served"


def test_openapi_document_requires_a_token_when_the_operation_needs_one(document: dict[str, Any]) -> None:
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/openapi.json"]["get"]["security"] == []
    for path, method in documented_operations(document):
        operation = document["paths"][path][method]
        if operation.get("security") == []:
            continue
        assert "401" in operation["responses"], f"{method.upper()} {path} does not document 401"


def test_openapi_document_accepts_the_contract_example_when_validating_a_request_body(
    document: dict[str, Any],
) -> None:
    example = {
        "manufacturer": "C",
        "application_date": "2026-12-01",
        "reference": "contract or license ref",
        "vehicles": [
            {
                "vin": "LGXC74C43S0123456",
                "brand": "Example",
                "model": "E1",
                "registration_date": "2026-10-02",
                "export_transfer_date": None,
                "destination": "KZ",
            }
        ],
    }
    for path in ("/precheck", "/requests"):
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        schema = {"allOf": [body], "components": document["components"]}
        OAS30Validator(schema, format_checker=oas30_format_checker).validate(example)


def test_openapi_validation_rejects_an_answer_when_a_required_field_is_missing(document: dict[str, Any]) -> None:
    schema = response_schema(document, "/requests", "get", 200)
    validator = OAS30Validator(schema, format_checker=oas30_format_checker)
    good = {
        "requests": [
            {
                "id": 1,
                "status": "submitted",
                "manufacturer": "ACME",
                "exporter": "EXP1",
                "application_date": "2026-10-01",
                "reference": "",
                "created_at": "2026-09-15T04:00:00+00:00",
                "vehicle_count": 1,
            }
        ]
    }
    validator.validate(good)
    del good["requests"][0]["vehicle_count"]

    with pytest.raises(ValidationError):
        validator.validate(good)


# -- real answers against the document -------------------------------------------------------


def test_precheck_answer_matches_the_documented_schema_when_a_manufacturer_is_named(
    client: FlaskClient, document: dict[str, Any], exporter: Caller, acme: Manufacturer
) -> None:
    vehicles = [vehicle(), vehicle("bad"), vehicle(factories.make_vin("LGX", 2), destination="UZ")]

    response = client.post(
        "/api/v1/precheck", json=request_body(vehicles, manufacturer="ACME"), headers=exporter.headers
    )

    assert response.status_code == 200
    assert response.get_json()["warnings"]
    assert_documented(document, "/precheck", "post", response)


def test_precheck_answer_matches_the_documented_schema_when_the_list_is_split(
    client: FlaskClient, session: Session, document: dict[str, Any], exporter: Caller, acme: Manufacturer
) -> None:
    factories.manufacturer(session, "OTHER", wmis=("LRW",))
    vehicles = [vehicle(), vehicle(VIN_OTHER), vehicle("bad")]

    response = client.post("/api/v1/precheck", json=request_body(vehicles), headers=exporter.headers)

    assert response.status_code == 200
    assert response.get_json()["unassigned"]
    assert_documented(document, "/precheck", "post", response)


def test_request_answers_match_the_documented_schemas_when_filed_listed_and_read(
    client: FlaskClient, session: Session, document: dict[str, Any], exporter: Caller, acme: Manufacturer
) -> None:
    vehicles = [vehicle(), vehicle(factories.make_vin("LGX", 2), destination="EU", export_transfer_date="2026-07-01")]

    filed = client.post("/api/v1/requests", json=request_body(vehicles, manufacturer="ACME"), headers=exporter.headers)
    assert filed.status_code == 201
    assert_documented(document, "/requests", "post", filed)

    admin = caller(session, "platform_admin")
    listed = client.get("/api/v1/requests", headers=admin.headers)
    assert listed.status_code == 200
    assert_documented(document, "/requests", "get", listed)

    read = client.get(f"/api/v1/requests/{filed.get_json()['id']}", headers=exporter.headers)
    assert read.status_code == 200
    assert_documented(document, "/requests/{request_id}", "get", read)


def test_outlet_answers_match_the_documented_schemas_when_created_edited_and_read(
    client: FlaskClient, document: dict[str, Any], aftersales: Caller
) -> None:
    body = {
        "code": "UZ-1",
        "country": "UZ",
        "name": "Tashkent Service",
        "provider": "Avto Servis LLC",
        "address": "12 Amir Temur Ave",
        "valid_from": "2026-01-01",
        "valid_to": "2027-12-31",
    }
    created = client.post("/api/v1/outlets", json=body, headers=aftersales.headers)
    assert created.status_code == 201
    assert_documented(document, "/outlets", "post", created)

    patched = client.patch("/api/v1/outlets/UZ-1", json={"valid_to": None}, headers=aftersales.headers)
    assert patched.status_code == 200
    assert_documented(document, "/outlets/{code}", "patch", patched)

    detail = client.get("/api/v1/outlets/UZ-1", headers=aftersales.headers)
    assert detail.status_code == 200
    assert len(detail.get_json()["versions"]) == 2
    assert_documented(document, "/outlets/{code}", "get", detail)

    listed = client.get("/api/v1/outlets", headers=aftersales.headers)
    assert listed.status_code == 200
    assert_documented(document, "/outlets", "get", listed)


@pytest.mark.parametrize(
    ("method", "path", "template", "body", "status"),
    [
        ("post", "/api/v1/precheck", "/precheck", {"vehicles": []}, 422),
        ("post", "/api/v1/requests", "/requests", [], 400),
        ("get", "/api/v1/requests/999999", "/requests/{request_id}", None, 404),
        ("post", "/api/v1/outlets", "/outlets", {"code": "KZ-ALMATY"}, 422),
        ("get", "/api/v1/outlets/NOPE", "/outlets/{code}", None, 404),
    ],
)
def test_error_answers_match_the_documented_error_schema_when_a_call_fails(
    client: FlaskClient,
    session: Session,
    document: dict[str, Any],
    exporter: Caller,
    aftersales: Caller,
    method: str,
    path: str,
    template: str,
    body: Any,
    status: int,
) -> None:
    who = aftersales if "outlets" in path else exporter

    response = client.open(path, method=method.upper(), json=body, headers=who.headers)

    assert response.status_code == status
    assert_documented(document, template, method, response)


def test_error_answers_match_the_documented_error_schema_when_token_or_role_is_wrong(
    client: FlaskClient, document: dict[str, Any], exporter: Caller
) -> None:
    unauthenticated = client.get("/api/v1/outlets")
    forbidden = client.get("/api/v1/outlets", headers=exporter.headers)

    assert (unauthenticated.status_code, forbidden.status_code) == (401, 403)
    assert_documented(document, "/outlets", "get", unauthenticated)
    assert_documented(document, "/outlets", "get", forbidden)
