"""What the KPI page counts per quarter hour: the messages sent then (``sent`` or ``delivered``, by sequence and
touch), a person's clicks and the conversions, each by its time; and by the quarter hour a message was sent: what
the messages sent then cost (their SMS segments and emails, by provider and channel, per sequence and per source),
how many of them a person clicked and how many conversions were credited to them.

On PostgreSQL the database keeps them (``bucket_counts``): triggers (migrations ``0022_kpi_page``,
``0023_run_marks`` and ``0026_source_spend``) append each move into or out of a count to ``bucket_moves`` in the
transaction that made it, and :func:`fold` adds those rows to ``bucket_counts`` and deletes them in one statement
(the rows it deletes are the rows it adds). A window reads the kept counts of the quarter hours wholly within it
and counts the tables only for the part of a quarter hour at each end, so its figures are the tables' exactly.

On SQLite the whole window is counted from the tables (through the indexes on their times).
"""
from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timezone
from typing import NamedTuple

import sqlalchemy as sa

from ..models import (COUNTS_AS_SENT, BucketCount, BucketMove, ContactEvent, Engagement, EngagementKind, Message,
                      MessageStatus)
from .driver import is_sqlite
from .reports import QUARTER, quarter_hour

__all__ = ["SENDS", "CLICKS", "SALES", "SPEND", "CLICKED", "CREDITED", "SOURCED", "KEYS", "counts", "counted", "fold"]

SENDS, CLICKS, SALES = "sends", "clicks", "sales"
#: by the message's send time: ``spend`` keyed by sequence, provider (as ``touch``) and channel (as ``state``),
#: counting SMS segments (at least one a message) and emails; ``clicked``: the messages a person clicked;
#: ``credited``: the conversions credited to them
SPEND, CLICKED, CREDITED = "spend", "clicked", "credited"
#: ``spend`` keyed by the message's source (its copy of the contact's, '' for none) in place of the sequence;
#: kept for sources of up to :data:`KEPT_SOURCE` characters, the longer ones counted from their own index
SOURCED = "sourced"
KEPT_SOURCE = 100
_LONG_SOURCED = "long"
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


class _Source(NamedTuple):
    """Where a kind is counted from in the tables: its rows, their time, their key after the quarter hour, which
    rows count, and what each adds."""

    rows: sa.FromClause
    at: sa.ColumnElement
    key: list[sa.ColumnElement]
    where: list[sa.ColumnElement]
    amount: sa.ColumnElement


def _source(kind: str) -> _Source:
    m, g, e = messages_t.c, engagements_t.c, events_t.c
    one = sa.literal(1)
    clicked = g.kind == EngagementKind.CLICKED.value
    if kind == SENDS:
        state = sa.case((m.status == MessageStatus.DELIVERED.value, "delivered"), else_="sent")
        return _Source(messages_t, m.sent_at, [m.sequence, m.touch, state], [m.status.in_(COUNTS_AS_SENT)], one)
    if kind == CLICKS:
        return _Source(engagements_t, g.at, [sa.func.coalesce(g.sequence, ""), sa.func.coalesce(g.touch, ""),
                                             sa.literal("clicked")], [clicked], one)
    if kind == SALES:
        return _Source(events_t, e.at, [sa.func.coalesce(e.sequence, ""), sa.literal(""), sa.literal("converted")],
                       [e.type == "converted"], one)
    units = sa.case((sa.and_(m.channel == "sms", sa.func.coalesce(m.segments, 0) != 0), m.segments), else_=1)
    if kind == SPEND:
        return _Source(messages_t, m.sent_at, [m.sequence, sa.func.coalesce(m.provider, ""), m.channel],
                       [m.status.in_(COUNTS_AS_SENT)], units)
    if kind in (SOURCED, _LONG_SOURCED):
        # the long ones as the partial index ix_messages_long_source says (a literal, for SQLite to use it)
        which = (sa.text(f"length(messages.source) > {KEPT_SOURCE}") if kind == _LONG_SOURCED
                 else sa.func.coalesce(sa.func.length(m.source), 0) <= KEPT_SOURCE)
        key = [sa.func.coalesce(m.source, ""), sa.func.coalesce(m.provider, ""), m.channel]
        return _Source(messages_t, m.sent_at, key, [m.status.in_(COUNTS_AS_SENT), which], units)
    if kind == CLICKED:
        return _Source(messages_t, m.sent_at, [m.sequence, m.touch, sa.literal("clicked")],
                       [m.status.in_(COUNTS_AS_SENT), sa.exists().where(g.message_id == m.id, clicked)], one)
    return _Source(events_t.join(messages_t, m.id == e.message_id), m.sent_at,
                   [m.sequence, m.touch, sa.literal("converted")],
                   [m.status.in_(COUNTS_AS_SENT), e.type == "converted"], one)


