"""When a marketing touch may go out: the send window and the frequency cap, in the contact's timezone.

This is the one place that knows about allowed hours and days; the dispatcher, ``preview`` and
``simulate`` all ask :func:`next_allowed`, and :func:`closed_reason` says why a moment was not allowed.
A window may also skip official holidays and mourning days (:mod:`engine.offdays`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from .offdays import NO_OVERRIDES, Holiday, HolidayOverrides, off_day

__all__ = ["SendWindow", "FrequencyCap", "next_allowed", "closed_reason", "holidays_between", "describe_holidays",
           "local_day_bounds", "WEEKDAYS"]

#: weekday names as written in settings → Python's weekday() numbers (Monday is 0)
WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


@dataclass(frozen=True)
class SendWindow:
    """Allowed local minutes ``[start, end)`` on the allowed weekdays, less the holidays it skips.

    ``skip_holidays`` is a country code (IR) whose official holidays are skipped; ``skip_mourning`` skips
    mourning days on their own; ``overrides`` are the dates ``config/holidays.yaml`` adds or removes.
    """

    start: int = 9 * 60
    end: int = 21 * 60
    days: frozenset[int] = frozenset(range(7))
    skip_holidays: str | None = None
    skip_mourning: bool = False
    overrides: HolidayOverrides = field(default=NO_OVERRIDES, compare=False, repr=False)

    def holiday(self, day: date) -> Holiday | None:
        """The holiday this window skips on ``day``, if any."""
        return off_day(day, self.skip_holidays, self.skip_mourning, self.overrides)

    def describe(self) -> str:
        def hhmm(m: int) -> str:
            return f"{m // 60:02d}:{m % 60:02d}"

        names = [n for n, i in WEEKDAYS.items() if i in self.days]
        days = "every day" if len(self.days) == 7 else ",".join(names)
        skips = ([f"{self.skip_holidays} holidays"] if self.skip_holidays else []) + \
            (["mourning days"] if self.skip_mourning else [])
        return f"{hhmm(self.start)}–{hhmm(self.end)} {days}" + (f" except {' and '.join(skips)}" if skips else "")

    def contains(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        return local.weekday() in self.days and self.start <= minute < self.end and self.holiday(local.date()) is None


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
    for offset in range(0, 60):  # a week of weekdays, and Nowruz with the holidays around it
        candidate_day = day + timedelta(days=offset)
        if offset == 0 and skip_today:
            continue
        if candidate_day.weekday() not in window.days or window.holiday(candidate_day) is not None:
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


def holidays_between(at: datetime, allowed: datetime, tz: ZoneInfo, window: SendWindow) -> list[Holiday]:
    """The holidays ``window`` skips on the local days from ``at``'s up to (not including) ``allowed``'s."""
    first, last = at.astimezone(tz).date(), allowed.astimezone(tz).date()
    return [h for h in (window.holiday(first + timedelta(days=i)) for i in range((last - first).days)) if h]


def describe_holidays(skipped: list[Holiday], window: SendWindow) -> str:
    """``holiday: جشن نوروز (2027-03-21); عیدنوروز (2027-03-22)``."""
    names = "; ".join(f"{h.name} ({h.day.isoformat()})" for h in skipped)
    return f"{'mourning day' if not window.skip_holidays else 'holiday'}: {names}"


def closed_reason(at: datetime, allowed: datetime, tz: ZoneInfo, window: SendWindow) -> str:
    """Why nothing goes out from ``at`` until ``allowed``: the holidays skipped on the way (named), or the
    window's hours and weekdays."""
    skipped = holidays_between(at, allowed, tz, window)
    outside = f"outside the send window {window.describe()} ({tz.key})"
    if not skipped:
        return outside
    why = describe_holidays(skipped, window)
    return why if skipped[0].day == at.astimezone(tz).date() else f"{outside}, then {why}"
