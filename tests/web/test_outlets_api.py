"""The outlet registry API (manufacturer staff only): list, add, edit with history, deactivate."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from issuer.models import Manufacturer, Outlet, OutletVersion
from tests import factories
from tests.web.conftest import Caller, assert_error, caller, count, request_body, vehicle


def new_outlet(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": "UZ-TASHKENT-1",
        "country": "UZ",
        "name": "Tashkent Service Centre",
        "provider": "Avto Servis LLC",
        "address": "12 Amir Temur Ave",
        "city": "Tashkent",
        "phone": "+998 71 000 0000",
        "email": "service@example.uz",
        "brands": "Example",
        "valid_from": "2026-01-01",
        "valid_to": None,
    }
    body.update(overrides)
    return body


def create(client: FlaskClient, who: Caller, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/outlets", json=new_outlet(**overrides), headers=who.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def codes(client: FlaskClient, who: Caller, query: str = "") -> list[str]:
    response = client.get(f"/api/v1/outlets{query}", headers=who.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [o["code"] for o in response.get_json()["outlets"]]


@pytest.fixture
def admin(session: Session, acme: Manufacturer) -> Caller:
    return caller(session, "manufacturer_admin", manufacturer=acme)


# -- listing ---------------------------------------------------------------------------------


def test_list_outlets_shows_only_own_manufacturers_outlets_when_staff_lists_them(
    client: FlaskClient, session: Session, aftersales: Caller, acme: Manufacturer
) -> None:
    factories.outlet(session, acme, code="UZ-1", country="UZ")
    other = factories.manufacturer(session, "OTHER", wmis=("LRW",))
    factories.outlet(session, other, code="UZ-OTHER", country="UZ")

    assert codes(client, aftersales) == ["KZ-ALMATY", "UZ-1"]
    assert codes(client, caller(session, "aftersales", manufacturer=other)) == ["UZ-OTHER"]


@pytest.mark.parametrize("country", ["UZ", "uz", " Uz "])
def test_list_outlets_filters_by_country_when_country_is_given_in_any_case(
    client: FlaskClient, session: Session, aftersales: Caller, acme: Manufacturer, country: str
) -> None:
    factories.outlet(session, acme, code="UZ-1", country="UZ")
    factories.outlet(session, acme, code="UZ-2", country="UZ")

    assert codes(client, aftersales, f"?country={country}") == ["UZ-1", "UZ-2"]
    assert codes(client, aftersales, "?country=MN") == []


@pytest.mark.parametrize(
    ("query", "expected"), [("?active=false", ["UZ-1"]), ("?active=true", ["KZ-ALMATY"]), ("", ["KZ-ALMATY", "UZ-1"])]
)
def test_list_outlets_filters_by_state_when_active_is_given(
    client: FlaskClient, session: Session, aftersales: Caller, acme: Manufacturer, query: str, expected: list[str]
) -> None:
    factories.outlet(session, acme, code="UZ-1", country="UZ")
    patched = client.patch("/api/v1/outlets/UZ-1", json={"active": False}, headers=aftersales.headers)
    assert patched.status_code == 200

    assert codes(client, aftersales, query) == expected


@pytest.mark.parametrize("query", ["?active=maybe", "?country=EU", "?country=KAZ"])
def test_list_outlets_answers_422_when_a_filter_is_invalid(client: FlaskClient, aftersales: Caller, query: str) -> None:
    assert_error(client.get(f"/api/v1/outlets{query}", headers=aftersales.headers), 422, "VALIDATION_FAILED")


# -- adding ----------------------------------------------------------------------------------


def test_create_outlet_answers_201_with_the_outlet_when_body_is_valid(
    client: FlaskClient, session: Session, admin: Caller, acme: Manufacturer
) -> None:
    outlet = create(client, admin, code="uz-tashkent-1", country="uz", brands="Example; Other ;Example")

    assert outlet["code"] == "UZ-TASHKENT-1"
    assert outlet["country"] == "UZ"
    assert outlet["country_name_zh"] == "乌兹别克斯坦"
    assert outlet["country_name_en"] == "Uzbekistan"
    assert outlet["brands"] == ["Example", "Other"]
    assert outlet["valid_from"] == "2026-01-01"
    assert outlet["valid_to"] is None
    assert outlet["active"] is True
    assert outlet["version"] == 1
    session.expire_all()
    stored = session.query(Outlet).filter_by(manufacturer_id=acme.id, code="UZ-TASHKENT-1").one()
    assert stored.name == "Tashkent Service Centre"
    assert [v.change for v in stored.versions] == ["created"]
    assert stored.versions[0].recorded_by == admin.email


def test_create_outlet_makes_the_destination_servable_when_it_covers_the_brand(
    client: FlaskClient, aftersales: Caller, exporter: Caller, acme: Manufacturer
) -> None:
    body = request_body([vehicle(destination="UZ")], manufacturer="ACME")
    before = client.post("/api/v1/precheck", json=body, headers=exporter.headers).get_json()
    create(client, aftersales)

    after = client.post("/api/v1/precheck", json=body, headers=exporter.headers).get_json()

    assert before["vehicles"][0]["reasons"] == ["NO_OUTLET_IN_DESTINATION"]
    assert after["vehicles"][0]["verdict"] == "eligible"


@pytest.mark.parametrize("code", ["UZ-TASHKENT-1", "uz-tashkent-1"])
def test_create_outlet_answers_409_when_code_already_exists(
    client: FlaskClient, session: Session, aftersales: Caller, code: str
) -> None:
    create(client, aftersales)
    before = count(session, OutletVersion)

    response = client.post("/api/v1/outlets", json=new_outlet(code=code, name="Again"), headers=aftersales.headers)

    assert_error(response, 409, "CONFLICT")
    assert count(session, OutletVersion) == before


def test_create_outlet_accepts_a_code_when_another_manufacturer_uses_it(
    client: FlaskClient, session: Session, aftersales: Caller
) -> None:
    other = factories.manufacturer(session, "OTHER", wmis=("LRW",))
    factories.outlet(session, other, code="UZ-TASHKENT-1", country="UZ")

    assert create(client, aftersales)["code"] == "UZ-TASHKENT-1"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"country": "EU"}, "country"),
        ({"country": "XX"}, "country"),
        ({"country": "CN"}, "country"),
        ({"country": "KAZ"}, "country"),
        ({"code": "has space"}, "code"),
        ({"name": "  "}, "name"),
        ({"email": "not-an-address"}, "email"),
        ({"valid_from": "2026-02-30"}, "valid_from"),
        ({"valid_to": "2025-12-31"}, "valid_to"),
        ({"active": "yes please"}, "active"),
        ({"colour": "red"}, "colour"),
        ({"name": "N\u0000"}, "name"),
        ({"name": "N\u0005"}, "name"),
        ({"address": "12\u009b Amir Temur Ave"}, "address"),
    ],
)
def test_create_outlet_answers_422_naming_the_field_when_a_field_is_invalid(
    client: FlaskClient, session: Session, aftersales: Caller, overrides: dict[str, Any], field: str
) -> None:
    before = count(session, Outlet)

    response = client.post("/api/v1/outlets", json=new_outlet(**overrides), headers=aftersales.headers)

    error = assert_error(response, 422, "VALIDATION_FAILED")
    assert [d["field"] for d in error["details"]] == [field]
    assert count(session, Outlet) == before


@pytest.mark.parametrize("missing", ["code", "country", "name", "provider", "address", "valid_from"])
def test_create_outlet_answers_422_when_a_required_field_is_missing(
    client: FlaskClient, aftersales: Caller, missing: str
) -> None:
    body = new_outlet()
    del body[missing]

    error = assert_error(client.post("/api/v1/outlets", json=body, headers=aftersales.headers), 422)
    assert [d["field"] for d in error["details"]] == [missing]


# -- editing ---------------------------------------------------------------------------------


def test_update_outlet_records_a_new_version_and_keeps_the_old_one_when_fields_change(
    client: FlaskClient, aftersales: Caller, admin: Caller
) -> None:
    created = create(client, admin)

    response = client.patch(
        "/api/v1/outlets/uz-tashkent-1",
        json={"name": "Tashkent Service Centre No. 2", "phone": "+998 71 111 1111", "valid_to": "2027-12-31"},
        headers=aftersales.headers,
    )

    assert response.status_code == 200
    updated = response.get_json()
    assert updated["version"] == 2
    assert updated["name"] == "Tashkent Service Centre No. 2"
    assert updated["valid_to"] == "2027-12-31"
    assert updated["provider"] == created["provider"]
    detail = client.get("/api/v1/outlets/UZ-TASHKENT-1", headers=aftersales.headers).get_json()
    assert {k: v for k, v in detail.items() if k != "versions"} == updated
    first, second = detail["versions"]
    assert (first["version"], first["change"], first["recorded_by"]) == (1, "created", admin.email)
    assert (first["name"], first["phone"], first["valid_to"]) == (
        "Tashkent Service Centre",
        "+998 71 000 0000",
        None,
    )
    assert (second["version"], second["change"], second["recorded_by"]) == (2, "updated", aftersales.email)
    assert (second["name"], second["phone"], second["valid_to"]) == (
        "Tashkent Service Centre No. 2",
        "+998 71 111 1111",
        "2027-12-31",
    )


def test_update_outlet_records_no_version_when_nothing_changes(client: FlaskClient, aftersales: Caller) -> None:
    create(client, aftersales)

    response = client.patch("/api/v1/outlets/UZ-TASHKENT-1", json={"city": "Tashkent"}, headers=aftersales.headers)

    assert response.get_json()["version"] == 1
    detail = client.get("/api/v1/outlets/UZ-TASHKENT-1", headers=aftersales.headers).get_json()
    assert len(detail["versions"]) == 1


def test_update_outlet_deactivates_it_and_precheck_then_finds_no_outlet_when_active_is_false(
    client: FlaskClient, aftersales: Caller, exporter: Caller
) -> None:
    body = request_body([vehicle()], manufacturer="ACME")
    assert (
        client.post("/api/v1/precheck", json=body, headers=exporter.headers).get_json()["vehicles"][0]["verdict"]
        == "eligible"
    )

    response = client.patch("/api/v1/outlets/KZ-ALMATY", json={"active": False}, headers=aftersales.headers)

    assert response.status_code == 200
    assert response.get_json()["active"] is False
    answer = client.post("/api/v1/precheck", json=body, headers=exporter.headers).get_json()
    assert answer["vehicles"][0]["reasons"] == ["NO_OUTLET_IN_DESTINATION"]
    reactivated = client.patch("/api/v1/outlets/KZ-ALMATY", json={"active": True}, headers=aftersales.headers)
    assert reactivated.get_json()["version"] == 3
    answer = client.post("/api/v1/precheck", json=body, headers=exporter.headers).get_json()
    assert answer["vehicles"][0]["verdict"] == "eligible"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"country": "EU"}, "country"),
        ({"valid_to": "2024-01-01"}, "valid_to"),
        ({"code": "NEW-CODE"}, "code"),
        ({"name": ""}, "name"),
        ({"active": None}, "active"),
        ({"provider": "Avto\u007fServis"}, "provider"),
    ],
)
def test_update_outlet_answers_422_and_changes_nothing_when_a_field_is_invalid(
    client: FlaskClient, session: Session, aftersales: Caller, body: dict[str, Any], field: str
) -> None:
    before = client.get("/api/v1/outlets/KZ-ALMATY", headers=aftersales.headers).get_json()

    response = client.patch("/api/v1/outlets/KZ-ALMATY", json=body, headers=aftersales.headers)

    error = assert_error(response, 422, "VALIDATION_FAILED")
    assert [d["field"] for d in error["details"]] == [field]
    assert client.get("/api/v1/outlets/KZ-ALMATY", headers=aftersales.headers).get_json() == before


def test_update_outlet_answers_422_when_body_is_empty(client: FlaskClient, aftersales: Caller) -> None:
    assert_error(client.patch("/api/v1/outlets/KZ-ALMATY", json={}, headers=aftersales.headers), 422)


# -- tenants and roles -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_outlet_answers_404_when_code_is_another_manufacturers(
    client: FlaskClient, session: Session, aftersales: Caller, method: str
) -> None:
    other = factories.manufacturer(session, "OTHER", wmis=("LRW",))
    factories.outlet(session, other, code="UZ-OTHER", country="UZ")

    response = client.open(
        "/api/v1/outlets/UZ-OTHER", method=method, json={"name": "Mine now"}, headers=aftersales.headers
    )

    assert_error(response, 404, "NOT_FOUND")
    session.expire_all()
    assert session.query(Outlet).filter_by(code="UZ-OTHER").one().name != "Mine now"


def test_outlet_answers_404_when_code_is_unknown(client: FlaskClient, aftersales: Caller) -> None:
    assert_error(client.get("/api/v1/outlets/NOPE", headers=aftersales.headers), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/outlets"),
        ("POST", "/api/v1/outlets"),
        ("GET", "/api/v1/outlets/KZ-ALMATY"),
        ("PATCH", "/api/v1/outlets/KZ-ALMATY"),
    ],
)
def test_outlets_answer_403_when_caller_is_an_exporter(
    client: FlaskClient, session: Session, exporter: Caller, acme: Manufacturer, method: str, path: str
) -> None:
    before = count(session, OutletVersion)

    response = client.open(path, method=method, json=new_outlet(active=False), headers=exporter.headers)

    assert_error(response, 403, "FORBIDDEN")
    assert count(session, OutletVersion) == before
