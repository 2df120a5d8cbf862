"""Unified social credit codes 统一社会信用代码 (GB 32100-2015) of manufacturers and exporters."""

from __future__ import annotations

from operator import getitem

USCC_LENGTH = 18
# GB 32100 leaves out I, O, Z, S and V so a code cannot be misread as 1, 0, 2, 5 or U.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_VALUE = {char: value for value, char in enumerate(USCC_ALPHABET)}
_WEIGHTED_TERMS: tuple[dict[str, int], ...] = tuple(
    {char: value * weight for char, value in _VALUE.items()} for weight in _WEIGHTS
)
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def normalise_uscc(raw: str) -> str:
    """Strip surrounding whitespace and upper-case (ASCII letters only, so look-alikes stay wrong)."""
    stripped = raw.strip()
    return stripped.upper() if stripped.isascii() else stripped.translate(_ASCII_UPPER)


def _check_character(first17: str) -> str:
    total = sum(map(getitem, _WEIGHTED_TERMS, first17))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_problem(code: str) -> str | None:
    """Return None when `code` is a valid unified social credit code, else what is wrong with it.

    Checks the length, the alphabet and the check character (position 18). GB 32100 also
    restricts position 1 (registration authority) and position 2 (entity category) to a few
    values each, and positions 3-8 to an administrative division code; those are not
    enforced here, because the lists change and a wrong refusal would block a real company.
    Callers normalise first (see normalise_uscc): lower-case letters are reported as not allowed.
    """
    if len(code) != USCC_LENGTH:
        return f"must be {USCC_LENGTH} characters, not {len(code)}"
    for position, char in enumerate(code, start=1):
        if char not in _VALUE:
            return f"character {char!r} at position {position} is not allowed"
    expected = _check_character(code[:17])
    if code[17] != expected:
        return f"check character should be {expected!r}, not {code[17]!r}"
    return None


def is_valid_uscc(code: str) -> bool:
    """Tell whether `code` is a valid unified social credit code (see uscc_problem)."""
    return uscc_problem(code) is None


def with_uscc_check(first17: str) -> str:
    """Append the check character to the first 17 characters of a code (tests and demo data)."""
    if len(first17) != USCC_LENGTH - 1 or not all(char in _VALUE for char in first17):
        raise ValueError(f"need 17 characters of {USCC_ALPHABET}, got {first17!r}")
    return first17 + _check_character(first17)
