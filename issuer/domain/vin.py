"""Vehicle identification numbers (ISO 3779, GB 16735) and world manufacturer identifiers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from operator import getitem
from typing import TypeVar

VIN_LENGTH = 17
VIN_ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
CHECK_DIGIT_INDEX = 8  # position 9, counted from 1

# Explicit ASCII ranges rather than \w or str.isalnum(): Cyrillic 'А' or full-width 'Ａ'
# look like VIN characters on paper but are not, and must be refused.
_VIN_FORMAT = re.compile(r"[0-9A-HJ-NPR-Z]{17}")

_TRANSLITERATION: dict[str, int] = {str(digit): digit for digit in range(10)} | {
    "A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 6, "G": 7, "H": 8,
    "J": 1, "K": 2, "L": 3, "M": 4, "N": 5, "P": 7, "R": 9,
    "S": 2, "T": 3, "U": 4, "V": 5, "W": 6, "X": 7, "Y": 8, "Z": 9,
}  # fmt: skip
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_CHECK_CHARACTERS = "0123456789X"

# One table per position holding value x weight for every allowed character, so the check
# digit is a single pass of dict look-ups: the registry import validates a million VINs.
# A character outside the alphabet is simply missing from the tables (KeyError).
_WEIGHTED_TERMS: tuple[dict[str, int], ...] = tuple(
    {char: value * weight for char, value in _TRANSLITERATION.items()} for weight in _WEIGHTS
)

# Upper-cases ASCII letters only. str.upper() would turn some non-ASCII letters into ASCII
# ones (U+017F 'ſ' becomes 'S'), quietly accepting a look-alike.
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")

_ALPHABET_TEXT = "0-9 and A-Z without I, O, Q"


def _ascii_upper(text: str) -> str:
    return text.upper() if text.isascii() else text.translate(_ASCII_UPPER)


def normalise_vin(raw: str) -> str:
    """Strip surrounding whitespace and upper-case; nothing else (inner spaces stay and fail)."""
    return _ascii_upper(raw.strip())


def is_well_formed(vin: str) -> bool:
    """Tell whether `vin` is exactly 17 characters of 0-9 and A-Z without I, O, Q."""
    return _VIN_FORMAT.fullmatch(vin) is not None


def _weighted_sum(vin: str) -> int:
    # map() stops at the shorter input, so callers check the length first.
    return sum(map(getitem, _WEIGHTED_TERMS, vin))


def expected_check_digit(vin: str) -> str:
    """Return the check character ('0'-'9' or 'X') that position 9 of a well-formed VIN must hold.

    Raises ValueError when `vin` is not well formed.
    """
    if not is_well_formed(vin):
        raise ValueError(f"not a well-formed VIN: {vin!r}")
    return _CHECK_CHARACTERS[_weighted_sum(vin) % 11]


def has_valid_check_digit(vin: str) -> bool:
    """Tell whether position 9 of `vin` is its correct check character; False for a malformed VIN."""
    if len(vin) != VIN_LENGTH:
        return False
    try:
        total = _weighted_sum(vin)
    except KeyError:
        return False
    return vin[CHECK_DIGIT_INDEX] == _CHECK_CHARACTERS[total % 11]


def with_check_digit(vin_without: str) -> str:
    """Return `vin_without` with position 9 replaced by the correct check character.

    Position 9 of the input may hold anything; the other 16 characters must be valid.
    Used to make valid VINs for tests, demo data and benchmarks.
    """
    if len(vin_without) != VIN_LENGTH:
        raise ValueError(f"a VIN has {VIN_LENGTH} characters, not {len(vin_without)}: {vin_without!r}")
    placeholder = vin_without[:CHECK_DIGIT_INDEX] + "0" + vin_without[CHECK_DIGIT_INDEX + 1 :]
    check = expected_check_digit(placeholder)
    return placeholder[:CHECK_DIGIT_INDEX] + check + placeholder[CHECK_DIGIT_INDEX + 1 :]


_ALPHABET_SET = frozenset(VIN_ALPHABET)


def _in_alphabet(text: str, length: int) -> bool:
    return len(text) == length and _ALPHABET_SET.issuperset(text)


def _wmi_problem(code: str, plant_code: str, *, plant_given: bool) -> str | None:
    if not _in_alphabet(code, 3):
        return f"WMI {code!r} must be 3 characters of {_ALPHABET_TEXT}"
    small_maker = code[2] == "9"
    if small_maker and not plant_code:
        return f"WMI {code} is a small-maker WMI (third character 9): give positions 12-14 too, e.g. {code}/123"
    if plant_given and not small_maker:
        return (
            f"WMI {code} is not a small-maker WMI (third character is not 9): "
            f"give it without positions 12-14 (remove '/{plant_code}')"
        )
    if small_maker and not _in_alphabet(plant_code, 3):
        return f"positions 12-14 of small-maker WMI {code} must be 3 characters of {_ALPHABET_TEXT}, not {plant_code!r}"
    return None


@dataclass(frozen=True, slots=True)
class Wmi:
    """A world manufacturer identifier a manufacturer holds.

    A maker of fewer than 1,000 vehicles a year gets a WMI whose third character is 9 and
    shares it with other small makers; positions 12-14 of the VIN then tell them apart,
    so for those `plant_code` holds positions 12-14 and is empty otherwise.
    """

    code: str
    plant_code: str = ""

    def __post_init__(self) -> None:
        # Enforced here, not only in parse_wmi: a small-maker WMI without its plant code
        # would claim every other small maker's vehicles.
        problem = _wmi_problem(self.code, self.plant_code, plant_given=bool(self.plant_code))
        if problem is not None:
            raise ValueError(problem)

    def matches(self, vin: str) -> bool:
        """Tell whether `vin` carries this WMI (and, for a small maker, its positions 12-14)."""
        if vin[:3] != self.code:
            return False
        return not self.plant_code or vin[11:14] == self.plant_code

    def __str__(self) -> str:
        return f"{self.code}/{self.plant_code}" if self.plant_code else self.code


def parse_wmi(text: str) -> Wmi:
    """Read a WMI written as "LGX" or, for a small maker, "LA9/123" (any case, surrounding spaces).

    Raises ValueError with a message naming the problem.
    """
    code, slash, plant_code = _ascii_upper(text.strip()).partition("/")
    code, plant_code = code.strip(), plant_code.strip()
    problem = _wmi_problem(code, plant_code, plant_given=bool(slash))
    if problem is not None:
        raise ValueError(problem)
    return Wmi(code, plant_code)


T = TypeVar("T")


def _wmi_key(vin: str) -> Wmi | None:
    # The one Wmi that could own this VIN: small-maker WMIs are keyed with positions 12-14.
    try:
        if vin[2:3] == "9":
            return Wmi(vin[:3], vin[11:14])
        return Wmi(vin[:3])
    except ValueError:
        return None


def find_owner(vin: str, wmis: Mapping[Wmi, T]) -> T | None:
    """Return the value stored under the Wmi that matches `vin`, or None when none does."""
    key = _wmi_key(vin)
    if key is None:
        return None
    return wmis.get(key)
