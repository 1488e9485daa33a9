"""A per-provider send rate: :class:`RateLimiter` for the threads of one worker,
:class:`LeasedRateLimiter` for a budget shared with other workers.

Each caller reserves the next free slot and sleeps once until it; nobody re-polls the
clock, so the limiters also behave under a frozen test clock.
"""
from __future__ import annotations

import math
import re
import threading
import time
from typing import Callable

from .errors import ProviderConfigError

__all__ = ["LeasedRateLimiter", "Limiter", "RateLimiter", "parse_rate"]

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


class Limiter:
    """What a send asks before it goes: :meth:`acquire` waits for the provider's next slot."""

    def reserve(self) -> float:
        """Reserve the next slot; return how many seconds to wait for it."""
        raise NotImplementedError

    def close(self) -> None:
        """Give back what the limiter holds (nothing, unless it leases from a shared budget)."""

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Wait for the next slot."""
        delay = self.reserve()
        if delay > 0:
            sleep(delay)


class RateLimiter(Limiter):
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


#: ``lease(n, interval)``: take ``n`` slots ``interval`` seconds apart from the shared budget; return how
#: many seconds from now the first of them begins
Lease = Callable[[int, float], float]


class LeasedRateLimiter(Limiter):
    """Spaces sends ``1/rate`` seconds apart together with other workers that lease from the same budget.

    Slots are leased ``lease_size`` at a time (about ``lease_seconds`` of sends), so the shared budget
    is asked once per lease, not once per send. A leased slot whose time passed unused is dropped,
    never saved up: a worker that was idle does not send its idle time's worth at once.
    """

    def __init__(self, per_second: float, lease: Lease, *, lease_seconds: float = 0.25, max_lease: int = 100,
                 clock: Callable[[], float] = time.monotonic, release: Callable[[], None] | None = None):
        self.interval = 1.0 / per_second
        self.lease_size = max(1, min(max_lease, math.ceil(per_second * lease_seconds)))
        self._lease = lease
        self._release = release
        self._clock = clock
        self._next = 0.0  # when the next leased slot begins, on ``clock``
        self._left = 0  # leased slots not spent yet
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take the next leased slot (leasing more when none is left); return how many seconds to wait for it."""
        with self._lock:
            now = self._clock()
            if self._left and self._next < now:
                passed = min(self._left, int((now - self._next) / self.interval))
                self._next += passed * self.interval
                self._left -= passed
            if not self._left:
                wait = self._lease(self.lease_size, self.interval)
                now = self._clock()
                self._next, self._left = now + max(0.0, wait), self.lease_size
            slot = self._next
            self._next += self.interval
            self._left -= 1
            return max(0.0, slot - now)

    def close(self) -> None:
        """Give back what the shared budget's lease holds (its database connection)."""
        if self._release is not None:
            self._release()
