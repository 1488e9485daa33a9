"""Applying what providers tell us after a send: delivery receipts and inbound messages.

Whether they arrive by polling (the Iranian panels) or by webhook (Twilio, SendGrid, Mailgun),
they go through here. States only move forward (sent/unknown → delivered/undelivered), so the
same receipt twice changes nothing the second time.
"""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from providers.base import DeliveryReport, DeliveryState, EngagementEvent, InboundMessage

from .addresses import normalize_phone
from .clock import now
from .config import Config
from .engagement import apply_engagements
from .handoff import on_facts
from .events import record_event
from .installation import message_id_of, reference_prefix
from .models import RECEIPT_FROM, MessageStatus
from .store import apply
from .store.receipts import contact_by_phone, sent_by, touch_definition
from .kinds import BLACKLIST_REASON, INFORMATIONAL, PROMOTIONAL, suppress as suppress_contact
from .plan import plan_from_json
from .requeue import requeue
from .text import ascii_digits
from .transitions import Event, Facts, Outcome, change

__all__ = ["apply_reports", "apply_inbound", "apply_pushed", "configured_channel", "POLL_SCHEDULE", "classify_reply",
           "next_poll"]

#: after a send, ask for its final state after these delays (then give up: it stays `sent`)
POLL_SCHEDULE = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                 timedelta(hours=24))
OPT_OUT = {"11", "لغو", "لغو11", "stop", "unsubscribe", "cancel", "end", "quit", "stopall"}
OPT_IN = {"12", "start", "unstop", "yes"}


def next_poll(polls: int):
    """When to poll next after ``polls`` polls, or None when the schedule is used up."""
    return now() + POLL_SCHEDULE[polls] if polls < len(POLL_SCHEDULE) else None


def classify_reply(text: str) -> str:
    """``unsubscribed``, ``resubscribed`` or ``replied`` for an inbound SMS text."""
    word = ascii_digits(text or "").strip().lower().replace("\u200c", "").replace(" ", "").strip(".!")
    if word in OPT_OUT:
        return "unsubscribed"
    if word in OPT_IN:
        return "resubscribed"
    return "replied"


def configured_channel(config: Config, provider_name: str) -> str | None:
    """The channel ``provider_name`` is configured under (names are unique across channels), or None."""
    for channel, entries in config.settings.providers.items():
        if any(entry.get("name") == provider_name for entry in entries):
            return channel
    return None


def _find(conn: sa.Connection, provider: str, channel: str, reports: list[DeliveryReport]) -> dict:
    """The messages the reports name, among those ``provider`` sent on ``channel``:
    ``("p", provider id)`` and ``("o", our client reference)`` → row."""
    pids = [r.provider_message_id for r in reports if r.provider_message_id]
    refs = [r.message_id for r in reports if r.message_id]
    ours = {}
    if refs:
        prefix = reference_prefix(conn)
        ours = {ref: i for ref in refs if (i := message_id_of(prefix, ref)) is not None}
    by_pid, by_id = sent_by(conn, provider, channel, provider_ids=pids, ids=set(ours.values()))
    found = {("p", pid): row for pid, row in by_pid.items()}
    found.update({("o", ref): by_id[i] for ref, i in ours.items() if i in by_id})
    return found


