"""What the KPI page counts per quarter hour: the messages sent then (``sent`` or ``delivered``, by sequence and
touch), a person's clicks and the conversions, each by its time.

On PostgreSQL the database keeps them (``bucket_counts``): triggers (migration ``0022_kpi_page``) append each move
into or out of a count to ``bucket_moves`` in the transaction that made it, and :func:`fold` adds those rows to
``bucket_counts`` and deletes them in one statement (the rows it deletes are the rows it adds). A window reads the
kept counts of the quarter hours wholly within it and counts the tables only for the part of a quarter hour at
each end, so its figures are the tables' exactly.

On SQLite the whole window is counted from the tables (through the indexes on their times).
"""
from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timezone

import sqlalchemy as sa

from ..models import (COUNTS_AS_SENT, BucketCount, BucketMove, ContactEvent, Engagement, EngagementKind, Message,
                      MessageStatus)
from .driver import is_sqlite
from .reports import QUARTER, quarter_hour

__all__ = ["SENDS", "CLICKS", "SALES", "KEYS", "counts", "counted", "fold"]

SENDS, CLICKS, SALES = "sends", "clicks", "sales"
counts_t = BucketCount.__table__
moves_t = BucketMove.__table__
messages_t = Message.__table__
engagements_t = Engagement.__table__
events_t = ContactEvent.__table__

#: folded in the database: the moves deleted are the moves added, whatever commits meanwhile
_FOLD = ("WITH gone AS (DELETE FROM bucket_moves RETURNING kind, quarter, sequence, touch, state, n) "
         "INSERT INTO bucket_counts (kind, quarter, sequence, touch, state, n) "
         "SELECT kind, quarter, sequence, touch, state, sum(n) FROM gone GROUP BY kind, quarter, sequence, touch, "
         "state ON CONFLICT (kind, quarter, sequence, touch, state) DO UPDATE SET n = bucket_counts.n + excluded.n")

#: what a count may be keyed by, in this order: the quarter hour (seconds since the epoch ÷ QUARTER), the
#: sequence, the touch and the state (``sent`` or ``delivered``; ``clicked``; ``converted``)
KEYS = ("quarter", "sequence", "touch", "state")


def _source(kind: str) -> tuple[sa.ColumnElement, list[sa.ColumnElement], list]:
    """A kind's time column, its key's columns after the quarter hour, and which rows it counts."""
    if kind == SENDS:
        m = messages_t.c
        state = sa.case((m.status == MessageStatus.DELIVERED.value, "delivered"), else_="sent")
        return m.sent_at, [m.sequence, m.touch, state], [m.status.in_(COUNTS_AS_SENT)]
    if kind == CLICKS:
        g = engagements_t.c
        return g.at, [sa.func.coalesce(g.sequence, ""), sa.func.coalesce(g.touch, ""), sa.literal("clicked")], \
            [g.kind == EngagementKind.CLICKED.value]
    e = events_t.c
    return e.at, [sa.func.coalesce(e.sequence, ""), sa.literal(""), sa.literal("converted")], [e.type == "converted"]


def _keyed(rows) -> Counter[tuple]:
    out: Counter[tuple] = Counter()
    for *key, n in rows:
        out[tuple(key)] += int(n)
    return out


def counted(conn: sa.Connection, kind: str, start: datetime, until: datetime, by: tuple[str, ...] = KEYS, *,
            before: bool = False) -> Counter[tuple]:
    """``kind`` counted from its table by ``by``, for times from ``start`` to ``until`` (``until`` left out if
    ``before``)."""
    at, columns, where = _source(kind)
    named = dict(zip(KEYS, [quarter_hour(conn, at), *columns]))
    keys = [named[k] for k in by]
    query = (sa.select(*keys, sa.func.count())
             .where(*where, at >= start, at < until if before else at <= until).group_by(*keys))
    return _keyed(conn.execute(query))


def counts(conn: sa.Connection, kind: str, start: datetime, until: datetime,
           by: tuple[str, ...] = KEYS) -> Counter[tuple]:
    """``{key: how many}`` of ``kind`` (:data:`SENDS`, :data:`CLICKS` or :data:`SALES`) whose time is within
    ``start``..``until`` (both included), a key being the values of ``by`` (of :data:`KEYS`, in that order);
    none left out as 0."""
    first, end = math.ceil(start.timestamp() / QUARTER), math.floor(until.timestamp() / QUARTER)
    if is_sqlite(conn) or first >= end:
        return +counted(conn, kind, start, until, by)
    # the kept counts and the moves not folded yet in one statement: a fold between two reads could lose rows
    kept = sa.union_all(*(sa.select(t.quarter, t.sequence, t.touch, t.state, t.n).where(
        t.kind == kind, t.quarter >= first, t.quarter < end) for t in (counts_t.c, moves_t.c))).subquery()
    keys = [kept.c[k] for k in by]
    out = _keyed(conn.execute(sa.select(*keys, sa.func.sum(kept.c.n)).group_by(*keys)))
    out.update(counted(conn, kind, start, _at(first), by, before=True))
    out.update(counted(conn, kind, _at(end), until, by))
    return +out


def _at(quarter: int) -> datetime:
    return datetime.fromtimestamp(quarter * QUARTER, timezone.utc)


def fold(conn: sa.Connection) -> None:
    """Add the rows of ``bucket_moves`` to ``bucket_counts``, in the caller's (write) transaction (SQLite:
    nothing to fold)."""
    if not is_sqlite(conn):
        conn.execute(sa.text(_FOLD))
