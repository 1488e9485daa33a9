"""Sending again a message the provider accepted and then never sent on (a ``NOT_SENT`` receipt).

IPPanel, for one, accepts a send and only later reports the bulk as "Insufficient credit for sending"
(:mod:`providers.ippanel`). Nothing reached an operator, so the message is not undelivered and says nothing
about the contact: it goes back to ``scheduled``, due now, and is sent again like any due message. Where
the account is why (``account_blocked``), the provider is paused first, so the message fails over to the
next provider, or waits while every one is paused.

The message had counted as sent, so what followed from that is undone: the touch after it goes back to
``pending`` (it becomes due again after this one is sent), and an enrollment this touch completed is
active again. A second receipt of the same kind finds the message ``scheduled`` and changes nothing.
The moves (``requeued``, ``pending``) are declared in :mod:`engine.transitions`.
"""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from providers.base import DeliveryReport

from .clock import now
from .config import Config
from .journal import Change
from .store import apply, pause_providers
from .store.receipts import reopen_completed, scheduled_after
from .transitions import Event, Facts, Outcome, change

__all__ = ["requeue"]


def requeue(conn: sa.Connection, config: Config, provider_name: str,
            found: list[tuple[dict, DeliveryReport]]) -> list[Change]:
    """Schedule each message (row, its ``NOT_SENT`` report) again now; pause the provider where its account
    is why. Returns the changes applied."""
    facts = Facts(now())
    changes, blocked = [], {}
    for row, report in found:
        why = report.reason or "the provider never sent it"
        reason = f"accepted by {provider_name}, then not sent ({why}); scheduled to be sent again"
        if report.account_blocked:
            blocked[provider_name] = f"{why} (on a message it had accepted)"
            reason += f", through another provider while {provider_name} is paused"
        changes.append(change(row, Outcome(Event.REQUEUED.value, reason, provider_name), facts))
    applied = apply(conn, changes, at=facts.at)
    for made in applied:
        _undo_what_followed(conn, made.message, facts)
    pause_providers(conn, blocked, until=facts.at + timedelta(seconds=config.settings.worker.provider_pause_seconds),
                    at=facts.at, worker=None)
    return applied


def _undo_what_followed(conn: sa.Connection, row: dict, facts: Facts) -> None:
    """The next touch waits for this one again; an enrollment it completed goes on."""
    waits = Outcome(Event.PENDING.value, f"waits for {row['touch']} again: it was not sent and goes out again")
    apply(conn, [change(r, waits, facts) for r in scheduled_after(conn, row)], at=facts.at)
    reopen_completed(conn, row["enrollment_id"])
