"""One thread that runs callbacks after a delay: the waits between a send's tries, off the send threads."""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Callable

__all__ = ["Timer", "Immediate"]


class Timer:
    """Calls ``fn()`` on its own thread once ``delay`` seconds have passed; :meth:`close` runs what is left now.

    A callback must be quick (hand the real work to a pool); a slow one delays the others.
    """

    def __init__(self, name: str = "timer"):
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._name = name

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            if self._thread is None:  # started on first use: most workers never wait between tries
                self._thread = threading.Thread(target=self._run, daemon=True, name=self._name)
                self._thread.start()
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq), fn))
            self._cond.notify()

    def wake_all(self) -> None:
        """Run every pending callback now (the worker is stopping)."""
        with self._cond:
            self._heap = [(0.0, seq, fn) for _, seq, fn in self._heap]
            heapq.heapify(self._heap)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closing = True
        self.wake_all()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._heap:
                        if self._closing:
                            return
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        _, _, fn = heapq.heappop(self._heap)
                        break
                    self._cond.wait(wait)
            fn()


class Immediate:
    """A timer for a frozen clock: tells ``sleep`` each delay (a test records them) and runs the callback now."""

    def __init__(self, sleep: Callable[[float], None]):
        self.sleep = sleep

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        self.sleep(delay)
        fn()

    def wake_all(self) -> None:
        pass

    def close(self) -> None:
        pass