def _keyed(rows) -> Counter[tuple]:
    out: Counter[tuple] = Counter()
    for *key, n in rows:
        if n is not None:
            out[tuple(key)] += int(n)
    return out


def counted(conn: sa.Connection, kind: str, start: datetime, until: datetime, by: tuple[str, ...] = KEYS, *,
            before: bool = False) -> Counter[tuple]:
    """``kind`` counted from its table by ``by``, for times from ``start`` to ``until`` (``until`` left out if
    ``before``)."""
    source = _source(kind)
    at = source.at
    named = dict(zip(KEYS, [quarter_hour(conn, at), *source.key]))
    keys = [named[k] for k in by]
    query = (sa.select(*keys, sa.func.sum(source.amount)).select_from(source.rows)
             .where(*source.where, at >= start, at < until if before else at <= until).group_by(*keys))
    return _keyed(conn.execute(query))


def counts(conn: sa.Connection, kind: str, start: datetime, until: datetime,
           by: tuple[str, ...] = KEYS) -> Counter[tuple]:
    """``{key: how many}`` of ``kind`` (:data:`SENDS`, :data:`CLICKS`, :data:`SALES`, :data:`SPEND`,
    :data:`CLICKED`, :data:`CREDITED` or :data:`SOURCED`) whose time is within
    ``start``..``until`` (both included), a key being the values of ``by`` (of :data:`KEYS`, in that order);
    none left out as 0."""
    out = _counts(conn, kind, start, until, by)
    if kind == SOURCED:
        out.update(counted(conn, _LONG_SOURCED, start, until, by))
    return +out


def _counts(conn: sa.Connection, kind: str, start: datetime, until: datetime, by: tuple[str, ...]) -> Counter[tuple]:
    """:func:`counts` of what ``kind`` keeps, zeros not dropped yet: on PostgreSQL the kept counts of the quarter
    hours wholly within the window and the tables counted for its edges; on SQLite the tables."""
    first, end = math.ceil(start.timestamp() / QUARTER), math.floor(until.timestamp() / QUARTER)
    if is_sqlite(conn) or first >= end:
        return counted(conn, kind, start, until, by)
    # the kept counts and the moves not folded yet in one statement: a fold between two reads could lose rows
    kept = sa.union_all(*(sa.select(t.quarter, t.sequence, t.touch, t.state, t.n).where(
        t.kind == kind, t.quarter >= first, t.quarter < end) for t in (counts_t.c, moves_t.c))).subquery()
    keys = [kept.c[k] for k in by]
    out = _keyed(conn.execute(sa.select(*keys, sa.func.sum(kept.c.n)).group_by(*keys)))
    out.update(counted(conn, kind, start, _at(first), by, before=True))
    out.update(counted(conn, kind, _at(end), until, by))
    return out


def _at(quarter: int) -> datetime:
    return datetime.fromtimestamp(quarter * QUARTER, timezone.utc)


def fold(conn: sa.Connection) -> None:
    """Add the rows of ``bucket_moves`` to ``bucket_counts``, in the caller's (write) transaction (SQLite:
    nothing to fold)."""
    if not is_sqlite(conn):
        conn.execute(sa.text(_FOLD))
