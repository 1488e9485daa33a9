"""engine.window: the next moment inside a send window, in the contact's timezone."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from engine.window import SendWindow, local_day_bounds, next_allowed

TEHRAN = ZoneInfo("Asia/Tehran")
TORONTO = ZoneInfo("America/Toronto")
UTC = timezone.utc


WORKDAYS_IR = SendWindow(start=9 * 60, end=21 * 60, days=frozenset({5, 6, 0, 1, 2, 3}))  # sat..thu


def local(tz, *args):
    return datetime(*args, tzinfo=tz)


@pytest.mark.parametrize("at, expected", [
    (local(TEHRAN, 2026, 12, 7, 10, 0), local(TEHRAN, 2026, 12, 7, 10, 0)),  # inside: same moment
    (local(TEHRAN, 2026, 12, 7, 9, 0), local(TEHRAN, 2026, 12, 7, 9, 0)),  # start is inclusive
    (local(TEHRAN, 2026, 12, 7, 7, 15), local(TEHRAN, 2026, 12, 7, 9, 0)),  # before start: today's start
    (local(TEHRAN, 2026, 12, 7, 21, 0), local(TEHRAN, 2026, 12, 8, 9, 0)),  # end is exclusive
    (local(TEHRAN, 2026, 12, 7, 23, 30), local(TEHRAN, 2026, 12, 8, 9, 0)),  # after end: next day
    (local(TEHRAN, 2026, 12, 10, 22, 0), local(TEHRAN, 2026, 12, 12, 9, 0)),  # Thursday night → Saturday
    (local(TEHRAN, 2026, 12, 11, 12, 0), local(TEHRAN, 2026, 12, 12, 9, 0)),  # Friday noon → Saturday
])
def test_next_allowed_in_tehran_without_friday(at, expected):
    result = next_allowed(at, TEHRAN, WORKDAYS_IR)
    assert result == expected
    assert result.tzinfo == UTC


def test_next_allowed_accepts_a_utc_moment_and_returns_utc():
    # 2026-12-10 18:30 UTC is Thursday 22:00 in Tehran
    result = next_allowed(datetime(2026, 12, 10, 18, 30, tzinfo=UTC), TEHRAN, WORKDAYS_IR)
    assert result == datetime(2026, 12, 12, 5, 30, tzinfo=UTC)
    assert result.utcoffset() == timedelta(0)


def test_next_allowed_with_a_window_ending_at_midnight():
    window = SendWindow(start=9 * 60, end=24 * 60)
    late = local(TEHRAN, 2026, 12, 7, 23, 59)
    assert next_allowed(late, TEHRAN, window) == late
    assert next_allowed(local(TEHRAN, 2026, 12, 7, 8, 0), TEHRAN, window) == local(TEHRAN, 2026, 12, 7, 9, 0)


def test_next_allowed_skip_today_goes_to_the_next_allowed_day():
    at = local(TEHRAN, 2026, 12, 10, 10, 0)  # Thursday, inside the window
    assert next_allowed(at, TEHRAN, WORKDAYS_IR, skip_today=True) == local(TEHRAN, 2026, 12, 12, 9, 0)


@pytest.mark.parametrize("at, expected_utc, expected_offset", [
    # spring forward 2026-03-08 02:00 EST → 03:00 EDT: 09:00 that day is EDT (UTC-4)
    (datetime(2026, 3, 8, 6, 0, tzinfo=UTC), datetime(2026, 3, 8, 13, 0, tzinfo=UTC), timedelta(hours=-4)),
    (datetime(2026, 3, 8, 3, 0, tzinfo=UTC), datetime(2026, 3, 8, 13, 0, tzinfo=UTC), timedelta(hours=-4)),
    # fall back 2026-11-01 02:00 EDT → 01:00 EST: 09:00 that day is EST (UTC-5)
    (datetime(2026, 11, 1, 4, 30, tzinfo=UTC), datetime(2026, 11, 1, 14, 0, tzinfo=UTC), timedelta(hours=-5)),
    (datetime(2026, 11, 1, 2, 0, tzinfo=UTC), datetime(2026, 11, 1, 14, 0, tzinfo=UTC), timedelta(hours=-5)),
])
def test_next_allowed_across_dst_in_toronto(at, expected_utc, expected_offset):
    result = next_allowed(at, TORONTO, SendWindow())
    assert result == expected_utc
    shown = result.astimezone(TORONTO)
    assert (shown.date(), shown.hour, shown.minute) == (expected_utc.date(), 9, 0)
    assert shown.utcoffset() == expected_offset


@pytest.mark.parametrize("at, start, end", [
    (datetime(2026, 12, 7, 22, 0, tzinfo=UTC), TEHRAN,
     (datetime(2026, 12, 7, 20, 30, tzinfo=UTC), datetime(2026, 12, 8, 20, 30, tzinfo=UTC))),
    (datetime(2026, 3, 8, 12, 0, tzinfo=UTC), TORONTO,  # a 23-hour day
     (datetime(2026, 3, 8, 5, 0, tzinfo=UTC), datetime(2026, 3, 9, 4, 0, tzinfo=UTC))),
    (datetime(2026, 11, 1, 12, 0, tzinfo=UTC), TORONTO,  # a 25-hour day
     (datetime(2026, 11, 1, 4, 0, tzinfo=UTC), datetime(2026, 11, 2, 5, 0, tzinfo=UTC))),
])
def test_local_day_bounds(at, start, end):
    assert local_day_bounds(at, start) == end
