"""The journeys' statements: what a batch's contacts did (for waits and ``only_if``), and the A/B figures."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa

from ..models import ACCEPTED, MessageStatus
from . import driver

_DELIVERED = MessageStatus.DELIVERED.value
#: went out: accepted by a provider, or may have been
_WENT_OUT = "(" + ", ".join(f"'{s}'" for s in (*ACCEPTED, MessageStatus.UNKNOWN.value)) + ")"

__all__ = ["engagement_facts", "ab_winners", "variant_figures"]

_FIGURES = sa.text(
    "SELECT m.variant, COUNT(*), "
    f"SUM(CASE WHEN m.status = '{_DELIVERED}' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN EXISTS (SELECT 1 FROM engagements g WHERE g.message_id = m.id AND g.kind = 'clicked') "
    "THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN EXISTS (SELECT 1 FROM contact_events c WHERE c.message_id = m.id AND c.type = 'converted') "
    "THEN 1 ELSE 0 END), "
    "SUM(COALESCE((SELECT SUM(c.value) FROM contact_events c WHERE c.message_id = m.id AND c.type = 'converted'), 0)) "
    "FROM messages m WHERE m.sequence = :sequence AND m.touch = :touch AND m.variant IS NOT NULL "
    f"AND m.status IN {_WENT_OUT} AND m.sent_at >= :since GROUP BY m.variant")


def engagement_facts(conn: sa.Connection, enrollment_ids: Iterable[int]) -> list[tuple]:
    """``(enrollment_id, touch, kind, at)`` for ``enrollment_ids``, in ONE statement (three parts joined by
    UNION ALL): the first click and open of each touch (bots left out), each delivery, the first reply after
    enrolling (touch ``any``)."""
    ids = sorted(set(enrollment_ids))
    if not ids:
        return []
    m_sql, params = driver.is_in(conn, "m.enrollment_id", "f", ids)
    e_sql, e_params = driver.is_in(conn, "e.id", "g", ids)
    sql = (f"SELECT m.enrollment_id, m.touch, g.kind, MIN(g.at) FROM engagements g "
           f"JOIN messages m ON m.id = g.message_id WHERE {m_sql} AND g.kind IN ('clicked', 'opened') "
           f"GROUP BY m.enrollment_id, m.touch, g.kind "
           f"UNION ALL SELECT m.enrollment_id, m.touch, '{_DELIVERED}', m.updated_at FROM messages m "
           f"WHERE {m_sql} AND m.status = '{_DELIVERED}' "
           f"UNION ALL SELECT e.id, 'any', 'replied', MIN(c.at) FROM contact_events c "
           f"JOIN enrollments e ON e.contact_id = c.contact_id WHERE {e_sql} AND c.type = 'replied' "
           f"AND c.at >= e.enrolled_at GROUP BY e.id")
    return driver.execute(conn, sql, {**params, **e_params})


def ab_winners(conn: sa.Connection) -> dict[tuple[str, str], str]:
    """The winner of each decided A/B test, by (sequence, touch)."""
    return {(s, t): w for s, t, w in driver.execute(
        conn, "SELECT sequence, touch, winner FROM ab_tests WHERE winner IS NOT NULL", {})}


def variant_figures(conn: sa.Connection, sequence: str, touch: str, since: datetime) -> list[tuple[Any, ...]]:
    """Per variant of a touch sent since ``since``: (variant, sent, delivered, clicks, conversions, revenue)."""
    return [tuple(r) for r in conn.execute(_FIGURES, {"sequence": sequence, "touch": touch, "since": since})]
