"""Enrolling contacts in a sequence: one enrollment, and one message row per touch.

A contact whose enrollment in the sequence has ended enrolls again only as the sequence's ``reentry``
allows (never, by default), and an offer's deadline is the one the contact was first given for that
offer code: enrolling again never buys a contact a new deadline.

An enrollment an event with a key started (:class:`EventRun`, a cart) is a *run* of its own: one per
contact, sequence and key, whatever became of it, beside the contact's other runs; ``reentry`` counts
only enrollments without a key.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from .addresses import landline
from .catalog import sync_catalog
from .clock import now, to_utc
from .config import Config
from .errors import InputError
from .store import append_log
from .store.driver import dialect_insert
from .store.sources import source_of
from .kinds import blocks
from .models import ACTIVE_UNKEYED, KEYED, Contact, Enrollment, EnrollmentStatus, Message, MessageStatus, SequenceState

__all__ = ["EnrollReport", "EventRun", "enroll", "refusal"]

contacts = Contact.__table__
enrollments = Enrollment.__table__
messages = Message.__table__
states = SequenceState.__table__


@dataclass
class EnrollReport:
    """What one enroll did, per contact id."""

    enrolled: list[int] = field(default_factory=list)
    already_active: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    #: enrolled before and ended, not enrolled again: (contact id, when and why it ended, and the reentry rule)
    finished: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class EventRun:
    """The event an enrollment starts from: with a ``key``, one run per key; ``data`` is frozen on it."""

    event: str
    key: str | None = None
    data: dict | None = None


def _runs(conn: sa.Connection, sequence: str, chunk: list[int], key: str | None, active: bool) -> dict[int, dict]:
    """Each contact's latest active (or ended) enrollment in ``sequence`` with event key ``key`` (None: without one)."""
    status = enrollments.c.status == EnrollmentStatus.ACTIVE.value
    rows = conn.execute(sa.select(enrollments.c.contact_id, enrollments.c.status, enrollments.c.ended_reason,
                                  enrollments.c.ended_at, enrollments.c.enrolled_at)
                        .where(enrollments.c.contact_id.in_(chunk), enrollments.c.sequence == sequence,
                               status if active else ~status,
                               enrollments.c.event_key.is_(None) if key is None else enrollments.c.event_key == key)
                        .order_by(enrollments.c.id)).mappings()
    return {r["contact_id"]: dict(r) for r in rows}  # the last row of each contact wins


def _how(last: dict) -> str:
    ended = to_utc(last["ended_at"] or last["enrolled_at"])
    return f"{last['status']} on {ended:%Y-%m-%d %H:%M} UTC" + (f" ({last['ended_reason']})" if last["ended_reason"] else "")


def _not_again(last: dict, reentry_after, stamp) -> str | None:
    """Why a contact whose last enrollment is ``last`` can't enroll again now (None: it may)."""
    ended = to_utc(last["ended_at"] or last["enrolled_at"])
    how = _how(last)
    if reentry_after is None:
        return f"already enrolled, {how}; this sequence's reentry is never"
    if stamp < ended + reentry_after:
        return f"already enrolled, {how}; may enroll again from {ended + reentry_after:%Y-%m-%d %H:%M} UTC"
    return None


def _first_deadlines(conn: sa.Connection, code: str, chunk: list[int]) -> dict[int, object]:
    """The earliest deadline each contact was given for offer ``code`` (in any sequence): the one it keeps."""
    rows = conn.execute(sa.select(enrollments.c.contact_id, sa.func.min(enrollments.c.offer_expires_at))
                        .where(enrollments.c.contact_id.in_(chunk), enrollments.c.offer_code == code,
                               enrollments.c.offer_expires_at.is_not(None))
                        .group_by(enrollments.c.contact_id))
    return {cid: to_utc(at) for cid, at in rows}


def _check_state(conn: sa.Connection, name: str) -> None:
    """A stopped sequence takes no one: its state says so until it is resumed."""
    state = conn.execute(sa.select(states.c.state).where(states.c.name == name)).scalar()
    if state == "stopped":
        raise InputError(f"sequence {name!r} is stopped; `followup sequences resume {name}` lets it take contacts again")


def channel_kinds(seq) -> dict[str, set[str]]:
    """The touch kinds (promotional, informational) ``seq`` sends on each channel: what :func:`refusal` takes."""
    channels: dict[str, set[str]] = {}
    for touch in seq.touches:
        channels.setdefault(touch.channel, set()).add(touch.kind)
    return channels


