"""POST /api/v1/precheck (and POST /api/v1/requests, which must give and store the same verdicts):
every reason code of the contract but ALREADY_COVERED, through HTTP, on a real database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from issuer.models import LetterRequest, Manufacturer, Outlet, RequestVehicle
from issuer.services import organisations, outlets
from tests import factories
from tests.web.conftest import (
    APPLICATION_DATE,
    BRAND,
    MODEL,
    VIN_ACME,
    VIN_OTHER,
    VIN_SMALL,
    Caller,
    assert_error,
    caller,
    count,
    request_body,
    vehicle,
)

Check = Callable[..., dict[str, Any]]


@pytest.fixture(params=["precheck", "requests"])
def check(request: pytest.FixtureRequest, client: FlaskClient, session: Session, exporter: Caller) -> Check:
    """Send vehicles to ``acme`` through one endpoint and return the answer.

    Through /requests, also prove that what was stored is what was answered."""
    endpoint = request.param

    def call(
        vehicles: list[dict[str, Any]],
        *,
        manufacturer: str = "ACME",
        application_date: str = APPLICATION_DATE,
        who: Caller = exporter,
    ) -> dict[str, Any]:
        body = request_body(vehicles, manufacturer=manufacturer, application_date=application_date)
        response = client.post(f"/api/v1/{endpoint}", json=body, headers=who.headers)
        if endpoint == "precheck":
            assert response.status_code == 200, response.get_data(as_text=True)
            answer = response.get_json()
            assert answer["manufacturer"] == manufacturer
            return answer
        assert response.status_code == 201, response.get_data(as_text=True)
        answer = response.get_json()
        session.expire_all()
        stored = session.scalars(
            select(RequestVehicle).where(RequestVehicle.request_id == answer["id"]).order_by(RequestVehicle.position)
        ).all()
        assert [
            (
                v.vin,
                v.verdict,
                list(v.reasons),
                v.letter_not_needed_from.isoformat() if v.letter_not_needed_from else None,
            )
            for v in stored
        ] == [(v["vin"], v["verdict"], v["reasons"], v["letter_not_needed_from"]) for v in answer["vehicles"]]
        return answer

    return call


def only(answer: dict[str, Any]) -> dict[str, Any]:
    assert len(answer["vehicles"]) == 1
    return answer["vehicles"][0]


def reasons(answer: dict[str, Any]) -> list[list[str]]:
    return [v["reasons"] for v in answer["vehicles"]]


# -- eligible --------------------------------------------------------------------------------


def test_precheck_answers_eligible_with_first_day_without_letter_when_vehicle_needs_a_letter(
    check: Check, acme: Manufacturer
) -> None:
    answer = check([vehicle()])

    verdict = only(answer)
    assert verdict["vin"] == VIN_ACME
    assert verdict["verdict"] == "eligible"
    assert verdict["reasons"] == []
    assert verdict["explanations"] == []
    assert verdict["letter_required"] is True
    assert verdict["letter_not_needed_from"] == "2026-11-29"  # 2026-06-01 + 181 days
    assert verdict["destination"] == "KZ"
    assert verdict["destination_name_zh"] == "哈萨克斯坦"
    assert answer["warnings"] == []


def test_precheck_answers_upper_case_vin_when_vin_is_sent_lower_case_with_spaces(
    check: Check, acme: Manufacturer
) -> None:
    verdict = only(check([vehicle(f"  {VIN_ACME.lower()}\t ")]))

    assert verdict["vin"] == VIN_ACME
    assert verdict["verdict"] == "eligible"


@pytest.mark.parametrize("destination", ["kz", " kZ "])
def test_precheck_accepts_country_code_when_sent_in_any_case(
    check: Check, acme: Manufacturer, destination: str
) -> None:
    verdict = only(check([vehicle(destination=destination)]))

    assert verdict["verdict"] == "eligible"
    assert verdict["destination"] == "KZ"


def test_precheck_accepts_brand_when_case_and_spacing_differ_from_registry(
    check: Check, session: Session, acme: Manufacturer
) -> None:
    factories.register(session, acme, [VIN_ACME], brand="Example Motors", model="E1 Pro")

    verdict = only(check([vehicle(brand="  example   MOTORS", model="e1 pro")]))

    assert verdict["verdict"] == "eligible"


def test_precheck_answers_eligible_when_vin_belongs_to_a_small_maker(
    check: Check, session: Session, exporter: Caller
) -> None:
    small = factories.manufacturer(session, "SMALL", wmis=("LA9/123",))
    factories.outlet(session, small, country="KZ")

    answer = check(
        [vehicle(VIN_SMALL), vehicle(factories.make_vin("LA9", 1, plant="456"))],
        manufacturer="SMALL",
    )

    assert [v["verdict"] for v in answer["vehicles"]] == ["eligible", "refused"]
    assert reasons(answer) == [[], ["VIN_NOT_MANUFACTURER"]]


# -- the VIN and the registry ----------------------------------------------------------------


@pytest.mark.parametrize(
    "vin",
    [
        "LGXC74C43S012345",  # 16 characters
        "LGXC74C43S01234567",  # 18 characters
        "LGXC74C43SO12345I",  # O and I are not VIN characters
        "LGXC74C43S0 2345Q",  # nor are an inner space and Q
    ],
)
def test_precheck_refuses_with_vin_format_when_vin_is_malformed(check: Check, acme: Manufacturer, vin: str) -> None:
    verdict = only(check([vehicle(vin)]))

    assert verdict["verdict"] == "refused"
    assert verdict["reasons"] == ["VIN_FORMAT"]
    assert verdict["explanations"][0]["code"] == "VIN_FORMAT"
    assert verdict["explanations"][0]["zh"]
    assert verdict["explanations"][0]["en"]


def test_precheck_refuses_with_vin_check_digit_when_position_9_is_wrong(check: Check, acme: Manufacturer) -> None:
    wrong = VIN_ACME[:8] + "4" + VIN_ACME[9:]

    verdict = only(check([vehicle(wrong)]))

    assert verdict["verdict"] == "refused"
    assert verdict["reasons"] == ["VIN_CHECK_DIGIT"]


def test_precheck_refuses_with_vin_not_manufacturer_when_wmi_is_another_makers(
    check: Check, acme: Manufacturer
) -> None:
    verdict = only(check([vehicle(VIN_OTHER)]))

    assert verdict["verdict"] == "refused"
    assert verdict["reasons"] == ["VIN_NOT_MANUFACTURER"]


def test_precheck_refuses_with_vin_not_in_registry_when_registry_lacks_the_vin(
    check: Check, session: Session, acme: Manufacturer
) -> None:
    listed = factories.make_vin("LGX", 7)
    factories.register(session, acme, [listed])

    answer = check([vehicle(listed), vehicle(VIN_ACME)])

    assert reasons(answer) == [[], ["VIN_NOT_IN_REGISTRY"]]
    assert [v["verdict"] for v in answer["vehicles"]] == ["eligible", "refused"]


@pytest.mark.parametrize(
    ("brand", "model", "expected"),
    [
        ("Other", MODEL, ["BRAND_MISMATCH"]),
        (BRAND, "E2", ["MODEL_MISMATCH"]),
        ("Other", "E2", ["BRAND_MISMATCH", "MODEL_MISMATCH"]),
    ],
)
def test_precheck_refuses_with_mismatch_when_declared_brand_or_model_differ_from_registry(
    check: Check, session: Session, acme: Manufacturer, brand: str, model: str, expected: list[str]
) -> None:
    factories.register(session, acme, [VIN_ACME], brand=BRAND, model=MODEL)

    verdict = only(check([vehicle(brand=brand, model=model)]))

    assert verdict["verdict"] == "refused"
    assert verdict["reasons"] == expected


# -- dates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("registration_date", "application_date"),
    [
        ("2026-09-16", "2026-12-01"),  # after today (2026-09-15)
        ("2026-09-01", "2026-08-31"),  # after the application date
    ],
    ids=["in_the_future", "after_application_date"],
)
def test_precheck_refuses_with_registration_date_invalid_when_registration_date_is_impossible(
    check: Check, acme: Manufacturer, registration_date: str, application_date: str
) -> None:
    verdict = only(check([vehicle(registration_date=registration_date)], application_date=application_date))

    assert verdict["verdict"] == "refused"
    assert verdict["reasons"] == ["REGISTRATION_DATE_INVALID"]
    assert verdict["letter_required"] is False
    assert verdict["letter_not_needed_from"] is None


def test_precheck_refuses_with_registration_date_invalid_when_registered_before_production(
    check: Check, session: Session, acme: Manufacturer
) -> None:
    factories.register(session, acme, [VIN_ACME], production_date=dt.date(2026, 6, 2))

    answer = check([vehicle(registration_date="2026-06-01")])

    assert reasons(answer) == [["REGISTRATION_DATE_INVALID"]]


def test_precheck_answers_eligible_when_registered_on_production_day_and_today(
    check: Check, session: Session, acme: Manufacturer
) -> None:
    factories.register(session, acme, [VIN_ACME], production_date=dt.date(2026, 9, 15))

    verdict = only(check([vehicle(registration_date="2026-09-15")]))

    assert verdict["verdict"] == "eligible"


def test_precheck_answers_not_required_when_application_is_before_2026(check: Check, acme: Manufacturer) -> None:
    verdict = only(check([vehicle(registration_date="2025-11-01")], application_date="2025-12-31"))

    assert verdict["verdict"] == "not_required"
    assert verdict["reasons"] == ["NOT_REQUIRED_BEFORE_2026"]
    assert verdict["letter_required"] is False
    assert verdict["letter_not_needed_from"] is None


def test_precheck_answers_exempt_when_export_transfer_was_registered_before_2026(
    check: Check, acme: Manufacturer
) -> None:
    verdict = only(
        check(
            [vehicle(registration_date="2025-11-01", export_transfer_date="2025-12-31")],
            application_date="2026-02-01",
        )
    )

    assert verdict["verdict"] == "not_required"
    assert verdict["reasons"] == ["EXEMPT_TRANSFERRED_BEFORE_2026"]


def test_precheck_answers_eligible_when_export_transfer_was_registered_in_2026(
    check: Check, acme: Manufacturer
) -> None:
    verdict = only(
        check(
            [vehicle(registration_date="2025-11-01", export_transfer_date="2026-01-01")],
            application_date="2026-02-01",
        )
    )

    assert verdict["verdict"] == "eligible"
    assert verdict["letter_not_needed_from"] == "2026-05-01"


@pytest.mark.parametrize(
    ("days", "verdict", "expected"),
    [(180, "eligible", []), (181, "not_required", ["NOT_REQUIRED_AFTER_180_DAYS"])],
)
def test_precheck_draws_the_180_day_line_when_application_is_180_or_181_days_after_registration(
    check: Check, acme: Manufacturer, days: int, verdict: str, expected: list[str]
) -> None:
    application = dt.date.fromisoformat(APPLICATION_DATE)
    registration = application - dt.timedelta(days=days)

    answer = only(check([vehicle(registration_date=registration.isoformat())]))

    assert answer["verdict"] == verdict
    assert answer["reasons"] == expected
    if verdict == "eligible":
        # The first day without a letter is the day after this application date.
        assert answer["letter_not_needed_from"] == (application + dt.timedelta(days=1)).isoformat()
    else:
        assert answer["letter_not_needed_from"] is None


# -- destination and outlets -----------------------------------------------------------------


@pytest.mark.parametrize("destination", ["EU", "xx", "CN", "KAZ"])
def test_precheck_refuses_with_destination_invalid_when_destination_is_not_a_country(
    check: Check, acme: Manufacturer, destination: str
) -> None:
    verdict = only(check([vehicle(destination=destination)]))

    assert verdict["verdict"] == "refused"
    assert verdict["reasons"] == ["DESTINATION_INVALID"]
    assert verdict["destination_name_zh"] is None


def test_precheck_refuses_with_no_outlet_when_no_outlet_is_in_the_destination(check: Check, acme: Manufacturer) -> None:
    answer = check([vehicle(destination="UZ")])

    assert reasons(answer) == [["NO_OUTLET_IN_DESTINATION"]]


def test_precheck_refuses_with_no_outlet_when_the_only_outlet_covers_another_brand(
    check: Check, session: Session, acme: Manufacturer
) -> None:
    factories.outlet(session, acme, country="UZ", brands="Other;Third")

    answer = check([vehicle(destination="UZ"), vehicle(factories.make_vin("LGX", 2), destination="UZ", brand="third")])

    assert reasons(answer) == [["NO_OUTLET_IN_DESTINATION"], []]


def test_precheck_refuses_with_no_outlet_when_the_only_outlet_is_another_manufacturers(
    check: Check, session: Session, acme: Manufacturer
) -> None:
    other = factories.manufacturer(session, wmis=("LRW",))
    factories.outlet(session, other, country="UZ")

    answer = check([vehicle(destination="UZ")])

    assert reasons(answer) == [["NO_OUTLET_IN_DESTINATION"]]


@pytest.mark.parametrize(
    ("valid_from", "valid_to", "expected"),
    [
        (dt.date(2025, 1, 1), dt.date(2026, 9, 14), ["NO_OUTLET_IN_DESTINATION"]),  # expired yesterday
        (dt.date(2026, 9, 16), None, ["NO_OUTLET_IN_DESTINATION"]),  # valid from tomorrow
        (dt.date(2025, 1, 1), dt.date(2026, 9, 15), []),  # valid to today, inclusive
        (dt.date(2026, 9, 15), None, []),  # valid from today
    ],
    ids=["expired", "not_yet_valid", "last_day", "first_day"],
)
def test_precheck_counts_an_outlet_only_when_it_is_valid_today(
    check: Check,
    session: Session,
    acme: Manufacturer,
    valid_from: dt.date,
    valid_to: dt.date | None,
    expected: list[str],
) -> None:
    factories.outlet(session, acme, country="UZ", valid_from=valid_from, valid_to=valid_to)

    # The application date lies after valid_to: outlets count on the day of the check, not then.
    answer = check([vehicle(destination="UZ")], application_date="2026-10-01")

    assert reasons(answer) == [expected]


def test_precheck_refuses_with_no_outlet_when_the_only_outlet_is_inactive(
    check: Check, session: Session, acme: Manufacturer
) -> None:
    outlet = factories.outlet(session, acme, country="UZ")
    outlets.update_outlet(session=session, manufacturer=acme, code=outlet.code, values={"active": False})

    answer = check([vehicle(destination="UZ")])

    assert reasons(answer) == [["NO_OUTLET_IN_DESTINATION"]]


def test_precheck_warns_about_several_countries_when_vehicles_go_to_two_countries(
    check: Check, session: Session, acme: Manufacturer
) -> None:
    factories.outlet(session, acme, country="UZ")

    answer = check([vehicle(), vehicle(factories.make_vin("LGX", 2), destination="uz")])

    assert [v["verdict"] for v in answer["vehicles"]] == ["eligible", "eligible"]
    assert len(answer["warnings"]) == 1
    warning = answer["warnings"][0]
    assert warning["code"] == "MULTIPLE_DESTINATIONS"
    assert warning["details"] == {"countries": ["KZ", "UZ"]}
    assert "KZ" in warning["message"]


def test_precheck_gives_no_warning_when_all_vehicles_go_to_one_country(check: Check, acme: Manufacturer) -> None:
    answer = check([vehicle(), vehicle(factories.make_vin("LGX", 2), destination="kz")])

    assert answer["warnings"] == []


# -- the request as a whole ------------------------------------------------------------------


def test_precheck_refuses_both_with_duplicate_when_a_vin_appears_twice(check: Check, acme: Manufacturer) -> None:
    answer = check([vehicle(), vehicle(factories.make_vin("LGX", 2)), vehicle(f" {VIN_ACME.lower()} ")])

    assert reasons(answer) == [["DUPLICATE_IN_REQUEST"], [], ["DUPLICATE_IN_REQUEST"]]
    assert [v["vin"] for v in answer["vehicles"]] == [VIN_ACME, factories.make_vin("LGX", 2), VIN_ACME]


def test_precheck_refuses_every_vehicle_with_exporter_blocked_when_exporter_is_on_negative_list(
    check: Check, session: Session, acme: Manufacturer, exporter: Caller
) -> None:
    organisations.block_exporter(
        session=session, manufacturer_code="ACME", exporter_code="EXP1", reason="forged papers"
    )

    answer = check([vehicle(), vehicle(factories.make_vin("LGX", 2), registration_date="2025-06-01")])

    assert reasons(answer) == [["EXPORTER_BLOCKED"], ["NOT_REQUIRED_AFTER_180_DAYS", "EXPORTER_BLOCKED"]]
    assert [v["verdict"] for v in answer["vehicles"]] == ["refused", "refused"]


def test_precheck_answers_eligible_when_another_exporter_is_blocked(
    check: Check, session: Session, acme: Manufacturer
) -> None:
    organisations.block_exporter(
        session=session, manufacturer_code="ACME", exporter_code=factories.exporter(session).code, reason="dishonest"
    )

    assert only(check([vehicle()]))["verdict"] == "eligible"


def test_precheck_answers_eligible_when_the_block_was_lifted(
    check: Check, session: Session, acme: Manufacturer, exporter: Caller
) -> None:
    organisations.block_exporter(session=session, manufacturer_code="ACME", exporter_code="EXP1", reason="dishonest")
    organisations.unblock_exporter(session=session, manufacturer_code="ACME", exporter_code="EXP1", reason="settled")

    assert only(check([vehicle()]))["verdict"] == "eligible"


@pytest.mark.parametrize("kind", ["sales_company", "modified_vehicle_manufacturer"])
def test_precheck_refuses_every_vehicle_with_issuer_not_allowed_when_manufacturer_may_not_issue(
    check: Check, session: Session, exporter: Caller, kind: str
) -> None:
    seller = factories.manufacturer(session, "SELLER", wmis=("LGX",), kind=kind)
    factories.outlet(session, seller, country="KZ")

    answer = check([vehicle(), vehicle(factories.make_vin("LGX", 2), destination="EU")], manufacturer="SELLER")

    assert reasons(answer) == [["ISSUER_NOT_ALLOWED"], ["DESTINATION_INVALID", "ISSUER_NOT_ALLOWED"]]
    assert {v["verdict"] for v in answer["vehicles"]} == {"refused"}


def test_precheck_lists_every_reason_when_several_apply(check: Check, session: Session, acme: Manufacturer) -> None:
    factories.register(session, acme, [factories.make_vin("LGX", 9)])
    wrong_check_digit = VIN_OTHER[:8] + "0" + VIN_OTHER[9:]

    answer = check(
        [
            vehicle(wrong_check_digit, registration_date="2026-09-20", destination="EU"),
            vehicle(wrong_check_digit, registration_date="2026-09-20", destination="EU"),
        ]
    )

    expected = [
        "VIN_CHECK_DIGIT",
        "VIN_NOT_MANUFACTURER",
        "VIN_NOT_IN_REGISTRY",
        "REGISTRATION_DATE_INVALID",
        "DESTINATION_INVALID",
        "DUPLICATE_IN_REQUEST",
    ]
    assert reasons(answer) == [expected, expected]
    assert [e["code"] for e in answer["vehicles"][0]["explanations"]] == expected


def test_precheck_answers_refused_when_a_refusing_and_a_not_requiring_code_apply(
    check: Check, acme: Manufacturer
) -> None:
    verdict = only(check([vehicle(registration_date="2025-01-10", destination="EU")], application_date="2025-12-01"))

    assert verdict["reasons"] == ["DESTINATION_INVALID", "NOT_REQUIRED_BEFORE_2026", "NOT_REQUIRED_AFTER_180_DAYS"]
    assert verdict["verdict"] == "refused"


def test_precheck_answers_not_required_when_several_not_requiring_codes_apply(check: Check, acme: Manufacturer) -> None:
    verdict = only(
        check(
            [vehicle(registration_date="2025-01-10", export_transfer_date="2025-02-01")],
            application_date="2025-12-01",
        )
    )

    assert verdict["reasons"] == [
        "NOT_REQUIRED_BEFORE_2026",
        "EXEMPT_TRANSFERRED_BEFORE_2026",
        "NOT_REQUIRED_AFTER_180_DAYS",
    ]
    assert verdict["verdict"] == "not_required"


def test_precheck_keeps_submitted_order_when_verdicts_differ(check: Check, acme: Manufacturer) -> None:
    vins = [factories.make_vin("LGX", n) for n in range(1, 6)]
    vehicles = [vehicle(vin) for vin in vins]
    vehicles[1]["destination"] = "EU"
    vehicles[3]["registration_date"] = "2025-01-01"

    answer = check(vehicles)

    assert [v["vin"] for v in answer["vehicles"]] == vins
    assert [v["verdict"] for v in answer["vehicles"]] == [
        "eligible",
        "refused",
        "eligible",
        "not_required",
        "eligible",
    ]


# -- without a manufacturer: split by WMI ----------------------------------------------------


@pytest.fixture
def three_makers(session: Session, acme: Manufacturer) -> tuple[Manufacturer, Manufacturer, Manufacturer]:
    other = factories.manufacturer(session, "OTHER", wmis=("LRW",))
    factories.outlet(session, other, country="KZ")
    small = factories.manufacturer(session, "SMALL", wmis=("LA9/123",))
    factories.outlet(session, small, country="KZ")
    return acme, other, small


def test_precheck_splits_vehicles_by_manufacturer_when_no_manufacturer_is_named(
    client: FlaskClient, exporter: Caller, three_makers: tuple[Manufacturer, ...]
) -> None:
    unknown_wmi = factories.make_vin("LFV", 1)
    other_plant = factories.make_vin("LA9", 1, plant="456")
    vehicles = [
        vehicle(VIN_SMALL),
        vehicle(VIN_OTHER.lower()),
        vehicle("not-a-vin"),
        vehicle(VIN_ACME, destination="EU"),
        vehicle(unknown_wmi),
        vehicle(factories.make_vin("LGX", 2)),
        vehicle(other_plant),
    ]

    response = client.post("/api/v1/precheck", json=request_body(vehicles), headers=exporter.headers)

    assert response.status_code == 200
    answer = response.get_json()
    assert set(answer) == {"groups", "unassigned", "warnings"}
    groups = {g["manufacturer"]: g for g in answer["groups"]}
    assert list(groups) == ["ACME", "OTHER", "SMALL"]
    assert groups["ACME"]["indexes"] == [3, 5]
    assert [v["vin"] for v in groups["ACME"]["vehicles"]] == [VIN_ACME, factories.make_vin("LGX", 2)]
    assert [v["reasons"] for v in groups["ACME"]["vehicles"]] == [["DESTINATION_INVALID"], []]
    assert groups["OTHER"]["indexes"] == [1]
    assert [v["vin"] for v in groups["OTHER"]["vehicles"]] == [VIN_OTHER]
    assert groups["OTHER"]["vehicles"][0]["verdict"] == "eligible"
    assert groups["SMALL"]["indexes"] == [0]
    assert groups["SMALL"]["vehicles"][0]["verdict"] == "eligible"
    assert groups["SMALL"]["manufacturer_name"] == three_makers[2].name
    unassigned = [(u["index"], u["vin"], u["verdict"], u["reasons"]) for u in answer["unassigned"]]
    assert unassigned == [
        (2, "NOT-A-VIN", "refused", ["VIN_FORMAT"]),
        (4, unknown_wmi, "refused", ["VIN_NOT_MANUFACTURER"]),
        (6, other_plant, "refused", ["VIN_NOT_MANUFACTURER"]),
    ]
    assert [w["code"] for w in answer["warnings"]] == ["MULTIPLE_MANUFACTURERS"]
    assert answer["warnings"][0]["details"] == {"manufacturers": ["ACME", "OTHER", "SMALL"]}


def test_precheck_gives_one_group_and_no_warning_when_all_vehicles_are_one_makers(
    client: FlaskClient, exporter: Caller, three_makers: tuple[Manufacturer, ...]
) -> None:
    body = request_body([vehicle(), vehicle(factories.make_vin("LGX", 2))], manufacturer=None)
    body["manufacturer"] = None

    answer = client.post("/api/v1/precheck", json=body, headers=exporter.headers).get_json()

    assert [g["manufacturer"] for g in answer["groups"]] == ["ACME"]
    assert answer["unassigned"] == []
    assert answer["warnings"] == []


def test_precheck_warns_about_several_countries_when_a_split_list_goes_to_two_countries(
    client: FlaskClient, session: Session, exporter: Caller, three_makers: tuple[Manufacturer, ...]
) -> None:
    vehicles = [vehicle(), vehicle(VIN_OTHER, destination="uz"), vehicle("bad", destination="MN")]

    answer = client.post("/api/v1/precheck", json=request_body(vehicles), headers=exporter.headers).get_json()

    assert [w["code"] for w in answer["warnings"]] == ["MULTIPLE_MANUFACTURERS", "MULTIPLE_DESTINATIONS"]
    assert answer["warnings"][1]["details"] == {"countries": ["KZ", "UZ"]}
    assert [g["warnings"] for g in answer["groups"]] == [[], []]


def test_precheck_applies_each_makers_rules_when_splitting(
    client: FlaskClient, session: Session, exporter: Caller, three_makers: tuple[Manufacturer, ...]
) -> None:
    organisations.block_exporter(session=session, manufacturer_code="OTHER", exporter_code="EXP1", reason="dishonest")
    factories.register(session, three_makers[0], [factories.make_vin("LGX", 2)])

    answer = client.post(
        "/api/v1/precheck", json=request_body([vehicle(), vehicle(VIN_OTHER)]), headers=exporter.headers
    ).get_json()

    groups = {g["manufacturer"]: g for g in answer["groups"]}
    assert groups["ACME"]["vehicles"][0]["reasons"] == ["VIN_NOT_IN_REGISTRY"]
    assert groups["OTHER"]["vehicles"][0]["reasons"] == ["EXPORTER_BLOCKED"]


def test_precheck_puts_every_vehicle_in_unassigned_when_no_manufacturer_is_hosted(
    client: FlaskClient, exporter: Caller
) -> None:
    answer = client.post("/api/v1/precheck", json=request_body([vehicle()]), headers=exporter.headers).get_json()

    assert answer["groups"] == []
    assert [(u["vin"], u["reasons"]) for u in answer["unassigned"]] == [(VIN_ACME, ["VIN_NOT_MANUFACTURER"])]


@pytest.mark.parametrize("manufacturer", ["ACME", None])
def test_precheck_stores_nothing_when_it_answers(
    client: FlaskClient,
    session: Session,
    exporter: Caller,
    three_makers: tuple[Manufacturer, ...],
    manufacturer: str | None,
) -> None:
    before = [count(session, model) for model in (LetterRequest, RequestVehicle, Outlet)]

    response = client.post(
        "/api/v1/precheck",
        json=request_body([vehicle(), vehicle(VIN_OTHER), vehicle("bad")], manufacturer=manufacturer),
        headers=exporter.headers,
    )

    assert response.status_code == 200
    assert [count(session, model) for model in (LetterRequest, RequestVehicle, Outlet)] == before


def test_precheck_answers_for_a_manufacturer_code_when_sent_in_lower_case(
    client: FlaskClient, exporter: Caller, acme: Manufacturer
) -> None:
    response = client.post(
        "/api/v1/precheck", json=request_body([vehicle()], manufacturer="acme"), headers=exporter.headers
    )

    assert response.status_code == 200
    assert response.get_json()["manufacturer"] == "ACME"


def test_precheck_refuses_with_422_naming_the_code_when_manufacturer_is_unknown(
    client: FlaskClient, exporter: Caller, acme: Manufacturer
) -> None:
    response = client.post(
        "/api/v1/precheck", json=request_body([vehicle()], manufacturer="NOPE"), headers=exporter.headers
    )

    error = assert_error(response, 422, "VALIDATION_FAILED")
    assert "NOPE" in error["message"]
    assert [d["field"] for d in error["details"]] == ["manufacturer"]


def test_precheck_refuses_with_403_when_caller_is_manufacturer_staff(
    client: FlaskClient, session: Session, acme: Manufacturer
) -> None:
    staff = caller(session, "manufacturer_admin", manufacturer=acme)

    response = client.post(
        "/api/v1/precheck", json=request_body([vehicle()], manufacturer="ACME"), headers=staff.headers
    )

    assert response.status_code == 403
