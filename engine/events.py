"""What contacts do — converted, replied, unsubscribed, resubscribed, or any named event — and what it
ends or starts at once.

This is the one module that applies contact events to stored state, whether they come from
the CLI, the API, a provider webhook or an inbound SMS. Which runs an event starts and which an exit
event with a key ends is :mod:`engine.triggers`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from .clock import now, to_utc
from .attribution import credit
from .config import Config
from .ending import end_enrollments
from .errors import InputError
from .eventnames import BUILT_IN, MAX_KEY, data_problem, name_problem
from .handoff import on_facts
from .loyalty import after_conversion
from .outbox import emit
from .people import not_erased
from .models import Contact, ContactEvent, Enrollment, EnrollmentStatus, Message, Offer
from .store.events import active_enrollments as store_active, insert_events, recorded_keys
from .triggers import Started, exit_status, exiting, start_runs, unheard

__all__ = ["EVENT_TYPES", "Event", "EventResult", "record_event", "record_events", "end_enrollments"]

EVENT_TYPES = BUILT_IN
#: the events that count toward the lead score (:mod:`engine.scoring`)
SCORED_EVENTS = ("replied", "converted")
contacts = Contact.__table__
enrollments = Enrollment.__table__
messages = Message.__table__
events = ContactEvent.__table__
offers = Offer.__table__


@dataclass(frozen=True)
class Event:
    """One event as given: its name (``kind``) and what :func:`record_event` takes with it."""

    kind: str
    sequence: str | None = None
    channel: str | None = None
    value: float | None = None
    idempotency_key: str | None = None
    key: str | None = None
    data: dict | None = None


@dataclass
class EventResult:
    recorded: bool
    ended: list[str] = field(default_factory=list)  # sequence names whose enrollment ended
    cancelled: int = 0
    started: list[Started] = field(default_factory=list)  # what it did in each sequence it triggers
    note: str = ""
    warning: str = ""  # recorded, but worth a look (e.g. the same sale twice within a minute)
    #: a conversion's credited message (:mod:`engine.attribution`): message_id, sequence, touch and by; None when
    #: not attributed
    credited: dict | None = None


#: the events of this module that go out to webhooks (see :mod:`engine.outbox`)
OUT_EVENTS = ("converted", "replied", "unsubscribed")
#: a conversion identical to one recorded this recently (same contact and value, no shared key) is warned about
DUPLICATE_CONVERSION_WINDOW = timedelta(minutes=1)
#: sequence version hash → its exit_on, as read once (a hash names one definition for good)
_EXIT_ON: dict[str, tuple[str, ...]] = {}


def record_event(conn: sa.Connection, config: Config, contact: dict, kind: str, *, sequence: str | None = None,
                 channel: str | None = None, value: float | None = None, idempotency_key: str | None = None,
                 source: str = "cli", key: str | None = None, data: dict | None = None) -> EventResult:
    """Record one event, end what it must and start the runs it triggers, in the caller's transaction.

    ``key`` says what the event is about (a cart): it starts one run per key and, as an exit event, ends
    the run with that key (see :mod:`engine.triggers`); ``data`` is frozen on each run it starts."""
    _check(config, Event(kind, sequence, channel, value, idempotency_key, key, data))
    if idempotency_key:
        seen = conn.execute(sa.select(events.c.id).where(events.c.idempotency_key == idempotency_key)).first()
        if seen:
            return EventResult(recorded=False, note=f"already recorded (idempotency key {idempotency_key})")
    stamp = now()
    attributed, credited = sequence, None
    if kind == "converted":
        credited = credit(conn, config.settings.attribution, contact["id"], stamp, sequence)
    if kind == "converted" and sequence is None:
        # a sale without a named sequence goes to the credited message's sequence; without one, its stock is
        # taken from the latest sequence the contact is in, and its revenue is not attributed to any
        attributed = credited.sequence if credited else None
        stock_from = attributed or conn.execute(sa.select(enrollments.c.sequence).where(
            enrollments.c.contact_id == contact["id"], enrollments.c.status == EnrollmentStatus.ACTIVE.value)
            .order_by(enrollments.c.enrolled_at.desc(), enrollments.c.id.desc()).limit(1)).scalar()
    else:
        stock_from = attributed
    warning = _duplicate_conversion(conn, contact["id"], value, stamp) if kind == "converted" else unheard(config, kind)
    conn.execute(sa.insert(events).values(
        contact_id=contact["id"], type=kind, sequence=attributed, channel=channel, value=value,
        idempotency_key=idempotency_key, source=source, at=stamp, key=key, data=sa.null() if data is None else data,
        message_id=credited and credited.message_id, touch=credited and credited.touch,
        attributed_by=credited and credited.by, variant=credited and credited.variant))
    if kind in OUT_EVENTS:
        emit(conn, config, kind, contact["id"], {"sequence": attributed, "channel": channel, "value": value,
                                                 "key": key, "data": data, "source": source})
    channels = ["sms", "email"] if channel in (None, "all") else [channel]
    if kind in ("unsubscribed", "resubscribed"):
        mark = f"unsubscribed ({source}, {stamp:%Y-%m-%d})" if kind == "unsubscribed" else None
        # an erased contact stays erased: an old unsubscribe link, or a resubscribe, changes nothing
        conn.execute(sa.update(contacts).where(contacts.c.id == contact["id"], not_erased(contacts.c.sms_suppressed))
                     .values({**{f"{c}_suppressed": mark for c in channels}, "updated_at": stamp}))
        if kind == "resubscribed" or channel in ("sms", "email"):
            # one channel only: its touches are skipped as they come due, the others go on
            return EventResult(recorded=True, note=f"{kind} on {', '.join(channels)}")
    if kind in SCORED_EVENTS:  # before the exits: a reply that hands a lead off ends its run as handed_off
        on_facts(conn, config, [{"contact_id": contact["id"], "kind": kind, "at": stamp, "sequence": sequence}])
    query = sa.select(enrollments).where(enrollments.c.contact_id == contact["id"],
                                         enrollments.c.status == EnrollmentStatus.ACTIVE.value)
    if sequence:
        query = query.where(enrollments.c.sequence == sequence)
    active = [dict(e) for e in conn.execute(query.order_by(enrollments.c.enrolled_at.desc())).mappings()]
    ending = [e for e in exiting(active, key) if kind in _exit_on(conn, config, e)]
    result = EventResult(recorded=True, warning=warning,
                         credited={"message_id": credited.message_id, "sequence": credited.sequence,
                                   "touch": credited.touch, "by": credited.by,
                                   "variant": credited.variant} if credited else None)
    result.cancelled = end_enrollments(conn, ending, exit_status(kind),
                                       f"contact {kind}" + (f" (key {key})" if key else ""))
    result.ended = [e["sequence"] + (f" ({e['event_key']})" if e["event_key"] else "") for e in ending]
    if kind == "converted":
        _redeem(conn, stock_from, active)
    result.started = start_runs(conn, config, contact["id"], kind, key, data, only=sequence)
    if kind == "converted":
        result.started += after_conversion(conn, config, contact["id"],
                                           [e["sequence"] for e in ending] + ([attributed] if attributed else []))
    return result


def _check(config: Config, event: Event) -> None:
    """InputError when the event cannot be recorded as given."""
    problem = name_problem(event.kind)
    if problem:
        raise InputError(f"{problem} (the engine's own are {', '.join(EVENT_TYPES)})")
    key = event.key
    if key is not None and (not 0 < len(key) <= MAX_KEY or "\x00" in key):
        raise InputError(f"the event key must be 1 to {MAX_KEY} characters without NUL (a cart or order id)")
    if event.data is not None and (problem := data_problem(event.data)):
        raise InputError(f"the event's data: {problem}")
    if event.channel not in (None, "all", "sms", "email"):
        raise InputError(f"unknown channel {event.channel!r}; use sms, email or all")
    if event.sequence is not None:
        config.sequence(event.sequence)


def record_events(conn: sa.Connection, config: Config, contacts: list[dict], items: list[Event],
                  source: str = "api") -> list[EventResult]:
    """Record ``items[i]`` of ``contacts[i]``, in order, in the caller's transaction: what calling
    :func:`record_event` for each one in turn does and answers, with fewer statements.

    A plain event (a name no sequence triggers on, that ends none of its contact's active enrollments) is
    only a row: those are read for the whole list at once (idempotency keys, active enrollments) and
    inserted together. Any other event goes through :func:`record_event` after the rows before it are
    inserted, and the enrollments are read again after it (it may have ended or started some)."""
    results: list[EventResult] = []
    pending: list[dict] = []  # plain events' rows, not inserted yet
    keys = recorded_keys(conn, [e.idempotency_key for e in items if e.idempotency_key])
    active: dict[int, list[dict]] | None = None  # contact id → active enrollments, as of now
    warnings: dict[str, str] = {}
    for i, (contact, event) in enumerate(zip(contacts, items)):
        _check(config, event)
        if event.idempotency_key in keys:
            results.append(EventResult(recorded=False,
                                       note=f"already recorded (idempotency key {event.idempotency_key})"))
            continue
        if _plain_kind(config, event.kind):
            if active is None:
                active = store_active(conn, {c["id"] for c in contacts[i:]})
            mine = [e for e in active.get(contact["id"], ())
                    if not event.sequence or e["sequence"] == event.sequence]
            if not any(event.kind in _exit_on(conn, config, e) for e in exiting(mine, event.key)):
                pending.append({"contact_id": contact["id"], "type": event.kind, "sequence": event.sequence,
                                "channel": event.channel, "value": event.value, "source": source, "at": now(),
                                "idempotency_key": event.idempotency_key, "key": event.key, "data": event.data})
                if event.idempotency_key:
                    keys.add(event.idempotency_key)
                if event.kind not in warnings:
                    warnings[event.kind] = unheard(config, event.kind)
                results.append(EventResult(recorded=True, warning=warnings[event.kind]))
                continue
        insert_events(conn, pending)
        pending = []
        results.append(record_event(conn, config, contact, event.kind, sequence=event.sequence,
                                    channel=event.channel, value=event.value, idempotency_key=event.idempotency_key,
                                    source=source, key=event.key, data=event.data))
        if event.idempotency_key:
            keys.add(event.idempotency_key)
        active = None
    insert_events(conn, pending)
    return results


def _plain_kind(config: Config, kind: str) -> bool:
    """Whether an event ``kind`` does nothing but its row, unless it ends an enrollment: not one of the engine's
    own (those mark contacts, credit sales, score leads, go to webhooks) and no sequence's trigger."""
    return kind not in BUILT_IN and not any(s.trigger and s.trigger.event == kind for s in config.sequences.values())


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
    """The exit_on of the sequence version this enrollment follows (a version's definition never changes
    under its hash, so what one says is kept: :data:`_EXIT_ON`)."""
    from .models import SequenceVersion

    found = _EXIT_ON.get(enrollment["sequence_hash"])
    if found is not None:
        return found
    row = conn.execute(sa.select(SequenceVersion.__table__.c.definition)
                       .where(SequenceVersion.__table__.c.hash == enrollment["sequence_hash"])).scalar()
    if row:
        found = tuple(json.loads(row).get("exit_on", ()))
        if len(_EXIT_ON) < 10_000:
            _EXIT_ON[enrollment["sequence_hash"]] = found
        return found
    seq = config.sequences.get(enrollment["sequence"])
    return seq.exit_on if seq else ("converted", "replied", "unsubscribed")


def _redeem(conn: sa.Connection, sequence: str | None, active: list[dict]) -> None:
    """A conversion in a sequence takes one item of its offer's stock."""
    if not sequence:
        return
    code = next((e["offer_code"] for e in active if e["sequence"] == sequence and e["offer_code"]), None)
    query = sa.update(offers).where(offers.c.sequence == sequence).values(redeemed=offers.c.redeemed + 1)
    conn.execute(query.where(offers.c.code == code) if code else query)