def refusal(contact: dict, channels: dict[str, set[str]]) -> str | None:
    """Why a contact can't be enrolled: opted out of every channel the sequence uses.

    ``channels``: the touch kinds the sequence sends on each channel; a suppression that stops none of
    them (promotional SMS only, for a sequence with informational SMS) does not count."""
    blocked = {c: s if (s := contact.get(f"{c}_suppressed")) and all(blocks(s, k) for k in kinds) else None
               for c, kinds in channels.items()}
    missing = {c: "no phone" if c == "sms" else "no email" for c in channels
               if not contact.get("phone" if c == "sms" else "email")}
    if "sms" in channels and "sms" not in missing and landline(contact.get("phone")):
        missing["sms"] = "a landline, no SMS reaches it"
    if all(blocked[c] or c in missing for c in channels):
        why = [f"{c}: {blocked[c] or missing[c]}" for c in sorted(channels)]
        return "opted out or unreachable on every channel of this sequence (" + "; ".join(why) + ")"
    return None


def enroll(conn: sa.Connection, config: Config, sequence_name: str, contact_ids: list[int],
           run: EventRun | None = None) -> EnrollReport:
    """Enroll contacts; already-active and finished ones are a no-op, opted-out ones are refused with a reason.

    With ``run``, the enrollments carry its event's data; with its key, a contact that had a run for that
    key in this sequence (active or ended) is not enrolled again, and ``reentry`` does not apply."""
    key = run.key if run else None
    seq = config.sequence(sequence_name)
    _check_state(conn, seq.name)
    sync_catalog(conn, config)
    report = EnrollReport()
    ids = list(dict.fromkeys(contact_ids))
    stamp = now()
    channels = channel_kinds(seq)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = {r["id"]: dict(r) for r in conn.execute(sa.select(contacts).where(contacts.c.id.in_(chunk))).mappings()}
        active = _runs(conn, seq.name, chunk, key, active=True)
        ended = _runs(conn, seq.name, chunk, key, active=False)
        new = []
        for cid in chunk:
            if cid in active:
                report.already_active.append(cid)
            elif cid in ended and key is not None:
                report.finished.append((cid, f"already had a run for key {key}, {_how(ended[cid])}; "
                                             "one run per key"))
            elif cid in ended and (why := _not_again(ended[cid], seq.reentry_after, stamp)) is not None:
                report.finished.append((cid, why))
            elif cid not in rows:
                report.refused.append((cid, "no such contact"))
            elif (why := refusal(rows[cid], channels)) is not None:
                report.refused.append((cid, why))
            else:
                new.append(cid)
        if not new:
            continue
        deadline = seq.offer.deadline_for(stamp) if seq.offer else None
        given = _first_deadlines(conn, seq.offer.code, new) if deadline is not None else {}
        # a concurrent enroll may have inserted since we looked: skip it, never fail on uq_enrollment_active
        # (or, for a keyed run, on uq_enrollment_event_key)
        insert = dialect_insert(conn, enrollments).on_conflict_do_nothing(
            index_elements=["contact_id", "sequence"] + (["event_key"] if key is not None else []),
            index_where=sa.text(ACTIVE_UNKEYED if key is None else KEYED))
        sources = {cid: source_of(rows[cid]["attrs"]) for cid in new}
        result = conn.execute(insert.returning(enrollments.c.id, enrollments.c.contact_id), [
            dict(contact_id=cid, sequence=seq.name, sequence_hash=seq.hash, status=EnrollmentStatus.ACTIVE.value,
                 enrolled_at=stamp, offer_code=seq.offer.code if seq.offer else None,
                 offer_expires_at=given.get(cid, deadline), event_key=key,
                 event_data=run.data if run and run.data is not None else sa.null(), source=sources[cid])
            for cid in new])
        created = result.all()
        inserted = {cid for _, cid in created}
        report.already_active.extend(cid for cid in new if cid not in inserted)
        if not created:
            continue
        first = seq.touches[0]
        message_rows = []
        for enrollment_id, cid in created:
            for touch in seq.touches:
                due = stamp + first.after if touch.index == 0 else None
                message_rows.append(dict(
                    enrollment_id=enrollment_id, contact_id=cid, sequence=seq.name, touch_index=touch.index,
                    touch=touch.name, channel=touch.channel, urgent=touch.urgent,
                    status=MessageStatus.SCHEDULED.value if due else MessageStatus.PENDING.value,
                    due_at=due, next_attempt_at=due, attempt=0, polls=0, updated_at=stamp, source=sources[cid]))
        inserted = conn.execute(sa.insert(messages).returning(
            messages.c.id, messages.c.contact_id, messages.c.touch, messages.c.channel, messages.c.status,
            messages.c.next_attempt_at), message_rows).mappings().all()
        append_log(conn, [dict(at=stamp, message_id=m["id"], contact_id=m["contact_id"], sequence=seq.name,
                               touch=m["touch"], channel=m["channel"], provider=None, event=m["status"],
                               reason=(f"due {m['next_attempt_at']:%Y-%m-%dT%H:%M:%SZ}" if m["next_attempt_at"]
                                       else "waits for the previous touch"),
                               attempt=0, provider_message_id=None, worker=None) for m in inserted])
        report.enrolled.extend(cid for _, cid in created)
    return report
