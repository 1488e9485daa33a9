"""Durations as marketers write them: ``30s``, ``15m``, ``2h``, ``1d12h``."""
from __future__ import annotations

import re
from datetime import timedelta

from .text import ascii_digits

__all__ = ["parse_duration", "format_duration"]

_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)([dhms])")
_WHOLE = re.compile(r"^(?:\d+[dhms])+$")


def parse_duration(text: str | int) -> timedelta:
    """Parse ``1d12h`` into a timedelta. Raises ValueError with a hint on anything else."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"{text!r} is not a duration; write it like 30m, 2h or 1d12h")
    if isinstance(text, int):
        raise ValueError(f"{text} has no unit; write it like {text}s, {text}m, {text}h or {text}d")
    compact = ascii_digits(text).strip().lower().replace(" ", "")
    if not _WHOLE.match(compact):
        raise ValueError(f"{text!r} is not a duration; use whole numbers with s, m, h, d units, like 30m or 1d12h")
    units = [u for _, u in _PART.findall(compact)]
    if len(set(units)) != len(units):
        raise ValueError(f"{text!r} repeats a unit; write each unit once, like 1d12h")
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(compact)))


def format_duration(delta: timedelta) -> str:
    """The inverse of :func:`parse_duration`: ``timedelta(hours=36)`` → ``1d12h``."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in _UNIT_SECONDS.items():
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
