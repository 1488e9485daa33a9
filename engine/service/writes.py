"""Group commit: requests' writes run on one thread, many in one transaction, each answered after its commit.

A request hands :meth:`GroupWriter.submit` its write (a function of a connection) and waits for the future it
gets back. The writer thread takes every write queued, runs them in one transaction and commits them
together: one transaction (on SQLite, one wait for the database's write lock, often held by the
worker) and one commit for all the requests that arrived meanwhile, instead of one each. While a batch
commits, the next one queues.

A batch of writes of one class with a ``together(conn, writes)`` (a static method) is run by it: one call for
all, which answers one outcome per write (its value, or the exception it is refused with, having written
nothing). The API's events are such writes: a batch of requests reads and inserts its events with a few
statements in all (:func:`engine.events.record_events`). Other writes run one after another.

Each write stays all-or-nothing and on its own. When the batch's run raises, its transaction is rolled
back and its writes run again in a new transaction, each in a savepoint: one that raises there is rolled
back to its savepoint alone and its future gets the exception. Savepoints cost two statements a write, so
they are taken only when a write failed. A
future gets its result only once its transaction is committed, so no request is answered before what it wrote
is durable. When the transaction itself fails (its BEGIN or COMMIT), every write in it gets the exception and
nothing of it was written.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from typing import Any, Callable

import sqlalchemy as sa

from ..db import writing_soon

__all__ = ["GroupWriter", "MAX_BATCH"]

logger = logging.getLogger(__name__)
#: writes at most in one transaction (a batch that big already amortizes its commit)
MAX_BATCH = 200


class GroupWriter:
    """One thread that runs the writes it is given in shared transactions (started on the first write)."""

    def __init__(self, engine: sa.Engine, *, name: str = "group-writer", max_batch: int = MAX_BATCH):
        self.engine = engine
        self.name = name
        self.max_batch = max_batch
        self._queue: list[tuple[Callable[[sa.Connection], Any], Future]] = []
        self._ready = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, write: Callable[[sa.Connection], Any]) -> Future:
        """Queue ``write``; the future has its return value once committed, or the exception it raised."""
        future: Future = Future()
        with self._ready:
            if not self._closed:
                self._queue.append((write, future))
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self._thread.start()
                self._ready.notify()
                return future
        self._write([(write, future)])  # after close: in the caller's thread, in a transaction of its own
        return future

    def close(self) -> None:
        """Run what is queued, then stop the thread (the service's shutdown). A write submitted later runs at
        once, in its caller's thread."""
        with self._ready:
            self._closed = True
            self._ready.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
            self._write(batch)

    def _write(self, batch: list[tuple[Callable[[sa.Connection], Any], Future]]) -> None:
        pending = [(write, future) for write, future in batch if future.set_running_or_notify_cancel()]
        writes = [write for write, _ in pending]
        kinds = {type(write) for write in writes}
        together = getattr(kinds.pop(), "together", None) if len(kinds) == 1 else None
        stage = "begin"
        try:
            with writing_soon(self.engine) as conn:
                stage = "write"
                outcomes = together(conn, writes) if together else [write(conn) for write in writes]
                stage = "commit"
        except Exception as err:
            if stage == "write":  # a write raised and all was rolled back: again, each in a savepoint of its own
                self._write_apart(pending)
            else:
                self._fail(pending, err)
            return
        for (_, future), outcome in zip(pending, outcomes):
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _write_apart(self, pending: list[tuple[Callable[[sa.Connection], Any], Future]]) -> None:
        done: list[tuple[Future, Any]] = []
        failed: list[tuple[Future, BaseException]] = []
        try:
            with writing_soon(self.engine) as conn:
                for write, future in pending:
                    try:
                        with conn.begin_nested():
                            done.append((future, write(conn)))
                    except Exception as err:  # rolled back to its savepoint; the others go on
                        failed.append((future, err))
        except Exception as err:
            self._fail(pending, err)
            return
        for future, value in done:
            future.set_result(value)
        for future, err in failed:
            future.set_exception(err)

    @staticmethod
    def _fail(pending: list[tuple[Callable[[sa.Connection], Any], Future]], err: BaseException) -> None:
        """The transaction itself failed (its BEGIN or COMMIT): nothing of it was written."""
        logger.warning("a transaction of %s writes failed: %s", len(pending), type(err).__name__)
        for _, future in pending:
            future.set_exception(err)
