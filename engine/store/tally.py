"""What ``/metrics`` counts the delivery log with: the log's rows counted by (event, provider) over an id range,
the newest id settled by a time, and the stored snapshot of the counts up to an id (``log_counts``), which the
worker moves on (:func:`advance_snapshot`) so that a service starts from it.

The snapshot only holds settled rows, those logged ``SETTLED`` ago: on PostgreSQL ids are handed out before
their transactions commit, so a row with a lower id can appear after one with a higher id; past a few minutes
nothing of the worker's short transactions is still open."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..models import DeliveryLog, LogCount
from .driver import dialect_insert

__all__ = ["SETTLED", "count_log", "settled_upto", "snapshot", "save_snapshot", "advance_snapshot"]

SETTLED = timedelta(minutes=5)

log_t = DeliveryLog.__table__
counts_t = LogCount.__table__


def count_log(conn: sa.Connection, after: int, upto: int | None = None) -> Counter[tuple[str, str | None]]:
    """The log's rows with ``after`` < id (<= ``upto``), by (event, provider)."""
    where = log_t.c.id > after if upto is None else log_t.c.id.between(after + 1, upto)
    return Counter({(event, provider): n for event, provider, n in conn.execute(
        sa.select(log_t.c.event, log_t.c.provider, sa.func.count()).where(where)
        .group_by(log_t.c.event, log_t.c.provider))})


def settled_upto(conn: sa.Connection, after: int, before: datetime) -> int | None:
    """The newest id above ``after`` of the rows logged before ``before`` (None: no such row)."""
    return conn.execute(sa.select(sa.func.max(log_t.c.id)).where(log_t.c.id > after, log_t.c.at < before)).scalar()


def snapshot(conn: sa.Connection, after: int = 0) -> tuple[int, Counter[tuple[str, str | None]]] | None:
    """The newest stored snapshot (its ``upto`` and counts) if it reaches past ``after``; read in one statement,
    so a newer snapshot stored meanwhile (which deletes the older ones) cannot leave it half read."""
    newest = sa.select(sa.func.max(counts_t.c.upto)).scalar_subquery()
    rows = conn.execute(sa.select(counts_t.c.upto, counts_t.c.event, counts_t.c.provider, counts_t.c.n)
                        .where(counts_t.c.upto == newest, counts_t.c.upto > after)).all()
    if not rows:
        return None
    return rows[0][0], Counter({(event, provider or None): n for _, event, provider, n in rows})


def save_snapshot(conn: sa.Connection, upto: int, counts: Counter[tuple[str, str | None]]) -> None:
    """Store the counts of the rows up to ``upto`` as the newest snapshot (older ones go; one already stored
    for the same ``upto`` by another service holds the same counts and stays)."""
    rows = [{"upto": upto, "event": event, "provider": provider or "", "n": n}
            for (event, provider), n in counts.items() if n]
    if rows:
        conn.execute(dialect_insert(conn, counts_t).on_conflict_do_nothing(), rows)
    conn.execute(sa.delete(counts_t).where(counts_t.c.upto < upto))


def advance_snapshot(conn: sa.Connection, at: datetime) -> None:
    """Move the stored snapshot up to the rows settled at ``at`` (in the caller's write transaction)."""
    upto, counts = snapshot(conn) or (0, Counter())
    settled = settled_upto(conn, upto, at - SETTLED)
    if settled is not None:
        save_snapshot(conn, settled, counts + count_log(conn, upto, settled))
