"""The one clock. Every "now" in the engine comes from :func:`now`: aware UTC, patchable by freezegun."""
from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["now", "aware", "to_utc"]


def now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def aware(value: datetime) -> datetime:
    """Reject naive datetimes at the boundary; return ``value`` in UTC."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"naive datetime {value!r}: give a timezone (e.g. +03:30 or Z)")
    return value.astimezone(timezone.utc)


def to_utc(value: datetime | str | None) -> datetime | None:
    """Read a stored datetime back as aware UTC (SQLite returns naive values, which are UTC by contract).

    A string is SQLite's own text form, as a driver-level query returns it.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
