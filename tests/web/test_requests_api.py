"""POST /api/v1/requests files a request; GET /api/v1/requests[/{id}] shows each caller only
what its tenant may see."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from issuer.models import Exporter, LetterRequest, Manufacturer, RequestVehicle
from tests import factories
from tests.web.conftest import (
    VIN_ACME,
    VIN_OTHER,
    Caller,
    assert_error,
    caller,
    count,
    request_body,
    vehicle,
)


def file_request(
    client: FlaskClient,
    who: Caller,
    vehicles: list[dict[str, Any]] | None = None,
    *,
    manufacturer: str = "ACME",
    **kw: Any,
) -> dict[str, Any]:
    body = request_body(vehicles or [vehicle()], manufacturer=manufacturer, **kw)
    response = client.post("/api/v1/requests", json=body, headers=who.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


@pytest.fixture
def other_maker(session: Session) -> Manufacturer:
    manufacturer = factories.manufacturer(session, "OTHER", wmis=("LRW",))
    factories.outlet(session, manufacturer, country="KZ")
    return manufacturer


@pytest.fixture
def other_exporter(session: Session) -> Caller:
    return caller(session, "exporter", exporter=factories.exporter(session, "EXP2"))


# -- filing ----------------------------------------------------------------------------------


def test_file_request_answers_201_with_id_status_and_verdicts_when_body_is_valid(
    client: FlaskClient, session: Session, acme: Manufacturer, exporter: Caller, exporter_org: Exporter
) -> None:
    factories.outlet(session, acme, country="UZ")
    vehicles = [
        vehicle(f" {VIN_ACME.lower()} "),
        vehicle(factories.make_vin("LGX", 2), destination="uz", registration_date="2025-12-01"),
        vehicle(VIN_OTHER, destination="EU"),
    ]

    answer = file_request(client, exporter, vehicles, reference="  contract   2026/17 ")

    assert isinstance(answer["id"], int)
    assert answer["status"] == "submitted"
    assert answer["manufacturer"] == "ACME"
    assert answer["exporter"] == "EXP1"
    assert answer["application_date"] == "2026-10-01"
    assert answer["assessed_on"] == "2026-09-15"
    assert answer["reference"] == "contract 2026/17"
    assert answer["vehicle_count"] == 3
    assert [(v["vin"], v["verdict"], v["reasons"]) for v in answer["vehicles"]] == [
        (VIN_ACME, "eligible", []),
        (factories.make_vin("LGX", 2), "not_required", ["NOT_REQUIRED_AFTER_180_DAYS"]),
        (VIN_OTHER, "refused", ["VIN_NOT_MANUFACTURER", "DESTINATION_INVALID"]),
    ]
    assert [v["destination"] for v in answer["vehicles"]] == ["KZ", "UZ", "EU"]
    assert answer["vehicles"][0]["letter_not_needed_from"] == "2026-11-29"
    assert {v["decision"] for v in answer["vehicles"]} == {None}
    assert [w["code"] for w in answer["warnings"]] == ["MULTIPLE_DESTINATIONS"]

    session.expire_all()
    stored = session.get(LetterRequest, answer["id"])
    assert stored is not None
    assert stored.manufacturer_id == acme.id
    assert stored.exporter_id == exporter_org.id
    assert stored.status == "submitted"
    assert stored.application_date == dt.date(2026, 10, 1)
    assert stored.reference == "contract 2026/17"
    assert stored.assessed_on == dt.date(2026, 9, 15)
    assert [w["code"] for w in stored.warnings] == ["MULTIPLE_DESTINATIONS"]
    rows = session.scalars(
        select(RequestVehicle).where(RequestVehicle.request_id == stored.id).order_by(RequestVehicle.position)
    ).all()
    assert [(r.position, r.vin, r.brand, r.model, r.registration_date, r.destination, r.verdict) for r in rows] == [
        (0, VIN_ACME, "Example", "E1", dt.date(2026, 6, 1), "KZ", "eligible"),
        (1, factories.make_vin("LGX", 2), "Example", "E1", dt.date(2025, 12, 1), "UZ", "not_required"),
        (2, VIN_OTHER, "Example", "E1", dt.date(2026, 6, 1), "EU", "refused"),
    ]
    assert rows[0].letter_not_needed_from == dt.date(2026, 11, 29)
    assert rows[2].reasons == ["VIN_NOT_MANUFACTURER", "DESTINATION_INVALID"]


def test_get_request_answers_what_was_filed_when_exporter_reads_it_back(
    client: FlaskClient, acme: Manufacturer, exporter: Caller
) -> None:
    filed = file_request(
        client, exporter, [vehicle(), vehicle(factories.make_vin("LGX", 2), export_transfer_date="2026-07-01")]
    )

    response = client.get(f"/api/v1/requests/{filed['id']}", headers=exporter.headers)

    assert response.status_code == 200
    assert response.get_json() == filed
    assert filed["vehicles"][1]["export_transfer_date"] == "2026-07-01"


def test_file_request_stores_refused_vehicles_too_when_every_vehicle_is_refused(
    client: FlaskClient, session: Session, acme: Manufacturer, exporter: Caller
) -> None:
    answer = file_request(client, exporter, [vehicle("garbage"), vehicle(VIN_OTHER)])

    assert [v["verdict"] for v in answer["vehicles"]] == ["refused", "refused"]
    assert count(session, RequestVehicle) == 2


def test_file_request_refuses_with_422_naming_the_code_when_manufacturer_is_unknown(
    client: FlaskClient, session: Session, acme: Manufacturer, exporter: Caller
) -> None:
    response = client.post(
        "/api/v1/requests", json=request_body([vehicle()], manufacturer="GHOST"), headers=exporter.headers
    )

    error = assert_error(response, 422, "VALIDATION_FAILED")
    assert "GHOST" in error["message"]
    assert [d["field"] for d in error["details"]] == ["manufacturer"]
    assert count(session, LetterRequest) == 0


@pytest.mark.parametrize("send_null", [False, True], ids=["absent", "null"])
def test_file_request_refuses_with_422_when_manufacturer_is_missing(
    client: FlaskClient, session: Session, acme: Manufacturer, exporter: Caller, send_null: bool
) -> None:
    body = request_body([vehicle()])
    if send_null:
        body["manufacturer"] = None

    response = client.post("/api/v1/requests", json=body, headers=exporter.headers)

    error = assert_error(response, 422, "VALIDATION_FAILED")
    assert [d["field"] for d in error["details"]] == ["manufacturer"]
    assert count(session, LetterRequest) == 0


def test_file_request_refuses_with_403_when_caller_is_aftersales(
    client: FlaskClient, session: Session, aftersales: Caller
) -> None:
    response = client.post(
        "/api/v1/requests", json=request_body([vehicle()], manufacturer="ACME"), headers=aftersales.headers
    )

    assert_error(response, 403, "FORBIDDEN")
    assert count(session, LetterRequest) == 0


# -- who sees what ---------------------------------------------------------------------------


@pytest.fixture
def filed(
    client: FlaskClient, acme: Manufacturer, other_maker: Manufacturer, exporter: Caller, other_exporter: Caller
) -> dict[str, int]:
    """Three requests: EXP1 to ACME, EXP1 to OTHER, EXP2 to ACME."""
    return {
        "exp1_acme": file_request(client, exporter)["id"],
        "exp1_other": file_request(client, exporter, [vehicle(VIN_OTHER)], manufacturer="OTHER")["id"],
        "exp2_acme": file_request(
            client, other_exporter, [vehicle(), vehicle(factories.make_vin("LGX", 2))], reference="r2"
        )["id"],
    }


def listed(client: FlaskClient, who: Caller, query: str = "") -> list[int]:
    response = client.get(f"/api/v1/requests{query}", headers=who.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [r["id"] for r in response.get_json()["requests"]]


def test_list_requests_shows_only_own_requests_when_caller_is_an_exporter(
    client: FlaskClient, exporter: Caller, other_exporter: Caller, filed: dict[str, int]
) -> None:
    assert listed(client, exporter) == [filed["exp1_other"], filed["exp1_acme"]]
    assert listed(client, other_exporter) == [filed["exp2_acme"]]


@pytest.mark.parametrize("role", ["aftersales", "manufacturer_admin"])
def test_list_requests_shows_only_requests_addressed_to_them_when_caller_is_manufacturer_staff(
    client: FlaskClient,
    session: Session,
    acme: Manufacturer,
    other_maker: Manufacturer,
    filed: dict[str, int],
    role: str,
) -> None:
    assert listed(client, caller(session, role, manufacturer=acme)) == [filed["exp2_acme"], filed["exp1_acme"]]
    assert listed(client, caller(session, role, manufacturer=other_maker)) == [filed["exp1_other"]]


def test_list_requests_shows_all_requests_when_caller_is_platform_admin(
    client: FlaskClient, session: Session, filed: dict[str, int]
) -> None:
    admin = caller(session, "platform_admin")

    assert listed(client, admin) == sorted(filed.values(), reverse=True)


def test_list_requests_summarises_each_request_when_listing(
    client: FlaskClient, other_exporter: Caller, filed: dict[str, int]
) -> None:
    summary = client.get("/api/v1/requests", headers=other_exporter.headers).get_json()["requests"][0]

    assert summary["id"] == filed["exp2_acme"]
    assert summary["vehicle_count"] == 2
    assert summary["manufacturer"] == "ACME"
    assert summary["exporter"] == "EXP2"
    assert summary["reference"] == "r2"
    assert summary["status"] == "submitted"
    assert "vehicles" not in summary


def test_list_requests_pages_and_filters_when_query_parameters_are_given(
    client: FlaskClient, session: Session, filed: dict[str, int]
) -> None:
    admin = caller(session, "platform_admin")
    newest_first = sorted(filed.values(), reverse=True)

    assert listed(client, admin, "?limit=2") == newest_first[:2]
    assert listed(client, admin, "?limit=2&offset=2") == newest_first[2:]
    assert listed(client, admin, "?status=submitted") == newest_first
    assert listed(client, admin, "?status=approved") == []


@pytest.mark.parametrize("query", ["?limit=abc", "?limit=0", "?limit=501", "?offset=-1"])
def test_list_requests_refuses_with_422_when_paging_parameter_is_invalid(
    client: FlaskClient, exporter: Caller, query: str
) -> None:
    response = client.get(f"/api/v1/requests{query}", headers=exporter.headers)

    assert_error(response, 422, "VALIDATION_FAILED")


def test_list_requests_refuses_with_403_when_caller_is_a_reviewer(
    client: FlaskClient, session: Session, filed: dict[str, int]
) -> None:
    reviewer = caller(session, "reviewer")

    assert_error(client.get("/api/v1/requests", headers=reviewer.headers), 403, "FORBIDDEN")
    assert_error(client.get(f"/api/v1/requests/{filed['exp1_acme']}", headers=reviewer.headers), 403, "FORBIDDEN")


def test_get_request_answers_404_when_request_is_another_exporters(
    client: FlaskClient, other_exporter: Caller, filed: dict[str, int]
) -> None:
    response = client.get(f"/api/v1/requests/{filed['exp1_acme']}", headers=other_exporter.headers)

    assert_error(response, 404, "NOT_FOUND")


def test_get_request_answers_404_when_request_is_addressed_to_another_manufacturer(
    client: FlaskClient, session: Session, other_maker: Manufacturer, filed: dict[str, int]
) -> None:
    staff = caller(session, "aftersales", manufacturer=other_maker)

    assert client.get(f"/api/v1/requests/{filed['exp1_other']}", headers=staff.headers).status_code == 200
    assert_error(client.get(f"/api/v1/requests/{filed['exp1_acme']}", headers=staff.headers), 404, "NOT_FOUND")


def test_get_request_answers_the_same_404_when_request_does_not_exist(
    client: FlaskClient, other_exporter: Caller, filed: dict[str, int]
) -> None:
    missing = client.get(f"/api/v1/requests/{max(filed.values()) + 1000}", headers=other_exporter.headers)
    foreign = client.get(f"/api/v1/requests/{filed['exp1_acme']}", headers=other_exporter.headers)

    assert_error(missing, 404, "NOT_FOUND")
    assert_error(foreign, 404, "NOT_FOUND")


def test_get_request_answers_any_request_when_caller_is_platform_admin(
    client: FlaskClient, session: Session, filed: dict[str, int]
) -> None:
    admin = caller(session, "platform_admin")

    for request_id in filed.values():
        assert client.get(f"/api/v1/requests/{request_id}", headers=admin.headers).status_code == 200
