"""An offer's ``expires_at``: written in the Gregorian or the Jalali calendar, and said both ways.

``1405-09-20 23:59`` is Jalali (a year from 1300 to 1499 is read as Jalali unless the offer says
``calendar: gregorian``); ``2026-12-11 23:59`` is Gregorian. Without an offset the time is in the
settings' timezone; ``+03:30`` or ``Z`` at the end fixes it. Persian digits are read too.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from .text import ascii_digits

__all__ = ["CALENDARS", "JALALI_YEARS", "parse_deadline", "both_ways"]

CALENDARS = ("gregorian", "jalali")
#: the years read as Jalali when the offer names no calendar (Gregorian 1921–2121)
JALALI_YEARS = range(1300, 1500)
EXAMPLE = ("write it like 1405-09-20 23:59 (Jalali) or 2026-12-11 23:59 (Gregorian), optionally with an offset "
           "such as +03:30")
_MOMENT = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
                     r"\s*(Z|[+-]\d{2}:?\d{2})?", re.IGNORECASE)


def _text(value: Any) -> str:
    # YAML turns `2026-12-11 23:59:00` into a datetime and `2026-12-11` into a date: read them as written
    if isinstance(value, (datetime, date)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return ascii_digits(str(value)).strip()


def _offset(text: str) -> timezone:
    if text.upper() == "Z":
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {text} is not between -23:59 and +23:59")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _from_jalali(fields: list[int]) -> datetime:
    import jdatetime  # here, not at the top: only a Jalali deadline needs it, and the worker loads every sequence

    return jdatetime.datetime(*fields).togregorian()


def parse_deadline(value: Any, tz: tzinfo, calendar: str | None = None) -> datetime:
    """``value`` as an aware UTC datetime; ``calendar`` is ``gregorian``, ``jalali`` or None (by the year).

    Raises ``ValueError`` with a message that quotes the value as written and shows how to write it.
    """
    text = _text(value)
    match = _MOMENT.fullmatch(text)
    if not match:
        raise ValueError(f"'{text}' is not a date and time; {EXAMPLE}")
    year, month, day, hour, minute, second, offset = match.groups()
    if hour is None:
        raise ValueError(f"'{text}' has no time of day; add one, e.g. '{text} 23:59' for the end of that day")
    fields = [int(year), int(month), int(day), int(hour), int(minute), int(second or 0)]
    jalali = calendar == "jalali" if calendar else fields[0] in JALALI_YEARS
    try:
        naive = _from_jalali(fields) if jalali else datetime(*fields)
        zone = _offset(offset) if offset else tz
        return naive.replace(tzinfo=zone).astimezone(timezone.utc)
    except (ValueError, OverflowError) as err:
        raise ValueError(f"'{text}' is not a time in the {'Jalali' if jalali else 'Gregorian'} calendar: {err}; "
                         f"{EXAMPLE}") from None

def both_ways(moment: datetime, tz: tzinfo) -> str:
    """``2026-12-11 23:59 Asia/Tehran (Jalali 1405-09-20 23:59)``: a moment in ``tz``, in both calendars."""
    import jdatetime  # here, not at the top: the worker never says a deadline

    local = moment.astimezone(tz)
    jd = jdatetime.datetime.fromgregorian(datetime=local.replace(tzinfo=None))
    name = tz.key if isinstance(tz, ZoneInfo) else local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} {name} (Jalali {jd.year:04d}-{jd.month:02d}-{jd.day:02d} {local:%H:%M})"
