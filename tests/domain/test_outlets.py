"""Overseas after-sales outlets: which country, brands and days each one covers."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from issuer.domain.outlets import OutletCoverage, countries_served, normalise_brand, parse_brands

ALMATY = OutletCoverage(
    code="KZ-ALA-01",
    country="KZ",
    brands=frozenset({"byd", "denza"}),
    valid_from=date(2026, 1, 1),
    valid_to=date(2026, 12, 31),
)
ALL_BRANDS_OPEN_ENDED = OutletCoverage(
    code="RU-MOW-01", country="RU", brands=frozenset(), valid_from=date(2026, 3, 1), valid_to=None
)
ON = date(2026, 6, 1)


@pytest.mark.parametrize("brand", ["BYD", " byd ", "Byd", "\tbYd\n", "\uff22\uff39\uff24"])
def test_normalise_brand_gives_one_form_when_case_padding_or_width_differ(brand: str) -> None:
    assert normalise_brand(brand) == "byd"


def test_normalise_brand_collapses_inner_whitespace_when_brand_has_several_words() -> None:
    assert normalise_brand("  Great   Wall\u3000Motor ") == "great wall motor"
    assert normalise_brand("比亚迪") == "比亚迪"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BYD;Denza", {"byd", "denza"}),
        (" BYD ; denza ;", {"byd", "denza"}),
        ("BYD；腾势", {"byd", "腾势"}),
        ("BYD;byd; Byd ", {"byd"}),
        ("Great  Wall;", {"great wall"}),
        ("", set()),
        (" ; ；", set()),
    ],
)
def test_parse_brands_splits_and_normalises_when_separated_by_semicolons(text: str, expected: set[str]) -> None:
    assert parse_brands(text) == frozenset(expected)


@pytest.mark.parametrize("country", ["KZ", "kz"])
def test_serves_is_true_when_country_brand_and_date_are_covered(country: str) -> None:
    assert ALMATY.serves(country=country, brand="BYD", on=ON)


def test_serves_is_false_when_country_differs() -> None:
    assert not ALMATY.serves(country="UZ", brand="BYD", on=ON)


@pytest.mark.parametrize("brand", ["byd", " Denza ", "DENZA"])
def test_serves_matches_the_brand_when_case_or_padding_differ(brand: str) -> None:
    assert ALMATY.serves(country="KZ", brand=brand, on=ON)


def test_serves_is_false_when_brand_is_not_listed() -> None:
    assert not ALMATY.serves(country="KZ", brand="Chery", on=ON)


@pytest.mark.parametrize("brand", ["BYD", "Chery", "any brand at all"])
def test_serves_covers_every_brand_when_brands_are_empty(brand: str) -> None:
    assert ALL_BRANDS_OPEN_ENDED.serves(country="RU", brand=brand, on=ON)


@pytest.mark.parametrize(
    ("on", "served"),
    [
        (date(2025, 12, 31), False),
        (date(2026, 1, 1), True),
        (date(2026, 12, 31), True),
        (date(2027, 1, 1), False),
    ],
)
def test_serves_includes_both_ends_when_date_is_on_the_edge_of_the_validity(on: date, served: bool) -> None:
    assert ALMATY.serves(country="KZ", brand="BYD", on=on) is served


def test_serves_has_no_end_when_valid_to_is_none() -> None:
    assert not ALL_BRANDS_OPEN_ENDED.serves(country="RU", brand="BYD", on=date(2026, 2, 28))
    assert ALL_BRANDS_OPEN_ENDED.serves(country="RU", brand="BYD", on=date(2099, 12, 31))


def test_serves_is_false_when_outlet_is_inactive() -> None:
    inactive = dataclasses.replace(ALMATY, active=False)
    assert not inactive.serves(country="KZ", brand="BYD", on=ON)


def test_countries_served_lists_the_countries_when_some_outlet_serves_the_brand() -> None:
    uzbek = dataclasses.replace(ALMATY, code="UZ-TAS-01", country="uz", brands=frozenset({"chery"}))
    closed = dataclasses.replace(ALMATY, code="KG-FRU-01", country="KG", active=False)
    outlets = [ALMATY, ALL_BRANDS_OPEN_ENDED, uzbek, closed]
    assert countries_served(outlets, brand="byd", on=ON) == {"KZ", "RU"}
    assert countries_served(outlets, brand="Chery", on=ON) == {"RU", "UZ"}
    assert countries_served(outlets, brand="BYD", on=date(2026, 2, 1)) == {"KZ"}
    assert countries_served([], brand="BYD", on=ON) == set()
