"""Authentication, roles, and the error contract: every error is JSON of one shape, with the
status that fits, never an HTML page or a traceback; a failed request writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from issuer import clock
from issuer.models import ApiToken, LetterRequest, Manufacturer, Outlet, OutletVersion, RequestVehicle, User
from tests.web.conftest import Caller, assert_error, bearer, caller, count, request_body, vehicle

PROTECTED = [
    ("POST", "/api/v1/precheck"),
    ("POST", "/api/v1/requests"),
    ("GET", "/api/v1/requests/1"),
    ("POST", "/api/v1/outlets"),
    ("PATCH", "/api/v1/outlets/KZ-ALMATY"),
]


def send(client: FlaskClient, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    return client.open(path, method=method, headers=headers or {}, **kw)


def written(session: Session) -> list[int]:
    return [count(session, model) for model in (LetterRequest, RequestVehicle, Outlet, OutletVersion)]


# -- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_call_answers_401_json_when_no_token_is_sent(
    client: FlaskClient, acme: Manufacturer, method: str, path: str
) -> None:
    response = send(client, method, path, json={})

    assert_error(response, 401, "UNAUTHENTICATED")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "isr_abc",
        "Bearer not-a-token",
        "Bearer isr_" + "x" * 300,
    ],
)
def test_call_answers_401_json_when_authorization_header_is_malformed(
    client: FlaskClient, exporter: Caller, header: str
) -> None:
    response = client.post("/api/v1/precheck", json={}, headers={"Authorization": header})

    assert_error(response, 401, "UNAUTHENTICATED")


def test_call_answers_401_json_when_token_is_unknown(client: FlaskClient, exporter: Caller) -> None:
    forged = "isr_" + "A" * 43

    response = client.get("/api/v1/requests", headers=bearer(forged))

    assert_error(response, 401, "UNAUTHENTICATED")


def test_call_answers_401_json_when_token_was_revoked(client: FlaskClient, session: Session, exporter: Caller) -> None:
    assert client.get("/api/v1/requests", headers=exporter.headers).status_code == 200
    token = session.scalars(select(ApiToken).join(User).where(User.email == exporter.email)).one()
    token.revoked_at = clock.now_utc()
    session.commit()

    response = client.get("/api/v1/requests", headers=exporter.headers)

    assert_error(response, 401, "UNAUTHENTICATED")


def test_call_answers_401_json_when_user_was_deactivated(
    client: FlaskClient, session: Session, exporter: Caller
) -> None:
    user = session.scalars(select(User).where(User.email == exporter.email)).one()
    user.active = False
    session.commit()

    assert_error(client.get("/api/v1/requests", headers=exporter.headers), 401, "UNAUTHENTICATED")


def test_call_accepts_token_when_scheme_is_lower_case(client: FlaskClient, exporter: Caller) -> None:
    response = client.get("/api/v1/requests", headers={"Authorization": f"bearer {exporter.token}"})

    assert response.status_code == 200


def test_call_answers_401_not_400_when_body_is_malformed_and_token_is_missing(client: FlaskClient) -> None:
    response = client.post("/api/v1/precheck", data="{not json", content_type="application/json")

    assert_error(response, 401, "UNAUTHENTICATED")


# -- roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        ("aftersales", "POST", "/api/v1/precheck"),
        ("manufacturer_admin", "POST", "/api/v1/requests"),
        ("reviewer", "POST", "/api/v1/precheck"),
        ("platform_admin", "POST", "/api/v1/requests"),
        ("reviewer", "GET", "/api/v1/requests"),
        ("exporter", "GET", "/api/v1/outlets"),
        ("exporter", "POST", "/api/v1/outlets"),
        ("exporter", "GET", "/api/v1/outlets/KZ-ALMATY"),
        ("exporter", "PATCH", "/api/v1/outlets/KZ-ALMATY"),
        ("reviewer", "GET", "/api/v1/outlets"),
        ("platform_admin", "PATCH", "/api/v1/outlets/KZ-ALMATY"),
    ],
)
def test_call_answers_403_json_when_role_may_not_do_it(
    client: FlaskClient,
    session: Session,
    acme: Manufacturer,
    exporter_org: Any,
    role: str,
    method: str,
    path: str,
) -> None:
    if role == "exporter":
        who = caller(session, role, exporter=exporter_org)
    elif role in ("aftersales", "manufacturer_admin"):
        who = caller(session, role, manufacturer=acme)
    else:
        who = caller(session, role)
    before = written(session)

    response = send(client, method, path, who.headers, json=request_body([vehicle()], manufacturer="ACME"))

    error = assert_error(response, 403, "FORBIDDEN")
    assert role in error["message"]
    assert written(session) == before


# -- the body --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"\xff\xfe{}", b"   ", b'{"a": 1} trailing'],
    ids=["syntax", "not_utf8", "blank", "trailing"],
)
def test_precheck_answers_400_json_when_body_is_not_json(
    client: FlaskClient, session: Session, exporter: Caller, raw: bytes
) -> None:
    response = client.post("/api/v1/precheck", data=raw, content_type="application/json", headers=exporter.headers)

    assert_error(response, 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/precheck", [{"vin": "x"}]),
        ("/api/v1/precheck", None),
        ("/api/v1/requests", "text"),
        ("/api/v1/requests", 42),
        ("/api/v1/outlets/KZ-ALMATY", []),
    ],
)
def test_call_answers_400_json_when_body_is_not_an_object(
    client: FlaskClient, session: Session, exporter: Caller, aftersales: Caller, path: str, body: Any
) -> None:
    who, method = (aftersales, "PATCH") if "outlets" in path else (exporter, "POST")

    response = send(client, method, path, who.headers, data=json.dumps(body), content_type="application/json")

    error = assert_error(response, 400, "BAD_REQUEST")
    assert "object" in error["message"]


def test_precheck_answers_422_naming_the_field_path_when_a_date_does_not_exist(
    client: FlaskClient, exporter: Caller, acme: Manufacturer
) -> None:
    body = request_body([vehicle(), vehicle(registration_date="2026-02-30")], manufacturer="ACME")

    response = client.post("/api/v1/precheck", json=body, headers=exporter.headers)

    error = assert_error(response, 422, "VALIDATION_FAILED")
    assert [d["field"] for d in error["details"]] == ["vehicles[1].registration_date"]
    assert "vehicles[1].registration_date" in error["message"]


def test_file_request_answers_422_listing_every_bad_field_when_several_are_wrong(
    client: FlaskClient, exporter: Caller, acme: Manufacturer
) -> None:
    body = request_body(
        [vehicle(registration_date="2026-13-01"), vehicle(destination=7, vin=None)],
        manufacturer="ACME",
        application_date="01/10/2026",
    )

    response = client.post("/api/v1/requests", json=body, headers=exporter.headers)

    error = assert_error(response, 422, "VALIDATION_FAILED")
    assert sorted(d["field"] for d in error["details"]) == [
        "application_date",
        "vehicles[0].registration_date",
        "vehicles[1].destination",
        "vehicles[1].vin",
    ]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.update(colour="red"), "colour"),
        (lambda b: b["vehicles"][0].update(colour="red"), "vehicles[0].colour"),
        (lambda b: b["vehicles"][0].pop("brand"), "vehicles[0].brand"),
        (lambda b: b.pop("application_date"), "application_date"),
        (lambda b: b.pop("vehicles"), "vehicles"),
        (lambda b: b.update(vehicles=[]), "vehicles"),
        (lambda b: b.update(vehicles="LGXC74C43S0123456"), "vehicles"),
        (lambda b: b.update(vehicles=["LGXC74C43S0123456"]), "vehicles[0]"),
        (lambda b: b["vehicles"][0].update(vin=""), "vehicles[0].vin"),
        (lambda b: b["vehicles"][0].update(export_transfer_date="soon"), "vehicles[0].export_transfer_date"),
        (lambda b: b.update(manufacturer=""), "manufacturer"),
        (lambda b: b.update(reference="r" * 201), "reference"),
    ],
    ids=[
        "unknown_top_field",
        "unknown_vehicle_field",
        "missing_brand",
        "missing_application_date",
        "missing_vehicles",
        "empty_vehicles",
        "vehicles_not_a_list",
        "vehicle_not_an_object",
        "empty_vin",
        "bad_transfer_date",
        "empty_manufacturer",
        "long_reference",
    ],
)
def test_file_request_answers_422_naming_the_field_when_a_field_is_invalid(
    client: FlaskClient, session: Session, exporter: Caller, acme: Manufacturer, mutate: Any, field: str
) -> None:
    body = request_body([vehicle()], manufacturer="ACME")
    mutate(body)
    before = written(session)

    response = client.post("/api/v1/requests", json=body, headers=exporter.headers)

    error = assert_error(response, 422, "VALIDATION_FAILED")
    assert [d["field"] for d in error["details"]] == [field]
    assert written(session) == before


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.update(colour="red"), "colour"),
        (lambda b: b.update(vehicles=[]), "vehicles"),
        (lambda b: b.update(manufacturer="AC\u0000ME"), "manufacturer"),
    ],
    ids=["unknown_field", "empty_vehicles", "nul_manufacturer"],
)
def test_precheck_answers_422_naming_the_field_when_a_field_is_invalid(
    client: FlaskClient, exporter: Caller, acme: Manufacturer, mutate: Any, field: str
) -> None:
    body = request_body([vehicle()], manufacturer="ACME")
    mutate(body)

    response = client.post("/api/v1/precheck", json=body, headers=exporter.headers)

    error = assert_error(response, 422, "VALIDATION_FAILED")
    assert [d["field"] for d in error["details"]] == [field]


def test_file_request_writes_nothing_when_the_last_vehicle_is_invalid(
    client: FlaskClient, session: Session, exporter: Caller, acme: Manufacturer
) -> None:
    before = written(session)
    vehicles = [vehicle(), *[vehicle(destination="KZ") for _ in range(20)], vehicle(registration_date="2026-02-30")]

    response = client.post(
        "/api/v1/requests", json=request_body(vehicles, manufacturer="ACME"), headers=exporter.headers
    )

    assert_error(response, 422)
    assert written(session) == before


@pytest.mark.parametrize("path", ["/api/v1/requests", "/api/v1/outlets"])
def test_call_answers_413_json_when_body_is_over_10_mb(
    client: FlaskClient, session: Session, exporter: Caller, aftersales: Caller, path: str
) -> None:
    who = aftersales if path.endswith("outlets") else exporter
    padding = "x" * (10 * 1024 * 1024)
    raw = json.dumps({"application_date": "2026-10-01", "reference": padding, "vehicles": [vehicle()]})
    before = written(session)

    response = client.post(path, data=raw, content_type="application/json", headers=who.headers)

    error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert "10 MB" in error["message"]
    assert written(session) == before


def test_precheck_accepts_a_body_when_it_is_exactly_10_mb(
    client: FlaskClient, exporter: Caller, acme: Manufacturer
) -> None:
    body = request_body([vehicle()], manufacturer="ACME")
    raw = json.dumps(body)
    raw = raw[:-1] + " " * (10 * 1024 * 1024 - len(raw)) + "}"
    assert len(raw.encode()) == 10 * 1024 * 1024

    response = client.post("/api/v1/precheck", data=raw, content_type="application/json", headers=exporter.headers)

    assert response.status_code == 200


# -- routing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing-here", "/api/v1/requests/abc", "/api/v1/requests/1/nothing", "/api/v2/precheck"]
)
def test_call_answers_404_json_when_route_is_unknown(client: FlaskClient, exporter: Caller, path: str) -> None:
    assert_error(client.get(path, headers=exporter.headers), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/precheck"),
        ("DELETE", "/api/v1/requests"),
        ("PUT", "/api/v1/requests/1"),
        ("DELETE", "/api/v1/outlets/KZ-ALMATY"),
        ("POST", "/api/v1/openapi.json"),
    ],
)
def test_call_answers_405_json_when_method_is_not_allowed(
    client: FlaskClient, exporter: Caller, method: str, path: str
) -> None:
    response = send(client, method, path, exporter.headers)

    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers.get("Allow")


def test_call_answers_json_error_when_client_accepts_only_html(client: FlaskClient, exporter: Caller) -> None:
    response = client.post(
        "/api/v1/precheck",
        data="{",
        content_type="application/json",
        headers={**exporter.headers, "Accept": "text/html"},
    )

    assert_error(response, 400, "BAD_REQUEST")


# -- hostile input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b["vehicles"][0].update(vin="LGXC74C43S012345\u0000"), "vehicles[0].vin"),
        (lambda b: b["vehicles"][0].update(brand="Exa\u0000mple"), "vehicles[0].brand"),
        (lambda b: b["vehicles"][0].update(destination="K\u0000"), "vehicles[0].destination"),
        (lambda b: b.update(manufacturer="AC\u0000ME"), "manufacturer"),
        (lambda b: b.update(reference="\u0000"), "reference"),
        (lambda b: b["vehicles"][0].update(brand="   "), "vehicles[0].brand"),
        (lambda b: b["vehicles"][0].update(model="\t"), "vehicles[0].model"),
    ],
    ids=["nul_vin", "nul_brand", "nul_destination", "nul_manufacturer", "nul_reference", "blank_brand", "blank_model"],
)
def test_file_request_answers_422_when_a_text_field_holds_nul_or_is_blank(
    client: FlaskClient, session: Session, exporter: Caller, acme: Manufacturer, mutate: Any, field: str
) -> None:
    body = request_body([vehicle()], manufacturer="ACME")
    mutate(body)
    before = written(session)

    response = client.post("/api/v1/requests", json=body, headers=exporter.headers)

    error = assert_error(response, 422, "VALIDATION_FAILED")
    assert [d["field"] for d in error["details"]] == [field]
    assert written(session) == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/outlets/KZ%00ALMATY",
        "/api/v1/outlets?country=K%00",
        "/api/v1/requests?status=sub%00mitted",
        "/api/v1/letters/L%00",
        "/api/v1/verify/L%00?code=X",
    ],
)
def test_call_answers_400_when_url_holds_a_nul_character(client: FlaskClient, aftersales: Caller, path: str) -> None:
    assert_error(client.get(path, headers=aftersales.headers), 400, "BAD_REQUEST")


@pytest.mark.parametrize("request_id", ["2147483648", "99999999999999999999999"])
def test_get_request_answers_404_when_id_is_beyond_any_stored_id(
    client: FlaskClient, exporter: Caller, request_id: str
) -> None:
    assert_error(client.get(f"/api/v1/requests/{request_id}", headers=exporter.headers), 404, "NOT_FOUND")


def test_precheck_answers_400_when_json_is_nested_too_deeply(client: FlaskClient, exporter: Caller) -> None:
    raw = "[" * 100_000 + "]" * 100_000

    response = client.post("/api/v1/precheck", data=raw, content_type="application/json", headers=exporter.headers)

    assert_error(response, 400, "BAD_REQUEST")
