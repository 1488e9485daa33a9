"""When a marketing touch may go out: the send window and the frequency cap, in the contact's timezone.

This is the one place that knows about allowed hours; the dispatcher, ``preview`` and the
holiday calendar that comes later all ask :func:`next_allowed`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

__all__ = ["SendWindow", "FrequencyCap", "next_allowed", "local_day_bounds", "WEEKDAYS"]

#: weekday names as written in settings → Python's weekday() numbers (Monday is 0)
WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


@dataclass(frozen=True)
class SendWindow:
    """Allowed local minutes ``[start, end)`` on the allowed weekdays."""

    start: int = 9 * 60
    end: int = 21 * 60
    days: frozenset[int] = frozenset(range(7))

    def describe(self) -> str:
        def hhmm(m: int) -> str:
            return f"{m // 60:02d}:{m % 60:02d}"

        names = [n for n, i in WEEKDAYS.items() if i in self.days]
        days = "every day" if len(self.days) == 7 else ",".join(names)
        return f"{hhmm(self.start)}–{hhmm(self.end)} {days}"

    def contains(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        return local.weekday() in self.days and self.start <= minute < self.end


@dataclass(frozen=True)
class FrequencyCap:
    """At most ``per_day`` touches per contact per local day, across all sequences (None: no cap)."""

    per_day: int | None = None


def _local_at(day: date, minute: int, tz: ZoneInfo) -> datetime:
    base = datetime.combine(day, time(0), tzinfo=tz)
    # wall-clock arithmetic, then normalised through UTC so a DST gap lands on the first real minute
    naive = datetime.combine(day, time(0)) + timedelta(minutes=minute)
    local = naive.replace(tzinfo=tz)
    roundtrip = local.astimezone(timezone.utc).astimezone(tz)
    return roundtrip if roundtrip >= base else base


def local_day_bounds(at: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC start and end of the local calendar day that contains ``at``."""
    local = at.astimezone(tz)
    start = datetime.combine(local.date(), time(0), tzinfo=tz)
    end = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def next_allowed(at: datetime, tz: ZoneInfo, window: SendWindow, *, skip_today: bool = False) -> datetime:
    """The first moment at or after ``at`` inside ``window`` in ``tz`` (UTC out).

    ``skip_today`` asks for the first allowed moment on a later local day (used when the
    frequency cap for today is already reached).
    """
    local = at.astimezone(tz)
    if not skip_today and window.contains(local):
        return at.astimezone(timezone.utc)
    day = local.date()
    for offset in range(0, 15):
        candidate_day = day + timedelta(days=offset)
        if offset == 0 and skip_today:
            continue
        if candidate_day.weekday() not in window.days:
            continue
        start = _local_at(candidate_day, window.start, tz)
        end = _local_at(candidate_day, window.end, tz) if window.end < 1440 else \
            datetime.combine(candidate_day + timedelta(days=1), time(0), tzinfo=tz)
        if offset == 0:
            if local < start:
                return start.astimezone(timezone.utc)
            if local < end and window.contains(local):
                return at.astimezone(timezone.utc)
            continue
        return start.astimezone(timezone.utc)
    raise ValueError(f"send window {window.describe()} never opens")
