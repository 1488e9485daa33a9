"""The store: every statement the worker, recovery, the poller and receipts run, as named functions.

Callers hand in a connection (a transaction) and get rows back as dicts; no SQL, cursor or dialect
leaves this package. SQLite and PostgreSQL differences live here only.

* :mod:`.driver`   the driver-level path of the hot statements (claim, record, log)
* :mod:`.log`      :func:`apply` (state changes + their log rows), :func:`apply_to_touch`, :func:`append_log`
* :mod:`.work`     claiming, what the checks read, leases, the next touch, heartbeats, the poller's lease
* :mod:`.pauses`   provider pauses: the one place that says whether a provider is paused now
* :mod:`.receipts` what receipts, inbound SMS and the delivery poller read and write
* :mod:`.slots`    the shared rate's lease statement
* :mod:`.journeys` what waits and ``only_if`` read of a batch, A/B winners and per-variant figures
* :mod:`.outbox`   what webhook delivery reads and writes: the due chains of the outbox, the URLs' states

:class:`Store` owns the worker's transactions: on SQLite this process's writers queue for the database's
single write lock on a lock of their own, and the WAL is checkpointed after writes. On PostgreSQL a
transaction handed to :meth:`Store.behind` runs on the store's writer thread: its round trips overlap the
caller's Python work.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from datetime import datetime
from typing import Any, Callable, Iterator

import sqlalchemy as sa

from ..walcheckpoint import Checkpointer
from .driver import is_sqlite
from .log import LOG_ROWS_PER_INSERT, append_log, apply, apply_to_touch
from .pauses import Pause, active_pauses, pause_providers, resume_provider
from .rollups import FoldSchedule
from .work import (DUE_SQL, IN_FLIGHT_CHUNK, claim_due, claim_sql, cluster_lease, definition,
                   enrollments_with_contacts, heartbeat, in_flight_query, offers, recent_sends, renew_leases, retire,
                   schedule_next, sequence_hashes, take_over)

#: the name (a prefix) of the writer thread of :meth:`Store.behind`
WRITER_THREAD = "store-writer"

__all__ = ["Store", "WRITER_THREAD", "apply", "apply_to_touch", "append_log", "LOG_ROWS_PER_INSERT", "Pause",
           "active_pauses", "pause_providers", "resume_provider", "DUE_SQL", "IN_FLIGHT_CHUNK", "claim_due",
           "claim_sql", "cluster_lease", "definition", "enrollments_with_contacts", "heartbeat", "in_flight_query", "offers",
           "recent_sends", "renew_leases", "retire", "schedule_next", "sequence_hashes", "take_over"]


class Store:
    """The worker's transactions on one engine."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        # SQLite's busy handler would have this process's writers poll for the write lock with sleeps of a
        # millisecond and more; they queue here instead
        self._write_lock: Any = threading.RLock() if self.sqlite else nullcontext()
        path = engine.url.database if self.sqlite else None
        self._checkpointer = Checkpointer(path) if path and path != ":memory:" else None
        # SQLite has one write lock: a writer thread would only queue for it
        self._writer = None if self.sqlite else ThreadPoolExecutor(max_workers=1, thread_name_prefix=WRITER_THREAD)
        self._folds = FoldSchedule()

    def fold_counts(self, conn: sa.Connection, at: datetime) -> None:
        """Fold the kept counts (:mod:`.rollups`) in the caller's transaction, at most once a minute."""
        self._folds.run(conn, at)

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction (queued behind this process's other writers on SQLite)."""
        with self._write_lock, self.engine.begin() as conn:
            yield conn
        if self._checkpointer is not None:
            self._checkpointer.poke()

    def behind(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` (a function that opens its own :meth:`write`): on PostgreSQL on the writer thread,
        after those handed in before it; on SQLite now. Its future, which holds what it returned or raised."""
        if self._writer is not None:
            return self._writer.submit(fn, *args)
        done: Future = Future()
        try:
            done.set_result(fn(*args))
        except BaseException as err:  # noqa: BLE001 - raised again where the future is read
            done.set_exception(err)
        return done

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        if self._checkpointer is not None:
            self._checkpointer.close()
