"""The one clock. Every "now" in the engine comes from :func:`now`: aware UTC, patchable by freezegun,
and set by hand for ``followup simulate`` (:class:`SimulatedClock`)."""
from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["now", "aware", "to_utc", "SimulatedClock"]

#: the simulated time while a :class:`SimulatedClock` runs (the whole process sees it, every thread)
_simulated: list[datetime] = []


def now() -> datetime:
    """The current time as an aware UTC datetime (the simulated one inside a :class:`SimulatedClock`)."""
    if _simulated:
        return _simulated[-1]
    return datetime.now(timezone.utc)


class SimulatedClock:
    """``with SimulatedClock(start) as clock: ... clock.move_to(later)``: :func:`now` answers the simulated time."""

    def __init__(self, start: datetime):
        self.at = aware(start)

    def move_to(self, at: datetime) -> None:
        self.at = _simulated[-1] = aware(at)

    def __enter__(self) -> "SimulatedClock":
        _simulated.append(self.at)
        return self

    def __exit__(self, *exc: object) -> None:
        _simulated.pop()


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
