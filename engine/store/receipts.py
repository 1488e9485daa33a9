"""What receipts, inbound messages and the delivery poller read and write."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

import sqlalchemy as sa

from ..models import Contact, Enrollment, EnrollmentStatus, Message, MessageStatus, SequenceVersion, status_is

__all__ = ["sent_by", "touch_definition", "contact_by_phone", "due_receipts", "stop_polling", "advance_polls",
           "scheduled_after", "reopen_completed"]

messages = Message.__table__
contacts = Contact.__table__
enrollments = Enrollment.__table__
versions = SequenceVersion.__table__


def sent_by(conn: sa.Connection, provider: str, channel: str, *, provider_ids: list[str],
            ids: set[int]) -> tuple[dict[str, dict], dict[int, dict]]:
    """Messages ``provider`` sent on ``channel``, by its ids (``provider_ids``) and by ours (``ids``)."""
    sent = sa.and_(messages.c.provider == provider, messages.c.channel == channel)
    by_pid, by_id = {}, {}
    if provider_ids:
        for row in conn.execute(sa.select(messages).where(messages.c.provider_message_id.in_(provider_ids),
                                                          sent)).mappings():
            by_pid[row["provider_message_id"]] = dict(row)
    if ids:
        by_id = {r["id"]: dict(r) for r in conn.execute(sa.select(messages).where(messages.c.id.in_(ids), sent))
                 .mappings()}
    return by_pid, by_id


def touch_definition(conn: sa.Connection, enrollment_id: int) -> str | None:
    """The definition (JSON) of the sequence version an enrollment follows."""
    return conn.execute(sa.select(versions.c.definition).join(enrollments, enrollments.c.sequence_hash == versions.c.hash)
                        .where(enrollments.c.id == enrollment_id)).scalar()


def contact_by_phone(conn: sa.Connection, phone: str) -> dict[str, Any] | None:
    """The contact with this (normalized) phone, or None."""
    row = conn.execute(sa.select(contacts).where(contacts.c.phone == phone)).mappings().first()
    return dict(row) if row is not None else None


def due_receipts(conn: sa.Connection, at: datetime, limit: int) -> list[dict[str, Any]]:
    """Sent messages whose next receipt poll is due at ``at``, the most overdue first."""
    return [dict(r) for r in conn.execute(
        sa.select(messages).where(status_is(messages.c.status, MessageStatus.SENT.value), messages.c.poll_at <= at)
        .order_by(messages.c.poll_at).limit(limit)).mappings()]


def stop_polling(conn: sa.Connection, ids: list[int]) -> None:
    """Ask no more about these messages' receipts."""
    conn.execute(sa.update(messages).where(messages.c.id.in_(ids)).values(poll_at=None))


def advance_polls(conn: sa.Connection, ids: list[int], next_poll: Callable[[int], datetime | None]) -> list[int]:
    """Of ``ids``, the messages still sent and polled: count one more poll and set the next (``next_poll(polls)``,
    None to stop). Returns the ids whose polling ended now."""
    still = conn.execute(sa.select(messages.c.id, messages.c.polls).where(
        messages.c.id.in_(ids), messages.c.status == MessageStatus.SENT.value, messages.c.poll_at.is_not(None))).all()
    gave_up = []
    for message_id, polls in still:
        when = next_poll(polls + 1)
        conn.execute(sa.update(messages).where(messages.c.id == message_id).values(poll_at=when, polls=polls + 1))
        if when is None:
            gave_up.append(message_id)
    return gave_up


def scheduled_after(conn: sa.Connection, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The touch after message ``row`` of its enrollment, when it is scheduled (as one row or none)."""
    return [dict(r) for r in conn.execute(sa.select(messages).where(
        messages.c.enrollment_id == row["enrollment_id"], messages.c.touch_index == row["touch_index"] + 1,
        messages.c.status == MessageStatus.SCHEDULED.value)).mappings()]


def reopen_completed(conn: sa.Connection, enrollment_id: int) -> None:
    """Make the enrollment active again if its last touch completed it."""
    conn.execute(sa.update(enrollments).where(
        enrollments.c.id == enrollment_id, enrollments.c.status == EnrollmentStatus.COMPLETED.value,
        enrollments.c.ended_reason == "every touch done",
    ).values(status=EnrollmentStatus.ACTIVE.value, ended_reason=None, ended_at=None))
