"""Sending again a message the provider accepted and then never sent on (a ``NOT_SENT`` receipt).

IPPanel, for one, accepts a send and only later reports the bulk as "Insufficient credit for sending"
(:mod:`providers.ippanel`). Nothing reached an operator, so the message is not undelivered and says nothing
about the contact: it goes back to ``scheduled``, due now, and is sent again like any due message. Where
the account is why (``account_blocked``), the provider is paused first, so the message fails over to the
next provider, or waits while every one is paused.

The message had counted as sent, so what followed from that is undone: the touch after it goes back to
``pending`` (it becomes due again after this one is sent), and an enrollment this touch completed is
active again. A second receipt of the same kind finds the message ``scheduled`` and changes nothing.
"""
from __future__ import annotations

import sqlalchemy as sa

from providers.base import DeliveryReport

from .clock import now
from .config import Config
from .journal import Change, apply
from .models import LEASE_RELEASED, Enrollment, Message, MessageStatus
from .pauses import pause_providers

__all__ = ["requeue"]

messages = Message.__table__
enrollments = Enrollment.__table__
PENDING, SCHEDULED = MessageStatus.PENDING.value, MessageStatus.SCHEDULED.value


def requeue(conn: sa.Connection, config: Config, provider_name: str,
            found: list[tuple[dict, DeliveryReport]]) -> list[Change]:
    """Schedule each message (row, its ``NOT_SENT`` report) again now; pause the provider where its account
    is why. Returns the changes applied."""
    at = now()
    changes, blocked = [], {}
    for row, report in found:
        why = report.reason or "the provider never sent it"
        reason = f"accepted by {provider_name}, then not sent ({why}); scheduled to be sent again"
        if report.account_blocked:
            blocked[provider_name] = f"{why} (on a message it had accepted)"
            reason += f", through another provider while {provider_name} is paused"
        changes.append(Change(row, "requeued", {"status": SCHEDULED, "next_attempt_at": at, "sent_at": None,
                                                "poll_at": None, "reason": reason[:500], **LEASE_RELEASED},
                              reason=reason, provider=provider_name))
    applied = apply(conn, changes, at=at)
    for change in applied:
        _undo_what_followed(conn, change.message, at)
    pause_providers(conn, blocked, at=at, seconds=config.settings.worker.provider_pause_seconds, worker=None)
    return applied


def _undo_what_followed(conn: sa.Connection, row: dict, at) -> None:
    """The next touch waits for this one again; an enrollment it completed goes on."""
    following = [dict(r) for r in conn.execute(sa.select(messages).where(
        messages.c.enrollment_id == row["enrollment_id"], messages.c.touch_index == row["touch_index"] + 1,
        messages.c.status == SCHEDULED)).mappings()]
    reason = f"waits for {row['touch']} again: it was not sent and goes out again"
    apply(conn, [Change(r, PENDING, {"status": PENDING, "due_at": None, "next_attempt_at": None, "reason": reason},
                        reason=reason) for r in following], at=at)
    conn.execute(sa.update(enrollments).where(
        enrollments.c.id == row["enrollment_id"], enrollments.c.status == "completed",
        enrollments.c.ended_reason == "every touch done").values(status="active", ended_reason=None, ended_at=None))
