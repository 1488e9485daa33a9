"""Clicks of short links, written off the request path: a redirect queues its click, one thread writes the queue.

The writer thread wakes every :data:`FLUSH_SECONDS` and stores whatever is queued in one transaction, so a
redirect never waits for the database's write lock (on SQLite, held by the worker for a whole batch). The
service's shutdown (FastAPI lifespan → :meth:`ClickWriter.close`) writes what is left: a clean stop loses no
click; a crash of the service loses at most the clicks of the last second.

The queue is bounded (:data:`CAPACITY`). When it is full the request writes the queue and its own click itself,
in its own transaction: slower, never a click dropped. A write that fails keeps its clicks queued for the
next one (and the request that wrote it answers an error, so no click is lost without anyone being told).
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import sqlalchemy as sa

from ..engagement import insert_follows

__all__ = ["ClickWriter", "FLUSH_SECONDS", "CAPACITY"]

logger = logging.getLogger(__name__)
FLUSH_SECONDS = 1.0
#: clicks queued at most; past it a redirect writes them itself
CAPACITY = 10_000


class ClickWriter:
    """A queue of engagement rows (:func:`engine.engagement.follow_row`) and the thread that stores them."""

    def __init__(self, engine: sa.Engine, *, config: Any = None, interval: float = FLUSH_SECONDS,
                 capacity: int = CAPACITY):
        self.engine = engine
        #: with a config, each written click also goes to the webhooks and the lead score (insert_follows)
        self.config = config
        self.interval = interval
        self.capacity = capacity
        self._pending: list[dict] = []
        self._queue_lock = threading.Lock()  # guards _pending
        self._write_lock = threading.Lock()  # one write at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, row: dict) -> None:
        """Queue one click; with the queue full (or the writer closed) write it now, with the queue."""
        with self._queue_lock:
            if len(self._pending) < self.capacity and not self._stop.is_set():
                self._pending.append(row)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="click-writer", daemon=True)
                    self._thread.start()
                return
        self.flush([row])

    def pending(self) -> int:
        """How many clicks are queued and not yet written."""
        with self._queue_lock:
            return len(self._pending)

    def flush(self, extra: list[dict] | None = None) -> int:
        """Write the queued clicks (and ``extra``) in one transaction now; return how many were written.

        When the write fails the queued clicks go back to the front of the queue, ``extra`` does not (its
        caller is told by the exception), and the exception propagates."""
        with self._write_lock:
            with self._queue_lock:
                rows, self._pending = self._pending, []
            try:
                with self.engine.begin() as conn:
                    insert_follows(conn, rows + (extra or []), self.config)
            except Exception:
                with self._queue_lock:
                    self._pending[:0] = rows
                raise
        return len(rows) + len(extra or [])

    def close(self) -> None:
        """Stop the thread and write what is left (the service's shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.flush()
        except Exception:
            logger.error("%s clicks could not be written at shutdown", self.pending())
            raise

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception as err:  # kept queued; the next second tries again
                logger.warning("clicks not written yet (%s queued), trying again in %ss: %s",
                               self.pending(), self.interval, type(err).__name__)
