"""Ending enrollments: the one way an enrollment stops early (an exit event, a handoff, stop, unenroll,
erasure), cancelling its open messages through the state machine."""
from __future__ import annotations

import sqlalchemy as sa

from .clock import now
from .models import Enrollment, Message, MessageStatus, OPEN_STATUSES
from .store import apply
from .transitions import Facts, Outcome, change

__all__ = ["end_enrollments"]

enrollments = Enrollment.__table__
messages = Message.__table__


def end_enrollments(conn: sa.Connection, enrollment_rows: list[dict], status: str, reason: str) -> int:
    """End enrollments and cancel their open messages (with a log row each); return how many were cancelled."""
    if not enrollment_rows:
        return 0
    stamp = now()
    ids = [e["id"] for e in enrollment_rows]
    conn.execute(sa.update(enrollments).where(enrollments.c.id.in_(ids), enrollments.c.status == "active")
                 .values(status=status, ended_reason=reason, ended_at=stamp))
    open_rows = conn.execute(sa.select(messages).where(messages.c.enrollment_id.in_(ids),
                                                       messages.c.status.in_(OPEN_STATUSES))).mappings().all()
    cancel = Outcome(MessageStatus.CANCELLED.value, reason)
    apply(conn, [change(dict(m), cancel, Facts(stamp)) for m in open_rows], at=stamp)
    return len(open_rows)
