"""Counts of the delivery log by event and provider, for ``/metrics``, without reading the whole log each scrape.

The log is append-only, so what was counted stays counted: rows up to a watermark are counted once and
kept, and only the rows above it are read at each scrape. The watermark trails the log's end by
``SETTLED``: on PostgreSQL ids are handed out before their transactions commit, so a row with a lower id
can appear after one with a higher id; past a few minutes nothing of the worker's short transactions is
still open.
"""
from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from ..clock import now
from ..models import DeliveryLog

__all__ = ["LogTally", "SETTLED"]

log_t = DeliveryLog.__table__
SETTLED = timedelta(minutes=5)


class LogTally:
    """Delivery-log rows by (event, provider), kept by one app across its scrapes (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settled: Counter[tuple[str, str | None]] = Counter()
        self._upto = 0  # every row with an id up to this one is in _settled

    def counts(self, conn: sa.Connection) -> dict[tuple[str, str | None], int]:
        """Every row of the log counted by (event, provider): the settled rows from memory, the rest read now."""
        def grouped(where) -> Counter[tuple[str, str | None]]:
            return Counter({(event, provider): n for event, provider, n in conn.execute(
                sa.select(log_t.c.event, log_t.c.provider, sa.func.count()).where(where)
                .group_by(log_t.c.event, log_t.c.provider))})

        with self._lock:
            upto = conn.execute(sa.select(sa.func.max(log_t.c.id))
                                .where(log_t.c.id > self._upto, log_t.c.at < now() - SETTLED)).scalar()
            if upto is not None:
                self._settled.update(grouped(log_t.c.id.between(self._upto + 1, upto)))
                self._upto = upto
            return dict(self._settled + grouped(log_t.c.id > self._upto))
