"""A per-provider send rate, shared by every thread of one worker.

Each caller reserves the next free slot and sleeps once until it; nobody re-polls the
clock, so the limiter also behaves under a frozen test clock.
"""
from __future__ import annotations

import re
import threading
import time
from typing import Callable

from .errors import ProviderConfigError

__all__ = ["RateLimiter", "parse_rate"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*)\s*([smh])\s*$")


def parse_rate(text: str | int | float | None) -> float | None:
    """``"20/s"`` → 20.0 messages per second; ``"600/m"``, ``"1/2s"`` work too; None means unlimited."""
    if text in (None, "", 0):
        return None
    if isinstance(text, (int, float)):
        return float(text)
    match = _RATE.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise ProviderConfigError("rate", f"{text!r} is not a rate; write it like 20/s, 600/m or 5000/h")
    count, per, unit = float(match.group(1)), float(match.group(2) or 1), match.group(3)
    return count / (per * _UNITS[unit])


class RateLimiter:
    """Spaces sends ``1/rate`` seconds apart (a burst of one), across threads."""

    def __init__(self, per_second: float | None, *, clock: Callable[[], float] = time.monotonic):
        self.interval = 0.0 if not per_second else 1.0 / per_second
        self._clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Reserve the next slot; return how many seconds to wait for it."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
            return slot - now

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Wait for the next slot."""
        delay = self.reserve()
        if delay > 0:
            sleep(delay)
