"""Which VINs a valid letter already covers (``ALREADY_COVERED``), in set-based queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from issuer.models import CoveredVin

LOOKUP_CHUNK = 900


def covered_vins(
    session: Session, vins: Iterable[str], *, today: dt.date, ignore_letter_id: int | None = None
) -> frozenset[str]:
    """The VINs among ``vins`` held by a letter that is valid on ``today``.

    Rows exist only for letters not revoked or superseded; an expired letter's rows linger until
    :func:`release_expired` runs, so expiry is checked here too. ``ignore_letter_id`` leaves out
    the letter a correction will supersede.
    """
    wanted = sorted(set(vins))
    found: set[str] = set()
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        query = select(CoveredVin.vin).where(
            CoveredVin.vin.in_(wanted[start : start + LOOKUP_CHUNK]),
            (CoveredVin.valid_until.is_(None)) | (CoveredVin.valid_until >= today),
        )
        if ignore_letter_id is not None:
            query = query.where(CoveredVin.letter_id != ignore_letter_id)
        found.update(session.scalars(query))
    return frozenset(found)


def release_expired(session: Session, vins: Iterable[str], *, today: dt.date) -> None:
    """Drop coverage rows of expired letters for these VINs (before new ones are claimed)."""
    wanted = sorted(set(vins))
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        session.execute(
            delete(CoveredVin).where(
                CoveredVin.vin.in_(wanted[start : start + LOOKUP_CHUNK]),
                CoveredVin.valid_until.is_not(None),
                CoveredVin.valid_until < today,
            )
        )
