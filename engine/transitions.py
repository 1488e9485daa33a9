"""A message's life, declared once: its states, the moves between them, and the change each outcome makes.

::

    pending ──previous touch ended──▶ scheduled ◀──deferred / retry / released──┐
       │                                 │                                      │
       └──contact left──▶ cancelled ◀────┤                                      │
                                         ├──checks──▶ skipped / failed          │
                                         └──claim + checks──▶ sending ──────────┘
                                                                │
                                   sent / failed / unknown ◀────┘
                                     │          │
                                     └──────────┴──receipt──▶ delivered / undelivered
                                     │          │
                                     └──────────┴──receipt "never sent on"──▶ requeued: scheduled, due now
                                                  (the next touch, if scheduled, goes back to pending)

``claimed`` (a lease taken before the checks) only goes back to ``scheduled``. A message that went out (or
may have) is scheduled again only when its provider reports that it accepted it and never sent it on
(:mod:`engine.requeue`). :data:`TRANSITIONS` is the
table; :func:`change` is the one function that turns what happened to a message (an :class:`Outcome`)
into the :class:`Change` to store, for the dispatcher, recovery, receipts and the poller alike. It reads
nothing and writes nothing: :func:`engine.store.apply` stores what it returns.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from providers.base import SendResult

from .journal import Change
from .models import LEASE_RELEASED, MessageStatus

__all__ = ["Event", "Outcome", "Facts", "Change", "TRANSITIONS", "ONLY_BY", "ENDS_TOUCH", "IllegalTransition", "change",
           "allowed", "POLL_AFTER_SEND", "scheduled_values", "EVENT_REACHES", "EVENT_FROM", "FIRST_EVENTS", "log_next"]

S = MessageStatus


class Event(str, enum.Enum):
    """What a delivery-log row of a message says happened. Most name the status reached; the rest say
    why a message is ``scheduled`` again or why its polling stopped."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"
    DEFERRED = "deferred"            # not now (window, frequency cap, paused providers): scheduled later
    RETRY = "retry"                  # a transient failure: scheduled again after a backoff
    RELEASED = "released"            # not sent (the worker stopped, a lease ended): scheduled again now
    RECEIPT_TIMEOUT = "receipt_timeout"  # no final state will come: polling stops, the status stays
    REQUEUED = "requeued"            # the provider accepted it and never sent it on: scheduled again now
    PENDING = "pending"              # the next touch of a requeued one: it waits for that one again


# the stored strings, read once (an enum member's ``.value`` is a descriptor call)
_PENDING, _SCHEDULED, _SENDING, _SENT, _FAILED, _UNKNOWN = (s.value for s in (S.PENDING, S.SCHEDULED, S.SENDING,
                                                                               S.SENT, S.FAILED, S.UNKNOWN))

#: which status may follow which; a status not listed as a key is final
TRANSITIONS: dict[S, frozenset[S]] = {
    S.PENDING: frozenset({S.SCHEDULED, S.CANCELLED, S.SKIPPED}),
    S.SCHEDULED: frozenset({S.SCHEDULED, S.SENDING, S.SKIPPED, S.FAILED, S.CANCELLED, S.PENDING}),
    S.CLAIMED: frozenset({S.SCHEDULED}),
    S.SENDING: frozenset({S.SENT, S.FAILED, S.UNKNOWN, S.SCHEDULED, S.DELIVERED, S.UNDELIVERED}),
    S.SENT: frozenset({S.DELIVERED, S.UNDELIVERED, S.SCHEDULED}),
    S.UNKNOWN: frozenset({S.DELIVERED, S.UNDELIVERED, S.SCHEDULED}),
}
#: moves only one kind of outcome may make: a message that went out, or may have, is sent again only when
#: its provider reports that it accepted it and never sent it on
ONLY_BY: dict[tuple[S, S], str] = {(S.SENT, S.SCHEDULED): Event.REQUEUED.value,
                                   (S.UNKNOWN, S.SCHEDULED): Event.REQUEUED.value}
