"""Eligibility: the 180-day window, exemptions, and every reason code of the contract."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import date, timedelta

import pytest

from issuer.domain.eligibility import (
    NOT_REQUIRING,
    REASON_TEXT,
    REFUSING,
    RULE_IN_FORCE_FROM,
    WINDOW_DAYS,
    Assessment,
    AssessmentContext,
    IssuerProfile,
    ManufacturerWmis,
    ReasonCode,
    RegistryEntry,
    VehicleAssessment,
    VehicleDeclaration,
    Verdict,
    assess,
    letter_not_needed_from,
    split_by_manufacturer,
    verdict_for,
    window_case,
)
from issuer.domain.outlets import OutletCoverage
from issuer.domain.vin import Wmi, with_check_digit

R = ReasonCode

TODAY = date(2026, 7, 1)
APPLICATION_DATE = date(2026, 7, 4)
REGISTRATION_DATE = date(2026, 1, 5)  # 180 days before APPLICATION_DATE: a letter is required
PRODUCTION_DATE = date(2025, 11, 20)


def make_vin(serial: int, wmi: str = "LGX", plant: str = "") -> str:
    """A valid VIN with the given WMI (and positions 12-14 for a small maker)."""
    if plant:
        return with_check_digit(f"{wmi}AB1C2?TA{plant}{serial % 1000:03d}")
    return with_check_digit(f"{wmi}C74C4?S0{serial:06d}")


VIN = make_vin(123456)
assert VIN == "LGXC74C43S0123456"

ISSUER = IssuerProfile(code="BYD", wmis=(Wmi("LGX"),), may_issue=True, keeps_registry=True)
KZ_OUTLET = OutletCoverage(
    code="KZ-01", country="KZ", brands=frozenset({"byd", "denza"}), valid_from=date(2025, 1, 1), valid_to=None
)
RU_OUTLET = OutletCoverage(code="RU-01", country="RU", brands=frozenset(), valid_from=date(2025, 1, 1), valid_to=None)


def registry_entry(brand: str = "BYD", model: str = "Song PLUS") -> RegistryEntry:
    return RegistryEntry(brand=brand, model=model, production_date=PRODUCTION_DATE)


def declare(vin: str = VIN, **changes: object) -> VehicleDeclaration:
    declaration = VehicleDeclaration(
        vin=vin,
        brand="BYD",
        model="Song PLUS",
        registration_date=REGISTRATION_DATE,
        destination="KZ",
    )
    return dataclasses.replace(declaration, **changes)  # type: ignore[arg-type]


def make_context(*vins: str, **changes: object) -> AssessmentContext:
    """A context where the declared VINs are in the registry and KZ/RU have outlets."""
    context = AssessmentContext(
        issuer=ISSUER,
        today=TODAY,
        application_date=APPLICATION_DATE,
        registry={vin: registry_entry() for vin in (vins or (VIN,))},
        outlets=(KZ_OUTLET, RU_OUTLET),
    )
    return dataclasses.replace(context, **changes)  # type: ignore[arg-type]


def assess_one(declaration: VehicleDeclaration, context: AssessmentContext | None = None) -> VehicleAssessment:
    result = assess([declaration], context or make_context())
    assert len(result.vehicles) == 1
    return result.vehicles[0]


# ---------------------------------------------------------------- codes and verdicts


def test_reason_codes_are_named_as_their_values_when_listed() -> None:
    assert all(code.name == code.value for code in ReasonCode)
    assert len(ReasonCode) == 17


def test_refusing_and_not_requiring_split_every_code_when_combined() -> None:
    every_code = set(ReasonCode)
    assert every_code == REFUSING | NOT_REQUIRING
    assert not REFUSING & NOT_REQUIRING
    window_codes = {
        R.NOT_REQUIRED_BEFORE_2026,
        R.EXEMPT_TRANSFERRED_BEFORE_2026,
        R.NOT_REQUIRED_AFTER_180_DAYS,
    }
    assert window_codes == NOT_REQUIRING


def test_reason_text_explains_every_code_when_asked_in_chinese_and_english() -> None:
    assert set(REASON_TEXT) == set(ReasonCode)
    for chinese, english in REASON_TEXT.values():
        assert chinese.strip()
        assert not chinese.isascii()
        assert english.strip()
        assert english.isascii()


def test_verdict_is_values_of_the_contract_when_serialised() -> None:
    assert [verdict.value for verdict in Verdict] == ["eligible", "not_required", "refused"]


@pytest.mark.parametrize(
    ("reasons", "verdict"),
    [
        ([], Verdict.ELIGIBLE),
        ([R.NOT_REQUIRED_AFTER_180_DAYS], Verdict.NOT_REQUIRED),
        ([R.NOT_REQUIRED_BEFORE_2026, R.EXEMPT_TRANSFERRED_BEFORE_2026], Verdict.NOT_REQUIRED),
        ([R.VIN_CHECK_DIGIT], Verdict.REFUSED),
        ([R.NOT_REQUIRED_AFTER_180_DAYS, R.ALREADY_COVERED], Verdict.REFUSED),
        ([R.EXEMPT_TRANSFERRED_BEFORE_2026, R.EXPORTER_BLOCKED], Verdict.REFUSED),
    ],
)
def test_verdict_for_gives_refused_before_not_required_before_eligible_when_reasons_mix(
    reasons: list[ReasonCode], verdict: Verdict
) -> None:
    assert verdict_for(reasons) == verdict
    assert verdict_for(iter(reasons)) == verdict


# ---------------------------------------------------------------- the 180-day window


def test_rule_constants_match_the_notice_when_read() -> None:
    notice = (date(2026, 1, 1), 180)  # 商贸函〔2025〕648号
    assert notice == (RULE_IN_FORCE_FROM, WINDOW_DAYS)


def test_letter_not_needed_from_is_day_181_when_registered_on_the_domain_example() -> None:
    assert letter_not_needed_from(date(2026, 1, 5)) == date(2026, 7, 5)
    assert letter_not_needed_from(date(2026, 1, 5)) - date(2026, 1, 5) == timedelta(days=181)


@pytest.mark.parametrize(
    ("application_date", "expected"),
    [
        (date(2026, 1, 5), ()),  # day 0
        (date(2026, 1, 6), ()),  # day 1
        (date(2026, 7, 4), ()),  # day 180: still required
        (date(2026, 7, 5), (R.NOT_REQUIRED_AFTER_180_DAYS,)),  # day 181
        (date(2027, 1, 5), (R.NOT_REQUIRED_AFTER_180_DAYS,)),
    ],
)
def test_window_case_requires_a_letter_up_to_day_180_when_registered_2026_01_05(
    application_date: date, expected: tuple[ReasonCode, ...]
) -> None:
    assert (
        window_case(registration_date=date(2026, 1, 5), application_date=application_date, export_transfer_date=None)
        == expected
    )


@pytest.mark.parametrize(
    ("application_date", "expected"),
    [(date(2025, 12, 31), (R.NOT_REQUIRED_BEFORE_2026,)), (date(2026, 1, 1), ())],
)
def test_window_case_needs_no_letter_when_application_is_before_2026(
    application_date: date, expected: tuple[ReasonCode, ...]
) -> None:
    assert (
        window_case(registration_date=date(2025, 12, 1), application_date=application_date, export_transfer_date=None)
        == expected
    )


@pytest.mark.parametrize(
    ("export_transfer_date", "expected"),
    [
        (date(2025, 12, 31), (R.EXEMPT_TRANSFERRED_BEFORE_2026,)),
        (date(2026, 1, 1), ()),
        (None, ()),
    ],
)
def test_window_case_exempts_when_export_transfer_is_before_2026_even_with_a_2026_application(
    export_transfer_date: date | None, expected: tuple[ReasonCode, ...]
) -> None:
    assert (
        window_case(
            registration_date=date(2025, 11, 1),
            application_date=date(2026, 3, 1),
            export_transfer_date=export_transfer_date,
        )
        == expected
    )


def test_window_case_lists_every_not_required_code_when_several_apply() -> None:
    assert window_case(
        registration_date=date(2024, 1, 1),
        application_date=date(2025, 12, 31),
        export_transfer_date=date(2025, 12, 1),
    ) == (R.NOT_REQUIRED_BEFORE_2026, R.EXEMPT_TRANSFERRED_BEFORE_2026, R.NOT_REQUIRED_AFTER_180_DAYS)


# ---------------------------------------------------------------- assess: the window in context


def test_assess_finds_the_vehicle_eligible_when_everything_is_in_order() -> None:
    vehicle = assess_one(declare(vin=" lgxc74c43s0123456 "))
    assert vehicle == VehicleAssessment(
        vin=VIN,
        verdict=Verdict.ELIGIBLE,
        reasons=(),
        letter_required=True,
        letter_not_needed_from=date(2026, 7, 5),
        destination=vehicle.destination,
    )
    assert vehicle.destination is not None
    assert vehicle.destination.alpha2 == "KZ"


@pytest.mark.parametrize(
    ("application_date", "verdict", "required"),
    [
        (date(2026, 1, 5), Verdict.ELIGIBLE, True),  # day 0
        (date(2026, 7, 4), Verdict.ELIGIBLE, True),  # day 180
        (date(2026, 7, 5), Verdict.NOT_REQUIRED, False),  # day 181
    ],
)
def test_assess_follows_the_180_day_boundary_when_application_date_moves(
    application_date: date, verdict: Verdict, required: bool
) -> None:
    context = make_context(today=date(2026, 7, 10), application_date=application_date)
    vehicle = assess_one(declare(), context)
    assert vehicle.verdict == verdict
    assert vehicle.letter_required is required
    assert vehicle.letter_not_needed_from == (date(2026, 7, 5) if required else None)


def test_assess_refuses_when_days_are_negative() -> None:
    context = make_context(today=date(2026, 3, 1), application_date=date(2026, 2, 1))
    vehicle = assess_one(declare(registration_date=date(2026, 2, 2)), context)
    assert vehicle.reasons == (R.REGISTRATION_DATE_INVALID,)
    assert vehicle.verdict == Verdict.REFUSED
    assert not vehicle.letter_required
    assert vehicle.letter_not_needed_from is None


@pytest.mark.parametrize(
    ("application_date", "reasons"),
    [(date(2025, 12, 31), (R.NOT_REQUIRED_BEFORE_2026,)), (date(2026, 1, 1), ())],
)
def test_assess_needs_no_letter_when_application_is_before_2026(
    application_date: date, reasons: tuple[ReasonCode, ...]
) -> None:
    context = make_context(today=date(2025, 12, 20), application_date=application_date)
    vehicle = assess_one(declare(registration_date=date(2025, 12, 1)), context)
    assert vehicle.reasons == reasons


@pytest.mark.parametrize(
    ("export_transfer_date", "reasons"),
    [(date(2025, 12, 31), (R.EXEMPT_TRANSFERRED_BEFORE_2026,)), (date(2026, 1, 1), ())],
)
def test_assess_exempts_when_transfer_was_before_2026_and_application_is_in_2026(
    export_transfer_date: date, reasons: tuple[ReasonCode, ...]
) -> None:
    declaration = declare(registration_date=date(2025, 12, 1), export_transfer_date=export_transfer_date)
    context = make_context(today=date(2026, 3, 1), application_date=date(2026, 3, 1))
    vehicle = assess_one(declaration, context)
    assert vehicle.reasons == reasons
    assert vehicle.letter_required is (not reasons)


def test_assess_still_says_not_required_before_2026_when_registration_date_is_invalid() -> None:
    context = make_context(today=date(2025, 12, 1), application_date=date(2025, 12, 15))
    vehicle = assess_one(declare(registration_date=date(2025, 12, 10)), context)  # after today
    assert vehicle.reasons == (R.REGISTRATION_DATE_INVALID, R.NOT_REQUIRED_BEFORE_2026)
    assert vehicle.verdict == Verdict.REFUSED


def test_assess_gives_no_window_code_when_registration_date_is_invalid_in_2026() -> None:
    declaration = declare(registration_date=date(2025, 1, 1), export_transfer_date=date(2025, 6, 1))
    entry = RegistryEntry(brand="BYD", model="Song PLUS", production_date=date(2025, 3, 1))
    vehicle = assess_one(declaration, make_context(registry={VIN: entry}))
    assert vehicle.reasons == (R.REGISTRATION_DATE_INVALID,)
    assert not vehicle.letter_required


def test_assess_gives_no_exemption_when_the_transfer_date_is_itself_invalid() -> None:
    declaration = declare(registration_date=date(2025, 12, 1), export_transfer_date=date(2025, 11, 30))
    context = make_context(application_date=date(2026, 3, 1))
    vehicle = assess_one(declaration, context)
    assert vehicle.reasons == (R.EXPORT_TRANSFER_DATE_INVALID,)
    assert not vehicle.letter_required
    assert vehicle.letter_not_needed_from is None


# ---------------------------------------------------------------- assess: each refusing code


def test_assess_refuses_with_vin_format_only_when_vin_is_malformed() -> None:
    vehicle = assess_one(declare(vin="LGXC74C43S012345I"))
    assert vehicle.reasons == (R.VIN_FORMAT,)  # no check digit, WMI or registry verdicts on a malformed VIN
    assert vehicle.vin == "LGXC74C43S012345I"


@pytest.mark.parametrize("vin", ["LGXC74C43S012345", "LGX\u0421\u0437\u0434C43S0123456", "LGXC74C43 S0123456", ""])
def test_assess_refuses_with_vin_format_when_length_or_characters_are_wrong(vin: str) -> None:
    assert R.VIN_FORMAT in assess_one(declare(vin=vin)).reasons


def test_assess_reports_check_digit_and_still_checks_wmi_and_registry_when_position_9_is_wrong() -> None:
    wrong = "LRWYGCEK8RC654321"
    vehicle = assess_one(declare(vin=wrong))
    assert vehicle.reasons == (R.VIN_CHECK_DIGIT, R.VIN_NOT_MANUFACTURER, R.VIN_NOT_IN_REGISTRY)


def test_assess_refuses_when_the_wmi_is_not_the_issuers() -> None:
    other = make_vin(1, wmi="LRW")
    vehicle = assess_one(declare(vin=other), make_context(other))
    assert vehicle.reasons == (R.VIN_NOT_MANUFACTURER,)


def test_assess_accepts_a_small_makers_vin_only_when_positions_12_to_14_match() -> None:
    issuer = IssuerProfile(code="SMALL", wmis=(Wmi("LA9", "123"),), may_issue=True, keeps_registry=False)
    context = make_context(issuer=issuer, registry={})
    assert assess_one(declare(vin="LA9AB1C23TA123123"), context).reasons == ()
    other_plant = with_check_digit("LA9AB1C2?TA124123")
    assert assess_one(declare(vin=other_plant), context).reasons == (R.VIN_NOT_MANUFACTURER,)


def test_assess_refuses_when_the_issuer_keeps_a_registry_without_the_vin() -> None:
    vehicle = assess_one(declare(), make_context(registry={}))
    assert vehicle.reasons == (R.VIN_NOT_IN_REGISTRY,)


def test_assess_skips_the_registry_when_the_issuer_keeps_none() -> None:
    issuer = dataclasses.replace(ISSUER, keeps_registry=False)
    vehicle = assess_one(declare(brand="Denza", model="Other"), make_context(issuer=issuer, registry={}))
    assert vehicle.reasons == ()


def test_assess_refuses_when_brand_or_model_differ_from_the_registry() -> None:
    assert assess_one(declare(brand="Denza")).reasons == (R.BRAND_MISMATCH,)
    assert assess_one(declare(model="Han")).reasons == (R.MODEL_MISMATCH,)
    assert assess_one(declare(brand="Denza", model="Han")).reasons == (R.BRAND_MISMATCH, R.MODEL_MISMATCH)


def test_assess_matches_brand_and_model_when_case_and_spacing_differ() -> None:
    assert assess_one(declare(brand=" byd ", model="song  plus")).reasons == ()


@pytest.mark.parametrize(
    "registration_date",
    [
        TODAY + timedelta(days=1),  # in the future
        PRODUCTION_DATE - timedelta(days=1),  # before the vehicle was produced
    ],
)
def test_assess_refuses_when_registration_is_in_the_future_or_before_production(
    registration_date: date,
) -> None:
    context = make_context(application_date=date(2026, 7, 10))
    vehicle = assess_one(declare(registration_date=registration_date), context)
    assert R.REGISTRATION_DATE_INVALID in vehicle.reasons


def test_assess_refuses_when_registration_is_after_the_application_date() -> None:
    context = make_context(application_date=date(2026, 3, 1))
    vehicle = assess_one(declare(registration_date=date(2026, 3, 2)), context)
    assert vehicle.reasons == (R.REGISTRATION_DATE_INVALID,)


@pytest.mark.parametrize("registration_date", [PRODUCTION_DATE, TODAY])
def test_assess_accepts_the_registration_date_when_it_is_on_the_production_date_or_today(
    registration_date: date,
) -> None:
    vehicle = assess_one(declare(registration_date=registration_date))
    assert R.REGISTRATION_DATE_INVALID not in vehicle.reasons


def test_assess_ignores_the_production_date_when_the_registry_does_not_know_it() -> None:
    entry = RegistryEntry(brand="BYD", model="Song PLUS", production_date=None)
    vehicle = assess_one(declare(registration_date=date(2026, 1, 5)), make_context(registry={VIN: entry}))
    assert vehicle.reasons == ()


@pytest.mark.parametrize(
    "export_transfer_date",
    [TODAY + timedelta(days=1), REGISTRATION_DATE - timedelta(days=1)],
)
def test_assess_refuses_when_export_transfer_is_in_the_future_or_before_registration(
    export_transfer_date: date,
) -> None:
    vehicle = assess_one(declare(export_transfer_date=export_transfer_date))
    assert vehicle.reasons == (R.EXPORT_TRANSFER_DATE_INVALID,)


@pytest.mark.parametrize("export_transfer_date", [REGISTRATION_DATE, TODAY])
def test_assess_accepts_the_export_transfer_date_when_on_registration_day_or_today(
    export_transfer_date: date,
) -> None:
    assert assess_one(declare(export_transfer_date=export_transfer_date)).reasons == ()


@pytest.mark.parametrize("destination", ["EU", "UK", "XK", "CN", "", "KAZ", "Kazakhstan"])
def test_assess_refuses_when_destination_is_not_a_country_code(destination: str) -> None:
    vehicle = assess_one(declare(destination=destination))
    assert vehicle.reasons == (R.DESTINATION_INVALID,)
    assert vehicle.destination is None


@pytest.mark.parametrize("destination", ["kz", " KZ ", "ru"])
def test_assess_accepts_the_destination_when_given_in_any_case(destination: str) -> None:
    assert assess_one(declare(destination=destination)).reasons == ()


@pytest.mark.parametrize(
    ("outlets", "brand"),
    [
        ((), "BYD"),
        ((KZ_OUTLET,), "Chery"),  # in the country but for other brands
        ((dataclasses.replace(KZ_OUTLET, active=False),), "BYD"),
        ((dataclasses.replace(KZ_OUTLET, valid_to=TODAY - timedelta(days=1)),), "BYD"),
        ((dataclasses.replace(KZ_OUTLET, valid_from=TODAY + timedelta(days=1)),), "BYD"),
        ((dataclasses.replace(KZ_OUTLET, country="UZ"),), "BYD"),
    ],
)
def test_assess_refuses_when_no_outlet_serves_the_brand_in_the_destination_today(
    outlets: tuple[OutletCoverage, ...], brand: str
) -> None:
    issuer = dataclasses.replace(ISSUER, keeps_registry=False)
    vehicle = assess_one(declare(brand=brand), make_context(issuer=issuer, outlets=outlets))
    assert vehicle.reasons == (R.NO_OUTLET_IN_DESTINATION,)


def test_assess_counts_outlets_on_today_when_the_application_date_differs() -> None:
    # Valid on the application date but closed today, the day of issue: it does not count.
    closing = dataclasses.replace(KZ_OUTLET, valid_to=TODAY - timedelta(days=1))
    opening = dataclasses.replace(KZ_OUTLET, valid_from=TODAY, valid_to=TODAY)
    assert assess_one(declare(), make_context(outlets=(closing,))).reasons == (R.NO_OUTLET_IN_DESTINATION,)
    assert assess_one(declare(), make_context(outlets=(closing, opening))).reasons == ()


def test_assess_refuses_when_a_valid_letter_already_covers_the_vin() -> None:
    vehicle = assess_one(declare(vin=VIN.lower()), make_context(covered_vins=frozenset({VIN})))
    assert vehicle.reasons == (R.ALREADY_COVERED,)


def test_assess_marks_every_occurrence_when_a_vin_appears_twice() -> None:
    other = make_vin(2)
    declarations = [declare(), declare(vin=other), declare(vin=f" {VIN.lower()} "), declare(vin=VIN)]
    result = assess(declarations, make_context(VIN, other))
    assert [vehicle.reasons for vehicle in result.vehicles] == [
        (R.DUPLICATE_IN_REQUEST,),
        (),
        (R.DUPLICATE_IN_REQUEST,),
        (R.DUPLICATE_IN_REQUEST,),
    ]


def test_assess_does_not_mark_duplicates_when_the_repeated_vin_is_malformed() -> None:
    malformed = "LGXC74C43S01234"
    result = assess([declare(vin=malformed), declare(vin=malformed)], make_context())
    assert [vehicle.reasons for vehicle in result.vehicles] == [(R.VIN_FORMAT,), (R.VIN_FORMAT,)]


def test_assess_refuses_every_vehicle_when_the_exporter_is_blocked() -> None:
    other = make_vin(2)
    result = assess([declare(), declare(vin=other)], make_context(VIN, other, exporter_blocked=True))
    assert [vehicle.reasons for vehicle in result.vehicles] == [(R.EXPORTER_BLOCKED,)] * 2


def test_assess_refuses_every_vehicle_when_the_issuer_may_not_issue() -> None:
    other = make_vin(2)
    issuer = dataclasses.replace(ISSUER, may_issue=False)
    result = assess([declare(), declare(vin=other)], make_context(VIN, other, issuer=issuer))
    assert [vehicle.reasons for vehicle in result.vehicles] == [(R.ISSUER_NOT_ALLOWED,)] * 2
    assert {vehicle.verdict for vehicle in result.vehicles} == {Verdict.REFUSED}


def test_assess_lists_every_code_in_enum_order_when_many_apply() -> None:
    wrong_check = "LRWYGCEK8RC654321"
    declaration = declare(
        vin=wrong_check,
        registration_date=date(2025, 1, 1),
        export_transfer_date=date(2024, 1, 1),
        destination="EU",
    )
    context = make_context(
        application_date=date(2025, 12, 31),
        covered_vins=frozenset({wrong_check}),
        exporter_blocked=True,
        issuer=dataclasses.replace(ISSUER, may_issue=False),
    )
    result = assess([declaration, declaration], context)
    assert result.vehicles[0].reasons == (
        R.VIN_CHECK_DIGIT,
        R.VIN_NOT_MANUFACTURER,
        R.VIN_NOT_IN_REGISTRY,
        R.EXPORT_TRANSFER_DATE_INVALID,
        R.DESTINATION_INVALID,
        R.ALREADY_COVERED,
        R.DUPLICATE_IN_REQUEST,
        R.NOT_REQUIRED_BEFORE_2026,
        R.NOT_REQUIRED_AFTER_180_DAYS,
        R.EXPORTER_BLOCKED,
        R.ISSUER_NOT_ALLOWED,
    )
    assert result.vehicles[0].verdict == Verdict.REFUSED


def test_assess_gives_not_required_when_only_not_required_codes_apply() -> None:
    declaration = declare(registration_date=date(2025, 12, 1), export_transfer_date=date(2025, 12, 20))
    vehicle = assess_one(declaration)
    assert vehicle.reasons == (R.EXEMPT_TRANSFERRED_BEFORE_2026, R.NOT_REQUIRED_AFTER_180_DAYS)
    assert vehicle.verdict == Verdict.NOT_REQUIRED
    assert not vehicle.letter_required
    assert vehicle.letter_not_needed_from is None


# One scenario per code, so a new code without a way to produce it fails the test below.
SCENARIOS: dict[ReasonCode, Callable[[], Assessment]] = {
    R.VIN_FORMAT: lambda: assess([declare(vin="LGXC74C43S01234O6")], make_context()),
    R.VIN_CHECK_DIGIT: lambda: assess([declare(vin="LGXC74C44S0123456")], make_context("LGXC74C44S0123456")),
    R.VIN_NOT_MANUFACTURER: lambda: assess([declare(vin=make_vin(1, "LRW"))], make_context(make_vin(1, "LRW"))),
    R.VIN_NOT_IN_REGISTRY: lambda: assess([declare()], make_context(registry={})),
    R.BRAND_MISMATCH: lambda: assess([declare(brand="Denza")], make_context()),
    R.MODEL_MISMATCH: lambda: assess([declare(model="Seal")], make_context()),
    R.REGISTRATION_DATE_INVALID: lambda: assess([declare(registration_date=TODAY + timedelta(1))], make_context()),
    R.EXPORT_TRANSFER_DATE_INVALID: lambda: assess(
        [declare(export_transfer_date=TODAY + timedelta(1))], make_context()
    ),
    R.DESTINATION_INVALID: lambda: assess([declare(destination="EU")], make_context()),
    R.NO_OUTLET_IN_DESTINATION: lambda: assess([declare(destination="UZ")], make_context()),
    R.ALREADY_COVERED: lambda: assess([declare()], make_context(covered_vins=frozenset({VIN}))),
    R.DUPLICATE_IN_REQUEST: lambda: assess([declare(), declare()], make_context()),
    R.NOT_REQUIRED_BEFORE_2026: lambda: assess(
        [declare(registration_date=date(2025, 12, 1))],
        make_context(today=date(2025, 12, 1), application_date=date(2025, 12, 1)),
    ),
    R.EXEMPT_TRANSFERRED_BEFORE_2026: lambda: assess(
        [declare(registration_date=date(2025, 12, 1), export_transfer_date=date(2025, 12, 2))],
        make_context(application_date=date(2026, 3, 1)),
    ),
    R.NOT_REQUIRED_AFTER_180_DAYS: lambda: assess(
        [declare()], make_context(application_date=letter_not_needed_from(REGISTRATION_DATE))
    ),
    R.EXPORTER_BLOCKED: lambda: assess([declare()], make_context(exporter_blocked=True)),
    R.ISSUER_NOT_ALLOWED: lambda: assess(
        [declare()], make_context(issuer=dataclasses.replace(ISSUER, may_issue=False))
    ),
}


def test_scenarios_cover_every_reason_code_when_listed() -> None:
    assert set(SCENARIOS) == set(ReasonCode)


@pytest.mark.parametrize("code", list(ReasonCode))
def test_assess_produces_the_code_alone_when_its_scenario_is_run(code: ReasonCode) -> None:
    result = SCENARIOS[code]()
    for vehicle in result.vehicles:
        assert vehicle.reasons == (code,)
        assert vehicle.verdict == (Verdict.NOT_REQUIRED if code in NOT_REQUIRING else Verdict.REFUSED)


# ---------------------------------------------------------------- warnings


def test_assess_warns_once_when_vehicles_go_to_several_countries() -> None:
    other, third = make_vin(2), make_vin(3)
    declarations = [
        declare(destination="ru"),
        declare(vin=other, destination="KZ"),
        declare(vin=third, destination="EU"),  # invalid destinations are not countries
    ]
    result = assess(declarations, make_context(VIN, other, third))
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert warning.code == "MULTIPLE_DESTINATIONS"
    assert warning.details == {"countries": ["KZ", "RU"]}
    assert "one license per country" in warning.message


def test_assess_counts_refused_vehicles_when_warning_about_destinations() -> None:
    other = make_vin(2)
    declarations = [declare(destination="KZ"), declare(vin=other, destination="UZ")]  # UZ: no outlet
    result = assess(declarations, make_context(VIN, other))
    assert [warning.details for warning in result.warnings] == [{"countries": ["KZ", "UZ"]}]


def test_assess_gives_no_warning_when_every_vehicle_goes_to_one_country() -> None:
    other = make_vin(2)
    result = assess([declare(destination="kz"), declare(vin=other, destination="KZ ")], make_context(VIN, other))
    assert result.warnings == ()


def test_assess_gives_nothing_when_no_vehicles_are_declared() -> None:
    assert assess([], make_context()) == Assessment(vehicles=(), warnings=())


# ---------------------------------------------------------------- scale


def test_assess_handles_ten_thousand_vehicles_when_the_request_is_large() -> None:
    vins = [make_vin(serial) for serial in range(10_000)]
    # Many outlets in the destination that do not cover the brand: the lookup must not rescan them.
    other_brands = [
        dataclasses.replace(KZ_OUTLET, code=f"KZ-{index}", brands=frozenset({f"brand {index}"})) for index in range(200)
    ]
    outlets = (*other_brands, KZ_OUTLET)
    context = make_context(*vins, outlets=outlets, covered_vins=frozenset(vins[::2]))
    declarations = [declare(vin=vin) for vin in vins]
    started = time.perf_counter()
    result = assess(declarations, context)
    elapsed = time.perf_counter() - started
    assert len(result.vehicles) == 10_000
    assert sum(vehicle.verdict == Verdict.ELIGIBLE for vehicle in result.vehicles) == 5_000
    # Generous bound, far above the measured ~0.1 s: it catches quadratic work, not slow CI.
    assert elapsed < 5


# ---------------------------------------------------------------- splitting by manufacturer


def test_split_by_manufacturer_groups_vins_when_several_manufacturers_are_hosted() -> None:
    manufacturers = [
        ManufacturerWmis(code="BYD", wmis=(Wmi("LGX"), Wmi("LC0"))),
        ManufacturerWmis(code="SAIC", wmis=(Wmi("LRW"),)),
        ManufacturerWmis(code="SMALL-A", wmis=(Wmi("LA9", "123"),)),
        ManufacturerWmis(code="SMALL-B", wmis=(Wmi("LA9", "124"),)),
        ManufacturerWmis(code="IDLE", wmis=(Wmi("LFV"),)),
    ]
    vins = [
        "LGXC74C43S0123456",
        " lrwygcek7rc654321 ",
        "LA9AB1C23TA123123",
        "LA9AB1C23TA124123",  # another small maker's plant, check digit not judged here
        "LGXC74C43S012345",  # malformed
        "LA9AB1C23TA125123",  # a small maker nobody hosts
        "WVWZZZ1KZAW000001",
        make_vin(7, "LC0"),
        "LGXC74C43S0123456",  # repeated: each occurrence is placed, assess marks duplicates
    ]
    groups, unassigned = split_by_manufacturer(vins, manufacturers)
    assert groups == {"BYD": [0, 7, 8], "SAIC": [1], "SMALL-A": [2], "SMALL-B": [3]}
    assert unassigned == [(4, R.VIN_FORMAT), (5, R.VIN_NOT_MANUFACTURER), (6, R.VIN_NOT_MANUFACTURER)]


def test_split_by_manufacturer_leaves_everything_unassigned_when_no_manufacturer_is_hosted() -> None:
    groups, unassigned = split_by_manufacturer(["LGXC74C43S0123456", "x"], [])
    assert groups == {}
    assert unassigned == [(0, R.VIN_NOT_MANUFACTURER), (1, R.VIN_FORMAT)]


def test_split_by_manufacturer_gives_the_vin_to_the_first_listed_when_a_wmi_is_held_twice() -> None:
    manufacturers = [ManufacturerWmis("FIRST", (Wmi("LGX"),)), ManufacturerWmis("SECOND", (Wmi("LGX"),))]
    groups, _ = split_by_manufacturer(["LGXC74C43S0123456"], manufacturers)
    assert groups == {"FIRST": [0]}
