"""The one place that reads the clock.

The rules speak of calendar dates in China Standard Time (UTC+8, no daylight saving), so
"today" is always China's today, whatever the server's time zone. Tests freeze time with
:func:`frozen`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

CHINA_TIME = dt.timezone(dt.timedelta(hours=8), "CST")

_frozen_at: dt.datetime | None = None


def now_utc() -> dt.datetime:
    """The current instant, timezone-aware, in UTC."""
    if _frozen_at is not None:
        return _frozen_at
    return dt.datetime.now(dt.UTC)


def today_in_china() -> dt.date:
    """Today's calendar date in China Standard Time."""
    return now_utc().astimezone(CHINA_TIME).date()


@contextmanager
def frozen(instant: dt.datetime | dt.date) -> Iterator[None]:
    """Freeze the clock at ``instant`` (a date means noon that day in China)."""
    global _frozen_at
    if not isinstance(instant, dt.datetime):
        instant = dt.datetime.combine(instant, dt.time(12, 0), CHINA_TIME)
    if instant.tzinfo is None:
        raise ValueError("freeze the clock with an aware datetime")
    previous, _frozen_at = _frozen_at, instant.astimezone(dt.UTC)
    try:
        yield
    finally:
        _frozen_at = previous