#: the status each delivery-log event leaves a message in (``receipt_timeout`` leaves it as it was: sent)
EVENT_REACHES: dict[Event, S] = {
    Event.SCHEDULED: S.SCHEDULED, Event.SENDING: S.SENDING, Event.SENT: S.SENT, Event.DELIVERED: S.DELIVERED,
    Event.UNDELIVERED: S.UNDELIVERED, Event.FAILED: S.FAILED, Event.SKIPPED: S.SKIPPED, Event.CANCELLED: S.CANCELLED,
    Event.UNKNOWN: S.UNKNOWN, Event.DEFERRED: S.SCHEDULED, Event.RETRY: S.SCHEDULED, Event.RELEASED: S.SCHEDULED,
    Event.RECEIPT_TIMEOUT: S.SENT, Event.REQUEUED: S.SCHEDULED, Event.PENDING: S.PENDING,
}
#: the statuses each event is logged from (where its rule below applies)
EVENT_FROM: dict[Event, frozenset[S]] = {
    Event.SCHEDULED: frozenset({S.PENDING}), Event.SENDING: frozenset({S.SCHEDULED}),
    Event.SENT: frozenset({S.SENDING}), Event.DELIVERED: frozenset({S.SENDING, S.SENT, S.UNKNOWN}),
    Event.UNDELIVERED: frozenset({S.SENDING, S.SENT, S.UNKNOWN}), Event.FAILED: frozenset({S.SCHEDULED, S.SENDING}),
    Event.SKIPPED: frozenset({S.PENDING, S.SCHEDULED}), Event.CANCELLED: frozenset({S.PENDING, S.SCHEDULED}),
    Event.UNKNOWN: frozenset({S.SENDING}), Event.DEFERRED: frozenset({S.SCHEDULED, S.SENDING}),
    Event.RETRY: frozenset({S.SENDING}), Event.RELEASED: frozenset({S.CLAIMED, S.SENDING}),
    Event.RECEIPT_TIMEOUT: frozenset({S.SENT}), Event.REQUEUED: frozenset({S.SENT, S.UNKNOWN}),
    Event.PENDING: frozenset({S.SCHEDULED}),
}
#: the events a message's log begins with: its touch created due, or waiting for the touch before it
FIRST_EVENTS = frozenset({Event.SCHEDULED, Event.PENDING})
#: a touch that reached one of these is over: the next touch of its sequence is scheduled
ENDS_TOUCH = frozenset({S.SENT, S.FAILED, S.UNKNOWN, S.SKIPPED})
#: after a send, when its delivery state is first asked for
POLL_AFTER_SEND = timedelta(minutes=1)


def allowed(before: str, after: str, kind: str | None = None) -> bool:
    """Whether a message may move from status ``before`` to ``after`` (by an outcome of ``kind``: some moves
    only one kind may make)."""
    return after in TRANSITIONS.get(S(before), ()) and ONLY_BY.get((before, after), kind) == kind


def log_next(event: str | None) -> frozenset[str]:
    """The events that may follow ``event`` in a message's delivery log (``None``: its first row), as
    :data:`TRANSITIONS` allows them. A claim (``scheduled`` → ``claimed``) writes no log row; an event that
    leaves the status as it was (``receipt_timeout``) happens once."""
    if event is None:
        return frozenset(e.value for e in FIRST_EVENTS)
    status = EVENT_REACHES[Event(event)]
    statuses = {status, S.CLAIMED} if status == S.SCHEDULED else {status}
    return frozenset(e.value for e, froms in EVENT_FROM.items() for s in statuses & froms
                     if allowed(s, EVENT_REACHES[e], e.value) or (EVENT_REACHES[e] == s and e.value != event))


class IllegalTransition(ValueError):
    """An outcome that would move a message where the table does not allow: a bug in the caller."""


