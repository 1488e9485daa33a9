"""What a run and a message carry for the KPI page's funnels: a run's first send and a person's first click on one
of its messages (``enrollments.first_sent_at``, ``first_clicked_at``), and a message's clicks by a person and the
conversions credited to it (``messages.clicks``, ``credits``).

On PostgreSQL the database keeps them: triggers (migration ``0023_run_marks``) write them in the transaction that
sends a message, moves it out of the sent states, records or deletes a click or a credited conversion (on
``messages`` once per statement: a worker's batch of sends updates its runs in one statement). On SQLite
the same values are counted from the tables where a report asks for them (:func:`first_sent`, :func:`first_clicked`
give the expression for either database).
"""
from __future__ import annotations

import sqlalchemy as sa

from ..models import COUNTS_AS_SENT, Engagement, EngagementKind, Enrollment, Message
from .driver import is_sqlite

__all__ = ["first_sent", "first_clicked", "counted_first_sent", "counted_first_clicked"]

enrollments_t = Enrollment.__table__
messages_t = Message.__table__
engagements_t = Engagement.__table__


def counted_first_sent() -> sa.ScalarSelect:
    """A run's first send (its messages that count as sent), counted from ``messages``."""
    m = messages_t.c
    return (sa.select(sa.func.min(m.sent_at))
            .where(m.enrollment_id == enrollments_t.c.id, m.sent_at.is_not(None), m.status.in_(COUNTS_AS_SENT))
            .scalar_subquery())


def counted_first_clicked() -> sa.ScalarSelect:
    """A person's first click on one of a run's messages, counted from ``engagements`` and ``messages``."""
    m, g = messages_t.c, engagements_t.c
    return (sa.select(sa.func.min(g.at)).select_from(engagements_t.join(messages_t, m.id == g.message_id))
            .where(m.enrollment_id == enrollments_t.c.id, g.kind == EngagementKind.CLICKED.value)
            .scalar_subquery())


def first_sent(conn: sa.Connection) -> sa.ColumnElement:
    """A run's first send: kept (PostgreSQL) or counted (SQLite)."""
    return counted_first_sent() if is_sqlite(conn) else enrollments_t.c.first_sent_at


def first_clicked(conn: sa.Connection) -> sa.ColumnElement:
    """A person's first click on one of a run's messages: kept (PostgreSQL) or counted (SQLite)."""
    return counted_first_clicked() if is_sqlite(conn) else enrollments_t.c.first_clicked_at
