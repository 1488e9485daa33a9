"""Login throttling: failed logins counted per client address and in all; past a few, the next attempt waits.

Per address, :data:`FREE_FAILURES` failures in :data:`WINDOW` pass; after that each attempt waits 2, 4, 8, …
seconds after the last failure (at most :data:`MAX_WAIT`). In all, :data:`GLOBAL_FAILURES` failures in
:data:`WINDOW` close the login form for everyone until the oldest of them leaves the window, which bounds
guessing from many addresses; sessions already open and bearer keys are not affected. A success forgets its
address's failures. Counts live in the process (a restart forgets them) and follow :func:`engine.clock.now`.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from datetime import datetime, timedelta

from ..clock import now

__all__ = ["LoginThrottle", "Misses", "WINDOW", "FREE_FAILURES", "GLOBAL_FAILURES", "MAX_WAIT", "MISS_LIMIT",
           "MISS_WINDOW"]

WINDOW = timedelta(minutes=15)
FREE_FAILURES = 5
GLOBAL_FAILURES = 100
MAX_WAIT = timedelta(minutes=15)
MAX_ADDRESSES = 10_000  # the oldest addresses are forgotten past this, so memory stays bounded
#: unknown short-link codes one address may ask for in MISS_WINDOW before it is answered 429
MISS_LIMIT = 30
MISS_WINDOW = timedelta(minutes=10)


class LoginThrottle:
    """Failed logins by address; :meth:`wait` says how long the next attempt must wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, deque[datetime]] = {}
        self._all: deque[datetime] = deque()

    def wait(self, address: str) -> int:
        """Whole seconds before ``address`` may try again (0: now)."""
        at = now()
        with self._lock:
            self._forget_before(at - WINDOW)
            until = at
            failures = self._failures.get(address)
            if failures and len(failures) >= FREE_FAILURES:
                backoff = timedelta(seconds=2 ** min(len(failures) - FREE_FAILURES + 1, 30))
                until = max(until, failures[-1] + min(backoff, MAX_WAIT))
            if len(self._all) >= GLOBAL_FAILURES:
                until = max(until, self._all[-GLOBAL_FAILURES] + WINDOW)
        return math.ceil((until - at).total_seconds())

    def failed(self, address: str) -> int:
        """Count a failed login from ``address``; return its failures in the window."""
        at = now()
        with self._lock:
            failures = self._failures.pop(address, None) or deque()
            failures.append(at)
            self._failures[address] = failures  # re-inserted: the dict stays ordered by last failure
            self._all.append(at)
            while len(self._failures) > MAX_ADDRESSES:
                del self._failures[next(iter(self._failures))]
            return len(failures)

    def succeeded(self, address: str) -> None:
        """Forget the failures of ``address``."""
        with self._lock:
            self._failures.pop(address, None)

    def _forget_before(self, cutoff: datetime) -> None:
        while self._all and self._all[0] < cutoff:
            self._all.popleft()
        for address in [a for a, f in self._failures.items() if f[-1] < cutoff]:
            del self._failures[address]
        for failures in self._failures.values():
            while failures[0] < cutoff:
                failures.popleft()


class Misses:
    """Unknown codes asked for, by client address (in the process; the oldest addresses are forgotten)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: OrderedDict[str, deque[datetime]] = OrderedDict()

    def _recent(self, address: str, at: datetime) -> deque[datetime] | None:
        found = self._by.get(address)
        while found and found[0] < at - MISS_WINDOW:
            found.popleft()
        return found

    def blocked(self, address: str) -> bool:
        with self._lock:
            found = self._recent(address, now())
            return bool(found) and len(found) >= MISS_LIMIT

    def missed(self, address: str) -> None:
        at = now()
        with self._lock:
            found = self._recent(address, at) or deque()
            found.append(at)
            self._by[address] = found
            self._by.move_to_end(address)
            while len(self._by) > MAX_ADDRESSES:
                self._by.popitem(last=False)