@dataclass
class Outcome:
    """What happened to a message. ``kind`` is an :class:`Event` or one of the send's own kinds:

    * ``sending``: the checks passed and it goes to ``provider``;
    * ``sent``, ``failed``, ``unknown``, ``retry``, ``deferred``, ``released``: a send's result;
    * ``skipped``, ``cancelled``, ``deferred`` (with ``until``): the checks' verdict;
    * ``lost``: recovery found no provider with our id, so it is sent again;
    * ``delivered``, ``undelivered``, ``receipt_timeout``: a receipt;
    * ``requeued``: a receipt saying the provider accepted it and never sent it on;
    * ``pending``: the touch after a requeued one waits for it again;
    * ``due`` (with ``until``): a touch becomes due at ``until``.
    """

    kind: str
    reason: str | None = None
    provider: str | None = None
    result: SendResult | None = None
    suppress: bool = False  # the recipient can never get this channel
    promotional_only: bool = False  # ...for promotional touches only (the operators' advertising blacklist)
    retry_after: float | None = None
    blocked: dict[str, str] = field(default_factory=dict)  # provider name → why it is paused
    until: datetime | None = None  # a deferral's end
    variant: str | None = None  # the A/B variant a send renders (kept on the message)


@dataclass(slots=True)
class Facts:
    """What a change needs besides the message and the outcome."""

    at: datetime
    max_attempts: int = 1
    backoff_seconds: float = 0.0
    lease: Mapping[str, Any] | None = None  # the lease columns of a send
    segments: int | None = None  # of the SMS sent


def change(message: dict[str, Any], outcome: Outcome, facts: Facts) -> Change:
    """The change ``outcome`` makes to ``message`` (a row as read, with its current ``status``).

    Raises :class:`IllegalTransition` for a move :data:`TRANSITIONS` does not allow.
    """
    status = message["status"]
    made = _RULES[outcome.kind](message, outcome, facts)
    after = made.values.get("status", status)
    if after != status and (after not in TRANSITIONS.get(status, ())
                            or ONLY_BY.get((status, after), outcome.kind) != outcome.kind):
        raise IllegalTransition(f"message {message.get('id')}: {status} → {after} ({outcome.kind}) is not allowed")
    return made


def scheduled_values(due: datetime, first_look: timedelta = timedelta(0)) -> dict[str, Any]:
    """The columns of a pending touch that becomes due at ``due`` (and is first claimed ``first_look`` later)."""
    return {"status": _SCHEDULED, "due_at": due, "next_attempt_at": due + first_look}


# -- the rules, one per kind of outcome -------------------------------------------------------
def _sending(m: dict, o: Outcome, f: Facts) -> Change:
    values = {"status": _SENDING, "attempt": m["attempt"] + 1, "sent_at": f.at, "provider": o.provider,
              **(f.lease or {})}
    if o.variant is not None:
        values["variant"] = o.variant
    return Change(m, _SENDING, values, provider=o.provider)


def _ended(m: dict, o: Outcome, f: Facts) -> Change:
    """Failed, skipped or cancelled: nothing more is tried for this touch."""
    values = {"status": o.kind, "reason": o.reason, "next_attempt_at": None, **LEASE_RELEASED}
    if m["status"] == S.SENDING:
        values["provider"] = o.provider
    return Change(m, o.kind, values, reason=o.reason, provider=o.provider)


def _sent(m: dict, o: Outcome, f: Facts) -> Change:
    result = o.result
    return Change(m, _SENT, {
        "status": _SENT, "provider": o.provider, "reason": o.reason,
        "provider_message_id": result.provider_message_id if result else None,
        "cost": result.cost if result else None, "segments": f.segments, "poll_at": f.at + POLL_AFTER_SEND,
        **LEASE_RELEASED}, reason=o.reason, provider=o.provider)


def _unknown(m: dict, o: Outcome, f: Facts) -> Change:
    values = {"status": _UNKNOWN, "reason": o.reason, **LEASE_RELEASED}
    if o.provider:
        values["provider"] = o.provider
    return Change(m, _UNKNOWN, values, reason=o.reason, provider=o.provider)


