"""Dates in import files are YYYY-MM-DD and nothing else."""
from __future__ import annotations

import pytest

from issuer.services.registry import parse_iso_date


@pytest.mark.parametrize("text", ["20250101", "2025-W01-1", "2025-001", "2025-1-1", "2025-02-30", " 2025-01-01", ""])
def test_parse_iso_date_refuses_and_names_the_field_when_the_form_is_not_yyyy_mm_dd(text):
    with pytest.raises(ValueError, match=r"production_date .* is not a date in the form YYYY-MM-DD"):
        parse_iso_date(text, what="production_date")


def test_parse_iso_date_reads_a_proper_date():
    assert parse_iso_date("2025-12-31", what="d").isoformat() == "2025-12-31"
