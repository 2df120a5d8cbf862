"""Unified social credit codes (GB 32100-2015)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from issuer.domain.uscc import (
    USCC_ALPHABET,
    is_valid_uscc,
    normalise_uscc,
    uscc_problem,
    with_uscc_check,
)

PROPERTY = settings(max_examples=200, database=None, deadline=None)

KNOWN_VALID = ("91310000MA1FL0XW94", "91330100MA2HX7YQ47")

first17s = st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17)


def test_alphabet_leaves_out_i_o_z_s_v_when_listing_31_characters() -> None:
    assert len(USCC_ALPHABET) == 31
    assert not set("IOZSV") & set(USCC_ALPHABET)


@pytest.mark.parametrize("code", KNOWN_VALID)
def test_is_valid_uscc_accepts_when_code_is_a_known_registered_code(code: str) -> None:
    assert uscc_problem(code) is None
    assert is_valid_uscc(code)
    assert with_uscc_check(code[:17]) == code


@pytest.mark.parametrize(("raw", "expected"), [(" 91310000ma1fl0xw94\u3000", "91310000MA1FL0XW94")])
def test_normalise_uscc_strips_and_upper_cases_when_padded_or_lower_case(raw: str, expected: str) -> None:
    assert normalise_uscc(raw) == expected


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("91310000MA1FL0XW9", "must be 18 characters, not 17"),
        ("91310000MA1FL0XW944", "must be 18 characters, not 19"),
        ("", "must be 18 characters, not 0"),
        ("9131I000MA1FL0XW94", "character 'I' at position 5 is not allowed"),
        ("91310000MA1FL0XW9O", "character 'O' at position 18 is not allowed"),
        ("91310000MS1FL0XW94", "character 'S' at position 10 is not allowed"),
        ("91310000ma1fl0xw94", "character 'm' at position 9 is not allowed"),
        ("9131000\uff10MA1FL0XW94", "character '\uff10' at position 8 is not allowed"),
        ("91310000MA1FL0XW95", "check character should be '4', not '5'"),
        ("91330100MA2HX7YQ4X", "check character should be '7', not 'X'"),
    ],
)
def test_uscc_problem_names_the_problem_when_code_is_invalid(code: str, problem: str) -> None:
    assert uscc_problem(code) == problem
    assert not is_valid_uscc(code)


@pytest.mark.parametrize("first17", ["91310000MA1FL0XW", "91310000MA1FL0XWI", "91310000MA1FL0XW94"])
def test_with_uscc_check_raises_when_first17_is_invalid(first17: str) -> None:
    with pytest.raises(ValueError, match="17 characters"):
        with_uscc_check(first17)


@PROPERTY
@given(first17s)
def test_with_uscc_check_gives_a_valid_code_when_first17_is_in_the_alphabet(first17: str) -> None:
    code = with_uscc_check(first17)
    assert code[:17] == first17
    assert is_valid_uscc(code)


@PROPERTY
@given(first17s, st.sampled_from(USCC_ALPHABET))
def test_is_valid_uscc_rejects_when_the_check_character_is_changed(first17: str, other: str) -> None:
    code = with_uscc_check(first17)
    assert is_valid_uscc(first17 + other) == (other == code[17])


@PROPERTY
@given(first17s, st.integers(min_value=0, max_value=16), st.sampled_from(USCC_ALPHABET))
def test_is_valid_uscc_rejects_when_one_other_character_is_changed(first17: str, index: int, other: str) -> None:
    # Every weight is below 31 and 31 is prime, so any single substitution moves the sum.
    code = with_uscc_check(first17)
    changed = code[:index] + other + code[index + 1 :]
    assert is_valid_uscc(changed) == (other == code[index])
