"""Which phase each job of the worker is in, and a watchdog that logs a job running past its limit.

The tick and the delivery poll name their phase as they go (``recovery``, ``claim``, ``render``,
``send``, ``settle``, ``heartbeat``; the poll's ``receipts from NAME``, ``inbound from NAME``); the
watchdog's thread reads them. A tick that runs past ``worker.tick_warn_seconds`` is then logged with
the phase it is stuck in, again every ``tick_warn_seconds`` while it lasts; on SIGTERM the worker
names the same phases when it gives up waiting for them.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["Phases", "Running", "Watchdog"]

logger = logging.getLogger("followup.worker")


@dataclass(frozen=True)
class Running:
    """A job under way: its phase, and how long the job and the phase have run (seconds)."""

    job: str
    phase: str
    job_seconds: float
    phase_seconds: float
    began: float  # on the clock of its Phases: tells one run of a job from the next

    def describe(self) -> str:
        return (f"the {self.job} has run for {self.job_seconds:.0f}s; it is in phase {self.phase!r} "
                f"(for {self.phase_seconds:.0f}s)")


class Phases:
    """The current phase of each running job; set by the job's own thread, read by any other."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._jobs: dict[str, tuple[float, str, float]] = {}  # job → (job began, phase, phase began)
        self._lock = threading.Lock()

    def enter(self, job: str, phase: str) -> None:
        """``job`` is in ``phase`` from now on (a job not running yet begins now)."""
        at = self.clock()
        with self._lock:
            began = self._jobs.get(job, (at,))[0]
            self._jobs[job] = (began, phase, at)

    def end(self, job: str) -> None:
        with self._lock:
            self._jobs.pop(job, None)

    def running(self) -> list[Running]:
        at = self.clock()
        with self._lock:
            jobs = list(self._jobs.items())
        return [Running(job, phase, at - began, at - since, began) for job, (began, phase, since) in jobs]

    def describe(self) -> str:
        """Every running job and its phase, for a log line; ``nothing running`` when idle."""
        return "; ".join(r.describe() for r in self.running()) or "nothing running"


class Watchdog:
    """Logs a warning for each job of ``phases`` running longer than ``limit`` seconds, once per ``limit``.

    :meth:`check` does one look (tests call it with an injected clock); :meth:`start` runs it on a
    daemon thread every few seconds.
    """

    def __init__(self, phases: Phases, limit: float):
        self.phases, self.limit = phases, limit
        self._warned: dict[str, tuple[float, float]] = {}  # job → (that run's start, its time at the last warning)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> list[Running]:
        """Warn about every job past the limit that was not warned about in the last ``limit`` seconds."""
        late = []
        for r in self.phases.running():
            began, last = self._warned.get(r.job, (None, 0.0))
            if r.job_seconds < self.limit or (began == r.began and r.job_seconds < last + self.limit):
                continue
            self._warned[r.job] = (r.began, r.job_seconds)
            logger.warning("%s (worker.tick_warn_seconds is %s)", r.describe(), self.limit)
            late.append(r)
        return late

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="watchdog")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(min(5.0, self.limit / 4)):
            self.check()
