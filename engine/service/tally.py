"""Counts of the delivery log by event and provider, for ``/metrics``, without reading the whole log each scrape.

The log is append-only, so what was counted stays counted: rows up to a watermark are counted once and
kept, and only the rows above it are read at each scrape. The watermark trails the log's end by
``SETTLED`` (:mod:`engine.store.tally` says why). A service that starts begins from the counts the worker
stores (``log_counts``, filled by the migration that made it, moved on once a minute), not the log's first row;
a scrape never writes.
"""
from __future__ import annotations

import threading
from collections import Counter

import sqlalchemy as sa

from ..clock import now
from ..store.tally import SETTLED, count_log, settled_upto, snapshot

__all__ = ["LogTally", "SETTLED"]


class LogTally:
    """Delivery-log rows by (event, provider), kept by one app across its scrapes (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settled: Counter[tuple[str, str | None]] = Counter()
        self._upto = 0  # every row with an id up to this one is in _settled

    def counts(self, conn: sa.Connection) -> dict[tuple[str, str | None], int]:
        """Every row of the log counted by (event, provider): the settled rows from memory (or the stored
        snapshot, when it reaches further), the rest read now."""
        with self._lock:
            stored = snapshot(conn, self._upto)
            if stored is not None:
                self._upto, self._settled = stored
            upto = settled_upto(conn, self._upto, now() - SETTLED)
            if upto is not None:
                self._settled.update(count_log(conn, self._upto, upto))
                self._upto = upto
            return dict(self._settled + count_log(conn, self._upto))
