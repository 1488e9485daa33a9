"""What contacts do — converted, replied, unsubscribed, resubscribed — and what it ends at once.

This is the one module that applies contact events to stored state, whether they come from
the CLI, the API, a provider webhook or an inbound SMS.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from .clock import now, to_utc
from .config import Config
from .errors import InputError
from .store import apply
from .transitions import Facts, Outcome, change
from .models import Contact, ContactEvent, Enrollment, EnrollmentStatus, Message, MessageStatus, Offer, OPEN_STATUSES

__all__ = ["EVENT_TYPES", "EventResult", "record_event", "end_enrollments"]

EVENT_TYPES = ("converted", "replied", "unsubscribed", "resubscribed")
contacts = Contact.__table__
enrollments = Enrollment.__table__
messages = Message.__table__
events = ContactEvent.__table__
offers = Offer.__table__


@dataclass
class EventResult:
    recorded: bool
    ended: list[str] = field(default_factory=list)  # sequence names whose enrollment ended
    cancelled: int = 0
    note: str = ""
    warning: str = ""  # recorded, but worth a look (e.g. the same sale twice within a minute)


#: a conversion identical to one recorded this recently (same contact and value, no shared key) is warned about
DUPLICATE_CONVERSION_WINDOW = timedelta(minutes=1)


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


def record_event(conn: sa.Connection, config: Config, contact: dict, kind: str, *, sequence: str | None = None,
                 channel: str | None = None, value: float | None = None, idempotency_key: str | None = None,
                 source: str = "cli") -> EventResult:
    """Record one event and end or pause what it must, in the caller's transaction."""
    if kind not in EVENT_TYPES:
        raise InputError(f"unknown event {kind!r}; use one of {', '.join(EVENT_TYPES)}")
    if channel not in (None, "all", "sms", "email"):
        raise InputError(f"unknown channel {channel!r}; use sms, email or all")
    if sequence is not None:
        config.sequence(sequence)
    if idempotency_key:
        seen = conn.execute(sa.select(events.c.id).where(events.c.idempotency_key == idempotency_key)).first()
        if seen:
            return EventResult(recorded=False, note=f"already recorded (idempotency key {idempotency_key})")
    stamp = now()
    attributed = sequence
    if kind == "converted" and sequence is None:
        # a sale without a named sequence is credited (revenue, stock) to the latest one the contact is in
        attributed = conn.execute(sa.select(enrollments.c.sequence).where(
            enrollments.c.contact_id == contact["id"], enrollments.c.status == EnrollmentStatus.ACTIVE.value)
            .order_by(enrollments.c.enrolled_at.desc(), enrollments.c.id.desc()).limit(1)).scalar()
    warning = _duplicate_conversion(conn, contact["id"], value, stamp) if kind == "converted" else ""
    conn.execute(sa.insert(events).values(contact_id=contact["id"], type=kind, sequence=attributed, channel=channel,
                                          value=value, idempotency_key=idempotency_key, source=source, at=stamp))
    channels = ["sms", "email"] if channel in (None, "all") else [channel]
    if kind in ("unsubscribed", "resubscribed"):
        mark = f"unsubscribed ({source}, {stamp:%Y-%m-%d})" if kind == "unsubscribed" else None
        conn.execute(sa.update(contacts).where(contacts.c.id == contact["id"])
                     .values({**{f"{c}_suppressed": mark for c in channels}, "updated_at": stamp}))
        if kind == "resubscribed" or channel in ("sms", "email"):
            # one channel only: its touches are skipped as they come due, the others go on
            return EventResult(recorded=True, note=f"{kind} on {', '.join(channels)}")
    query = sa.select(enrollments).where(enrollments.c.contact_id == contact["id"],
                                         enrollments.c.status == EnrollmentStatus.ACTIVE.value)
    if sequence:
        query = query.where(enrollments.c.sequence == sequence)
    active = [dict(e) for e in conn.execute(query.order_by(enrollments.c.enrolled_at.desc())).mappings()]
    ending = [e for e in active if kind in _exit_on(conn, config, e)]
    result = EventResult(recorded=True, warning=warning)
    result.cancelled = end_enrollments(conn, ending, kind, f"contact {kind}")
    result.ended = [e["sequence"] for e in ending]
    if kind == "converted":
        _redeem(conn, attributed, active)
    return result


def _duplicate_conversion(conn: sa.Connection, contact_id: int, value: float | None, stamp) -> str:
    """A warning when the same contact converted with the same value within the last minute."""
    query = sa.select(events.c.at).where(events.c.contact_id == contact_id, events.c.type == "converted",
                                         events.c.at >= stamp - DUPLICATE_CONVERSION_WINDOW)
    query = query.where(events.c.value.is_(None) if value is None else events.c.value == value)
    earlier = conn.execute(query.order_by(events.c.at.desc()).limit(1)).scalar()
    if earlier is None:
        return ""
    return (f"an identical conversion of this contact was recorded {int((stamp - to_utc(earlier)).total_seconds())} s "
            "ago; if it is the same purchase, give each order one idempotency key (--idempotency-key ORDER-ID) "
            "so it is counted once")


def _exit_on(conn: sa.Connection, config: Config, enrollment: dict) -> tuple[str, ...]:
    """The exit_on of the sequence version this enrollment follows."""
    from .models import SequenceVersion

    row = conn.execute(sa.select(SequenceVersion.__table__.c.definition)
                       .where(SequenceVersion.__table__.c.hash == enrollment["sequence_hash"])).scalar()
    if row:
        return tuple(json.loads(row).get("exit_on", ()))
    seq = config.sequences.get(enrollment["sequence"])
    return seq.exit_on if seq else ("converted", "replied", "unsubscribed")


def _redeem(conn: sa.Connection, sequence: str | None, active: list[dict]) -> None:
    """A conversion in a sequence takes one item of its offer's stock."""
    if not sequence:
        return
    code = next((e["offer_code"] for e in active if e["sequence"] == sequence and e["offer_code"]), None)
    query = sa.update(offers).where(offers.c.sequence == sequence).values(redeemed=offers.c.redeemed + 1)
    conn.execute(query.where(offers.c.code == code) if code else query)