def _released(m: dict, o: Outcome, f: Facts) -> Change:
    """Not sent: scheduled again now; a send's attempt is given back."""
    values = {"status": _SCHEDULED, "next_attempt_at": f.at, "sent_at": None, "reason": o.reason,
              **LEASE_RELEASED}
    if m["status"] == S.SENDING:
        values["attempt"] = m["attempt"] - 1
    return Change(m, Event.RELEASED.value, values, reason=o.reason)


def _lost(m: dict, o: Outcome, f: Facts) -> Change:
    """Recovery found no provider with our id: scheduled again now, the attempt counted."""
    return Change(m, Event.RELEASED.value, {"status": _SCHEDULED, "next_attempt_at": f.at, "sent_at": None,
                                            "reason": o.reason, **LEASE_RELEASED}, reason=o.reason)


def _retry(m: dict, o: Outcome, f: Facts) -> Change:
    attempt = m["attempt"]
    if attempt >= f.max_attempts:
        reason = f"retries exhausted after {attempt} attempts: {o.reason}"
        return Change(m, _FAILED, {"status": _FAILED, "reason": reason, "provider": o.provider,
                                              "next_attempt_at": None, **LEASE_RELEASED}, reason=reason)
    delay = o.retry_after or f.backoff_seconds * 2 ** max(0, attempt - 1)
    return _again(m, o, f, Event.RETRY, f.at + timedelta(seconds=delay), attempt)


def _deferred(m: dict, o: Outcome, f: Facts) -> Change:
    if m["status"] == S.SENDING:  # every provider paused, blocked or out of its hours: the attempt is given back
        until = o.until or f.at + timedelta(seconds=f.backoff_seconds)
        return _again(m, o, f, Event.DEFERRED, until, m["attempt"] - 1)
    return Change(m, Event.DEFERRED.value, {"status": _SCHEDULED, "next_attempt_at": o.until,
                                            "reason": o.reason, **LEASE_RELEASED}, reason=o.reason)


def _again(m: dict, o: Outcome, f: Facts, event: Event, until: datetime, attempt: int) -> Change:
    reason = f"{o.reason}; next attempt at {until.isoformat()}"
    return Change(m, event.value, {"status": _SCHEDULED, "next_attempt_at": until, "attempt": attempt,
                                   "reason": reason, "sent_at": None, **LEASE_RELEASED},
                  reason=reason, provider=o.provider)


def _receipt(m: dict, o: Outcome, f: Facts) -> Change:
    reason = o.reason or ("delivered to the handset" if o.kind == Event.DELIVERED else "not delivered")
    return Change(m, o.kind, {"status": o.kind, "reason": reason[:500], "poll_at": None}, reason=reason,
                  provider=o.provider)


def _receipt_timeout(m: dict, o: Outcome, f: Facts) -> Change:
    return Change(m, Event.RECEIPT_TIMEOUT.value, {"poll_at": None}, reason=o.reason, provider=o.provider)


def _requeued(m: dict, o: Outcome, f: Facts) -> Change:
    return Change(m, Event.REQUEUED.value, {"status": _SCHEDULED, "next_attempt_at": f.at, "sent_at": None,
                                            "poll_at": None, "reason": (o.reason or "")[:500], **LEASE_RELEASED},
                  reason=o.reason, provider=o.provider)


def _due(m: dict, o: Outcome, f: Facts) -> Change:
    return Change(m, Event.SCHEDULED.value, {**scheduled_values(o.until), "reason": o.reason}, reason=o.reason)


def _waits_again(m: dict, o: Outcome, f: Facts) -> Change:
    return Change(m, Event.PENDING.value, {"status": _PENDING, "due_at": None, "next_attempt_at": None,
                                           "reason": o.reason}, reason=o.reason)


_RULES = {
    "sending": _sending, "sent": _sent, "failed": _ended, "skipped": _ended, "cancelled": _ended,
    "unknown": _unknown, "released": _released, "lost": _lost, "retry": _retry, "deferred": _deferred,
    "delivered": _receipt, "undelivered": _receipt, "receipt_timeout": _receipt_timeout, "requeued": _requeued,
    "pending": _waits_again, "due": _due,
}
