"""Overseas after-sales service outlets: which destination, brands and dates each one covers."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date


def normalise_brand(brand: str) -> str:
    """Return the form brands are compared in: case-folded, inner whitespace collapsed, stripped.

    NFKC first, so a brand typed with a Chinese input method in full-width letters ("ＢＹＤ")
    compares equal to "BYD".
    """
    return " ".join(unicodedata.normalize("NFKC", brand).split()).casefold()


@dataclass(frozen=True, slots=True)
class OutletCoverage:
    """What an outlet covers: one country, some brands (empty = all) and a date range."""

    code: str
    country: str
    brands: frozenset[str]  # normalised; empty = all brands
    valid_from: date
    valid_to: date | None  # inclusive; None = open-ended
    active: bool = True

    def serves(self, *, country: str, brand: str, on: date) -> bool:
        """Tell whether this outlet serves vehicles of `brand` in `country` on day `on`."""
        if not self.active or self.country.upper() != country.upper():
            return False
        if on < self.valid_from or (self.valid_to is not None and on > self.valid_to):
            return False
        return not self.brands or normalise_brand(brand) in self.brands


def parse_brands(text: str) -> frozenset[str]:
    """Read a brand list separated by ';' (or the full-width '；'), normalised; empty = all brands."""
    parts = text.replace("；", ";").split(";")
    return frozenset(brand for brand in map(normalise_brand, parts) if brand)


def countries_served(outlets: Iterable[OutletCoverage], *, brand: str, on: date) -> set[str]:
    """Return the alpha-2 codes of the countries where some outlet serves `brand` on day `on`."""
    return {outlet.country.upper() for outlet in outlets if outlet.serves(country=outlet.country, brand=brand, on=on)}
