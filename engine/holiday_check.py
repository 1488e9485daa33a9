"""``validate``'s warning when a holiday the send window skips pushes an urgent touch past its offer's deadline.

Such a touch is skipped at send time (``offer_expired``), as it must be; the warning says so before the
campaign runs, for the enrollment days of the coming year where it would happen.
"""
from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from .clock import now
from .config import Config
from .deadlines import both_ways
from .errors import Problem
from .sequences import Sequence
from .window import SendWindow, describe_holidays, holidays_between, next_allowed

__all__ = ["holiday_deadline_problems", "touch_times"]

#: how many enrollment days ahead are looked at
DAYS_AHEAD = 365


def touch_times(seq: Sequence, window: SendWindow, tz: ZoneInfo, start: datetime) -> list[datetime]:
    """When each touch would go out for a contact enrolled at ``start`` (send window only, no cap)."""
    times, at = [], start
    for touch in seq.touches:
        at = next_allowed(at + touch.after, tz, window)
        times.append(at)
    return times


def holiday_deadline_problems(config: Config, seq: Sequence, start: datetime | None = None,
                              days: int = DAYS_AHEAD) -> list[Problem]:
    """A warning per urgent touch that a skipped holiday would push past the offer's deadline, for a contact
    enrolled at noon (settings' timezone) on one of the ``days`` days from ``start``."""
    window = seq.send_window or config.settings.send_window
    urgent = [t for t in seq.touches if t.urgent]
    if not (window.skip_holidays or window.skip_mourning) or not urgent or seq.offer is None:
        return []
    plain = replace(window, skip_holidays=None, skip_mourning=False)
    tz = config.settings.timezone
    first = (start or now()).astimezone(tz).date()
    hits: dict[int, list[tuple[datetime, datetime, str]]] = {}
    for offset in range(days):
        enrolled = datetime.combine(first + timedelta(days=offset), time(12), tzinfo=tz)
        deadline = seq.offer.deadline_for(enrolled)
        if deadline is None or deadline <= enrolled:
            break
        with_holidays, without = touch_times(seq, window, tz, enrolled), touch_times(seq, plain, tz, enrolled)
        for touch in urgent:
            when, would = with_holidays[touch.index], without[touch.index]
            if when >= deadline > would:
                skipped = holidays_between(enrolled, when, tz, window)
                hits.setdefault(touch.index, []).append((enrolled, deadline, describe_holidays(skipped, window)))
    problems = []
    seq_file = os.path.relpath(seq.file) if seq.file else seq.name
    for index, found in sorted(hits.items()):
        touch = seq.touches[index]
        enrolled, deadline, holidays = found[0]
        more = f" (and on {len(found) - 1} more enrollment day(s) in the next {days})" if len(found) > 1 else ""
        problems.append(Problem(
            seq_file, f"touches[{index}]",
            f"urgent touch {touch.name!r}: for a contact enrolled on {enrolled:%Y-%m-%d}{more}, skipping the "
            f"{holidays} pushes it past the offer's deadline {both_ways(deadline, tz)}, so it would be skipped; send it "
            "earlier (after:), give the offer longer, or correct the dates in holidays.yaml", touch.line,
            warning=True))
    return problems