def apply_reports(conn: sa.Connection, config: Config, provider_name: str, reports: list[DeliveryReport]) -> int:
    """Record delivered / undelivered / not-sent receipts; return how many messages changed state.

    A receipt applies only to a message ``provider_name`` sent on the channel it is configured for:
    one provider's receipts (or a forged one's) never touch another provider's messages. An ``UNTRACKED``
    report ends the polling of a sent message and leaves its state as it is; a ``NOT_SENT`` one schedules the
    message to be sent again (:mod:`engine.requeue`).
    """
    channel = configured_channel(config, provider_name)
    if channel is None:
        return 0
    found = _find(conn, provider_name, channel, reports)
    changes, blacklisted, untracked, not_sent = [], [], [], []
    facts = Facts(now())
    seen: set[int] = set()
    for report in reports:
        row = found.get(("p", report.provider_message_id)) or found.get(("o", str(report.message_id)))
        if row is None or row["id"] in seen or row["status"] not in RECEIPT_FROM:
            continue
        if report.state is DeliveryState.PENDING:
            continue
        seen.add(row["id"])
        if report.state is DeliveryState.UNTRACKED:  # nothing to learn any more: stop asking, keep the state
            if row["status"] == MessageStatus.SENT:
                why = report.reason or "the provider no longer reports on it"
                untracked.append(change(row, Outcome(Event.RECEIPT_TIMEOUT.value, f"{why}; it stays sent", provider_name),
                                        facts))
            continue
        if report.state is DeliveryState.NOT_SENT:  # accepted, never sent on: it goes out again
            not_sent.append((row, report))
            continue
        made = change(row, Outcome(report.state.value, report.reason, provider_name), facts)
        if report.recipient_blocked:
            reason = f"{BLACKLIST_REASON} ({provider_name}: {made.reason})"
            blacklisted.append((row, reason))
            made = change(row, Outcome(report.state.value, reason, provider_name), facts)
        changes.append(made)
    apply(conn, changes + untracked)
    requeued = requeue(conn, config, provider_name, not_sent) if not_sent else []
    for row, reason in blacklisted:
        # a promotional message refused: only promotional touches stop; an informational one: no line reached them
        suppress_contact(conn, row["contact_id"], row["channel"], reason, replace=False,
                         promotional_only=_touch_kind(conn, row) != INFORMATIONAL)
    return len(changes) + len(requeued)


def _touch_kind(conn: sa.Connection, row: dict) -> str:
    """The kind of the touch a message was sent for, from the sequence version its enrollment follows."""
    definition = touch_definition(conn, row["enrollment_id"])
    if definition is None:
        return PROMOTIONAL
    touches = plan_from_json(definition).touches
    return touches[row["touch_index"]].kind if 0 <= row["touch_index"] < len(touches) else PROMOTIONAL


def apply_inbound(conn: sa.Connection, config: Config, provider_name: str, inbound: list[InboundMessage]) -> int:
    """Turn inbound SMS into events: 11/لغو/STOP unsubscribe, 12/START resubscribe, anything else is a reply.

    Only a provider configured for SMS brings inbound SMS.
    """
    if configured_channel(config, provider_name) != "sms":
        return 0
    applied = 0
    for message in inbound:
        try:
            phone = normalize_phone(message.sender, config.settings.default_region)
        except ValueError:
            continue
        contact = contact_by_phone(conn, phone)
        if contact is None:
            continue
        kind = classify_reply(message.text)
        key = f"{provider_name}:{message.provider_message_id}" if message.provider_message_id else None
        result = record_event(conn, config, dict(contact), kind, channel="sms" if kind != "replied" else None,
                              idempotency_key=key, source=provider_name)
        applied += int(result.recorded)
    return applied


def apply_pushed(conn: sa.Connection, config: Config, provider_name: str,
                 items: list[DeliveryReport | InboundMessage | EngagementEvent]) -> int:
    """Apply what a provider pushed (reports, inbound messages, opens and clicks, mixed); return how many
    changed something."""
    reports = [i for i in items if isinstance(i, DeliveryReport)]
    inbound = [i for i in items if isinstance(i, InboundMessage)]
    engaged = [i for i in items if isinstance(i, EngagementEvent)]
    facts: list[dict] = []
    changed = ((apply_reports(conn, config, provider_name, reports) if reports else 0)
               + (apply_inbound(conn, config, provider_name, inbound) if inbound else 0)
               + (apply_engagements(conn, provider_name, engaged, facts, config=config) if engaged else 0))
    on_facts(conn, config, facts)
    return changed
