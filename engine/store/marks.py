"""What a run and a message carry for the KPI page's funnels: a run's first send and a person's first click on one
of its messages (``enrollments.first_sent_at``, ``first_clicked_at``), and a message's clicks by a person and the
conversions credited to it (``messages.clicks``, ``credits``).

On PostgreSQL the database keeps them: triggers (migration ``0023_run_marks``) write them in the transaction that
sends a message, moves it out of the sent states, records or deletes a click or a credited conversion (on
``messages`` once per statement: a worker's batch of sends updates its runs in one statement). On SQLite
the same values are counted from the tables where a report asks for them (:func:`sent_by`, :func:`clicked_by`
give the condition for either database).
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from ..models import COUNTS_AS_SENT, Engagement, EngagementKind, Enrollment, Message
from .driver import is_sqlite

__all__ = ["sent_by", "clicked_by"]

enrollments_t = Enrollment.__table__
messages_t = Message.__table__
engagements_t = Engagement.__table__


def sent_by(conn: sa.Connection, until: datetime) -> sa.ColumnElement[bool]:
    """Whether a run's first send was at ``until`` or before: kept (PostgreSQL), or whether one of its messages
    that count as sent was sent by then (SQLite; an EXISTS stops at the first)."""
    if not is_sqlite(conn):
        return enrollments_t.c.first_sent_at <= until
    m = messages_t.c
    return sa.exists().where(m.enrollment_id == enrollments_t.c.id, m.sent_at <= until, m.status.in_(COUNTS_AS_SENT))


def clicked_by(conn: sa.Connection, until: datetime) -> sa.ColumnElement[bool]:
    """Whether a person had clicked one of a run's messages by ``until``: kept (PostgreSQL) or counted (SQLite)."""
    if not is_sqlite(conn):
        return enrollments_t.c.first_clicked_at <= until
    m, g = messages_t.c, engagements_t.c
    return (sa.exists().select_from(engagements_t.join(messages_t, m.id == g.message_id))
            .where(m.enrollment_id == enrollments_t.c.id, g.kind == EngagementKind.CLICKED.value, g.at <= until))
