"""Sender lines of an SMS account and their classes, as a provider's ``lines`` setting lists them.

An Iranian panel account usually has several lines. A **promotional** (تبلیغاتی) line may carry
advertising but cannot reach a number on the operators' advertising blacklist (MCI 8999, Irancell
5005, ``*800#``), and some operators hold its sends to their hours. A **service** (خدماتی) line reaches
blacklisted numbers too, but only with informational text to a business's own customers
(shared/reference/providers.md §9.2). The provider only parses the list; which line a message leaves
from is the engine's choice, handed over in :attr:`providers.base.OutgoingMessage.sender`.

Operator hours: the operators hold advertising from promotional lines to daytime hours, Tehran time.
No regulator text was found, and the panels and resellers disagree:

======================================================  ==============================================
source                                                  hours
======================================================  ==============================================
IPPanel's SDKs, ``ErrItsTimeToSleep`` = "10019"         8–23 ("send time is 8-23"; github ippanel/
                                                        php-rest-sdk ``src/IPPanel/Errors/ResponseCodes.php``
                                                        at commit 62f2397)
navand.com «محدودیت ساعت ارسال پیامک تبلیغاتی»           07:00–22:00, advertising lines to MCI numbers
sms.see.co.ir, line 2000400                             09:00–21:00; later sends go out the next day
nabzekar.com «قوانین ارسال تبلیغات پیامکی»               no advertising 22:00–08:00
======================================================  ==============================================

So a promotional line's ``hours`` are a setting (``hours: "08:00-22:00"``; ``"00:00-24:00"`` for none), and
the default, :data:`DEFAULT_PROMOTIONAL_HOURS` 09:00–21:00, is the span every source above allows. A service
line has no operator hours (navand: service lines send around the clock).
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from .errors import ProviderConfigError

__all__ = ["LineClass", "Line", "OperatorHours", "DEFAULT_PROMOTIONAL_HOURS", "parse_lines", "parse_hours"]

#: the operators' clock
TEHRAN = ZoneInfo("Asia/Tehran")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class LineClass(str, enum.Enum):
    PROMOTIONAL = "promotional"
    SERVICE = "service"


@dataclass(frozen=True)
class OperatorHours:
    """The local minutes ``[start, end)`` of each day, Tehran time, in which a line's advertising goes out."""

    start: int
    end: int

    def describe(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}–{self.end // 60:02d}:{self.end % 60:02d} Tehran time"

    def opens(self, at: datetime) -> datetime | None:
        """None when ``at`` is inside the hours, else the next moment they start (UTC)."""
        local = at.astimezone(TEHRAN)
        minute = local.hour * 60 + local.minute
        if self.start <= minute < self.end:
            return None
        day = local.date() + timedelta(days=int(minute >= self.end))
        start = datetime.combine(day, time(self.start // 60, self.start % 60), tzinfo=TEHRAN)
        return start.astimezone(timezone.utc)


DEFAULT_PROMOTIONAL_HOURS = OperatorHours(9 * 60, 21 * 60)


@dataclass(frozen=True)
class Line:
    """One sender line: its number as the panel writes it, its class, and its operator hours (None: any time)."""

    number: str
    line_class: LineClass
    hours: OperatorHours | None = None


def parse_hours(raw: Any, key: str) -> OperatorHours | None:
    """``"HH:MM-HH:MM"`` (Tehran time) as :class:`OperatorHours`; ``"00:00-24:00"`` is None (any time)."""
    match = _HOURS.match(raw) if isinstance(raw, str) else None
    start = end = -1
    if match:
        h1, m1, h2, m2 = map(int, match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
    if not (match and m1 < 60 and m2 < 60 and 0 <= start < end <= 24 * 60):
        raise ProviderConfigError(key, f"{raw!r} must be a span of one day, Tehran time, like \"08:00-22:00\" "
                                       "(\"00:00-24:00\" for no operator hours)")
    return None if (start, end) == (0, 24 * 60) else OperatorHours(start, end)


def parse_lines(raw: Any) -> tuple[Line, ...]:
    """The ``lines`` setting (``[{number, class}]``) as :class:`Line` s; a clear error for anything else."""
    if raw is None:
        return ()
    example = "e.g. lines: [{number: '10004346', class: promotional}, {number: '2000660110', class: service}]"
    if not isinstance(raw, list) or not raw:
        raise ProviderConfigError("lines", f"must be a list of sender lines, {example}")
    lines, seen = [], set()
    for i, item in enumerate(raw):
        key = f"lines[{i}]"
        if not isinstance(item, dict) or set(item) - {"number", "class", "hours"}:
            raise ProviderConfigError(key, f"must be a mapping with number, class and (optional) hours, {example}")
        number = str(item.get("number") or "").strip()
        if not number:
            raise ProviderConfigError(f"{key}.number", "is required: the line number as the panel shows it")
        try:
            line_class = LineClass(item.get("class"))
        except ValueError:
            raise ProviderConfigError(f"{key}.class", f"{item.get('class')!r}: use promotional or service") from None
        if number in seen:
            raise ProviderConfigError(f"{key}.number", f"{number!r} is listed twice; list each line once")
        seen.add(number)
        hours = None
        if line_class is LineClass.PROMOTIONAL:
            hours = parse_hours(item["hours"], f"{key}.hours") if "hours" in item else DEFAULT_PROMOTIONAL_HOURS
        elif "hours" in item:
            raise ProviderConfigError(f"{key}.hours", "a service line has no operator hours; hours belong to a "
                                                      "promotional line")
        lines.append(Line(number, line_class, hours))
    return tuple(lines)
