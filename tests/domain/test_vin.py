"""VIN syntax, check digit and WMI ownership (ISO 3779, GB 16735)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from issuer.domain.vin import (
    VIN_ALPHABET,
    VIN_LENGTH,
    Wmi,
    expected_check_digit,
    find_owner,
    has_valid_check_digit,
    is_well_formed,
    normalise_vin,
    parse_wmi,
    with_check_digit,
)

PROPERTY = settings(max_examples=200, database=None, deadline=None)

DOMAIN_TEST_VINS = ("LGXC74C43S0123456", "LRWYGCEK7RC654321", "LA9AB1C23TA123123")

# Written out again here, independently of the module, as the reference the property tests
# compare against: the table from ISO 3779 Annex / GB 16735 appendix.
REFERENCE_VALUES = {
    **{digit: int(digit) for digit in "0123456789"},
    "A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 6, "G": 7, "H": 8,
    "J": 1, "K": 2, "L": 3, "M": 4, "N": 5, "P": 7, "R": 9,
    "S": 2, "T": 3, "U": 4, "V": 5, "W": 6, "X": 7, "Y": 8, "Z": 9,
}  # fmt: skip
REFERENCE_WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]


def reference_check_digit(vin: str) -> str:
    total = 0
    for position in range(17):
        total += REFERENCE_VALUES[vin[position]] * REFERENCE_WEIGHTS[position]
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


vin_bodies = st.text(alphabet=VIN_ALPHABET, min_size=VIN_LENGTH, max_size=VIN_LENGTH)
valid_vins = vin_bodies.map(with_check_digit)


def replace_at(text: str, index: int, char: str) -> str:
    return text[:index] + char + text[index + 1 :]


@pytest.mark.parametrize("vin", DOMAIN_TEST_VINS)
def test_check_digit_is_valid_when_vin_is_a_domain_test_vin(vin: str) -> None:
    assert is_well_formed(vin)
    assert has_valid_check_digit(vin)
    assert expected_check_digit(vin) == vin[8]


@pytest.mark.parametrize(
    "raw",
    [
        "lgxc74c43s0123456",
        "  LGXC74C43S0123456\t",
        "\u3000LGXC74C43S0123456\u00a0",  # full-width space and NBSP, as pasted from documents
        "\nLgXc74c43s0123456 \r\n",
    ],
)
def test_normalise_vin_gives_upper_case_when_lower_case_or_padded(raw: str) -> None:
    assert normalise_vin(raw) == "LGXC74C43S0123456"


def test_normalise_vin_keeps_inner_spaces_when_present() -> None:
    assert normalise_vin(" LGXC74C43 S0123456 ") == "LGXC74C43 S0123456"
    assert not is_well_formed(normalise_vin("LGXC74C43 S0123456"))


def test_normalise_vin_does_not_make_ascii_when_a_non_ascii_letter_upper_cases_to_ascii() -> None:
    # U+017F LATIN SMALL LETTER LONG S upper-cases to 'S' with str.upper().
    normalised = normalise_vin("lgxc74c43\u017f0123456")
    assert normalised == "LGXC74C43\u017f0123456"
    assert not is_well_formed(normalised)


@pytest.mark.parametrize("letter", ["I", "O", "Q"])
def test_is_well_formed_rejects_when_vin_contains_i_o_or_q(letter: str) -> None:
    vin = replace_at("LGXC74C43S0123456", 12, letter)
    assert not is_well_formed(vin)
    assert not has_valid_check_digit(vin)


@pytest.mark.parametrize(
    "vin",
    [
        "LGXC74C43S012345",  # 16
        "LGXC74C43S01234567",  # 18
        "",
        "lgxc74c43s0123456",  # callers normalise first
        "LGXC74C43S012345\n",
        "LGX-74C43S0123456",
    ],
)
def test_is_well_formed_rejects_when_length_or_characters_are_wrong(vin: str) -> None:
    assert not is_well_formed(vin)


@pytest.mark.parametrize(
    "look_alike",
    [
        "\u0410",  # CYRILLIC CAPITAL LETTER A
        "\u0421",  # CYRILLIC CAPITAL LETTER ES, looks like C
        "\u0391",  # GREEK CAPITAL LETTER ALPHA
        "\uff21",  # FULLWIDTH LATIN CAPITAL LETTER A
        "\uff11",  # FULLWIDTH DIGIT ONE
        "\u0661",  # ARABIC-INDIC DIGIT ONE, a digit to str.isdigit()
    ],
)
def test_is_well_formed_rejects_when_vin_contains_a_non_ascii_look_alike(look_alike: str) -> None:
    vin = replace_at("LGXC74C43S0123456", 3, look_alike)
    assert len(vin) == VIN_LENGTH
    assert not is_well_formed(vin)
    assert not is_well_formed(normalise_vin(vin))
    assert not has_valid_check_digit(vin)


def test_has_valid_check_digit_is_false_when_position_9_is_wrong() -> None:
    assert not has_valid_check_digit("LGXC74C44S0123456")


def test_expected_check_digit_raises_when_vin_is_malformed() -> None:
    with pytest.raises(ValueError, match="not a well-formed VIN"):
        expected_check_digit("LGXC74C43S012345")


def test_expected_check_digit_is_x_when_remainder_is_ten() -> None:
    vin = "LGXC74C4XS0123454"
    assert reference_check_digit(vin) == "X"
    assert expected_check_digit(vin) == "X"
    assert has_valid_check_digit(vin)


def test_with_check_digit_replaces_position_9_when_it_holds_a_placeholder() -> None:
    assert with_check_digit("LGXC74C4?S0123456") == "LGXC74C43S0123456"
    assert with_check_digit("LA9AB1C2_TA123123") == "LA9AB1C23TA123123"


@pytest.mark.parametrize("body", ["LGXC74C4?S012345", "LGXC74C4?S01234I6", "lgxc74c4?s0123456"])
def test_with_check_digit_raises_when_other_characters_are_invalid(body: str) -> None:
    with pytest.raises(ValueError, match="VIN"):
        with_check_digit(body)


@PROPERTY
@given(valid_vins)
def test_with_check_digit_always_gives_a_valid_vin_when_body_is_in_the_alphabet(vin: str) -> None:
    assert is_well_formed(vin)
    assert has_valid_check_digit(vin)


@PROPERTY
@given(vin_bodies)
def test_expected_check_digit_equals_the_reference_computation_when_vin_is_well_formed(vin: str) -> None:
    assert expected_check_digit(vin) == reference_check_digit(vin)
    assert has_valid_check_digit(vin) == (vin[8] == reference_check_digit(vin))


@PROPERTY
@given(valid_vins, st.sampled_from("0123456789X"))
def test_has_valid_check_digit_is_false_when_position_9_changes(vin: str, other: str) -> None:
    changed = replace_at(vin, 8, other)
    assert has_valid_check_digit(changed) == (other == vin[8])


@PROPERTY
@given(valid_vins, st.sampled_from([index for index in range(17) if index != 8]), st.sampled_from(VIN_ALPHABET))
def test_has_valid_check_digit_follows_the_transliteration_when_one_other_character_changes(
    vin: str, index: int, other: str
) -> None:
    # Every weight except position 9's lies in 1..10 and 11 is prime, so a change of the
    # transliterated value always moves the sum mod 11; a same-value swap (A/J/1) never does.
    changed = replace_at(vin, index, other)
    same_value = REFERENCE_VALUES[other] == REFERENCE_VALUES[vin[index]]
    assert has_valid_check_digit(changed) == same_value


@PROPERTY
@given(valid_vins, st.sampled_from(VIN_ALPHABET))
def test_expected_check_digit_ignores_position_9_when_it_changes(vin: str, other: str) -> None:
    assert expected_check_digit(replace_at(vin, 8, other)) == vin[8]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("LGX", Wmi("LGX")),
        (" lgx ", Wmi("LGX")),
        ("LA9/123", Wmi("LA9", "123")),
        ("la9/123", Wmi("LA9", "123")),
        (" LA9 / 123 ", Wmi("LA9", "123")),
    ],
)
def test_parse_wmi_reads_the_wmi_when_written_in_any_case_and_padded(text: str, expected: Wmi) -> None:
    assert parse_wmi(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("LG", "must be 3 characters"),
        ("LGXC", "must be 3 characters"),
        ("", "must be 3 characters"),
        ("LIX", "must be 3 characters"),
        ("\u0410GX", "must be 3 characters"),
        (
            "LA9",
            r"WMI LA9 is a small-maker WMI \(third character 9\): give positions 12-14 too, e.g. LA9/123",
        ),
        ("LA9/", "give positions 12-14 too"),
        ("LGX/123", "LGX is not a small-maker WMI"),
        ("LGX/", "LGX is not a small-maker WMI"),
        ("LA9/12", "positions 12-14 of small-maker WMI LA9 must be 3 characters"),
        ("LA9/1O3", "positions 12-14 of small-maker WMI LA9 must be 3 characters"),
        ("LA9/123/4", "positions 12-14 of small-maker WMI LA9 must be 3 characters"),
    ],
)
def test_parse_wmi_raises_a_message_naming_the_problem_when_text_is_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_wmi(text)


def test_wmi_refuses_construction_when_a_small_maker_has_no_plant_code() -> None:
    with pytest.raises(ValueError, match="small-maker"):
        Wmi("LA9")


@pytest.mark.parametrize(("wmi", "text"), [(Wmi("LGX"), "LGX"), (Wmi("LA9", "123"), "LA9/123")])
def test_str_gives_the_written_form_when_wmi_is_plain_or_small_maker(wmi: Wmi, text: str) -> None:
    assert str(wmi) == text
    assert parse_wmi(str(wmi)) == wmi


def test_matches_checks_positions_12_to_14_when_wmi_is_a_small_maker() -> None:
    wmi = parse_wmi("LA9/123")
    assert wmi.matches("LA9AB1C23TA123123")
    assert not wmi.matches("LA9AB1C23TA124123")
    assert not wmi.matches("LB9AB1C23TA123123")


def test_matches_checks_only_positions_1_to_3_when_wmi_is_plain() -> None:
    wmi = Wmi("LGX")
    assert wmi.matches("LGXC74C43S0123456")
    assert wmi.matches("LGXC74C43S0999456")
    assert not wmi.matches("LRWYGCEK7RC654321")


def test_find_owner_returns_the_value_of_the_matching_wmi_when_one_matches() -> None:
    owners = {Wmi("LGX"): "byd", Wmi("LA9", "123"): "small-a", Wmi("LA9", "124"): "small-b"}
    assert find_owner("LGXC74C43S0123456", owners) == "byd"
    assert find_owner("LA9AB1C23TA123123", owners) == "small-a"
    assert find_owner("LA9AB1C23TA124123", owners) == "small-b"


@pytest.mark.parametrize("vin", ["LRWYGCEK7RC654321", "LA9AB1C23TA125123", "", "LA", "LA9", "\u0410GXC74C43S0123456"])
def test_find_owner_returns_none_when_no_wmi_matches(vin: str) -> None:
    owners = {Wmi("LGX"): "byd", Wmi("LA9", "123"): "small-a"}
    assert find_owner(vin, owners) is None


@PROPERTY
@given(valid_vins)
def test_find_owner_agrees_with_matches_when_vin_is_valid(vin: str) -> None:
    wmis = [Wmi("LGX"), Wmi("LA9", "123"), Wmi(vin[:3], vin[11:14]) if vin[2] == "9" else Wmi(vin[:3])]
    owners = {wmi: str(wmi) for wmi in wmis}
    owner = find_owner(vin, owners)
    assert owner is not None
    assert parse_wmi(owner).matches(vin)
