"""A whole sequence by hand: list, pause, resume, stop, and take one contact out.

A sequence's state is ``active`` (no row in ``sequence_states``), ``paused`` or ``stopped`` (a row), or
``orphaned``: enrollments or versions in the database name it but its file is gone from the config.

* paused:   due messages are held at claim time (deferred with reason ``sequence paused``, none dropped);
            ``resume`` makes the held ones due at once.
* stopped:  every active enrollment ends as ``stopped`` and its open messages are cancelled with the
            reason; the sequence takes no new enrollments until it is resumed.
* orphaned: due messages are held like a paused sequence's, until the file is back (then at the next
            hold's end) or the sequence is stopped.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from .clock import now, to_utc
from .config import Config
from .errors import InputError
from .ending import end_enrollments
from .models import Enrollment, EnrollmentStatus, Message, MessageStatus, SequenceState, SequenceVersion, status_is
from .store import rollups
from .store.reports import grouped

__all__ = ["HOLD", "PAUSED", "ORPHANED", "SequenceRow", "held_sequences", "known_sequences", "list_sequences", "orphan_warnings",
           "pause", "resume", "stop", "unenroll"]

#: how long a held message waits before the claim looks at it again
HOLD = timedelta(hours=1)
PAUSED = "sequence paused"
ORPHANED = "sequence orphaned: its file is gone from config/sequences"
states = SequenceState.__table__
enrollments = Enrollment.__table__
messages = Message.__table__
versions = SequenceVersion.__table__


@dataclass
class SequenceRow:
    """One line of ``followup sequences``."""

    name: str
    version: str | None
    state: str
    active: int
    due_24h: int
    next_due: datetime | None

    def as_dict(self) -> dict:
        """The JSON form (API)."""
        return {"name": self.name, "version": self.version, "state": self.state, "active_enrollments": self.active,
                "due_next_24h": self.due_24h, "next_due": self.next_due.isoformat() if self.next_due else None}


def _stored_states(conn: sa.Connection) -> dict[str, str]:
    return dict(conn.execute(sa.select(states.c.name, states.c.state)).all())


#: the built-in sequence that tells sales reps of their leads (:mod:`engine.sales_notify`): never orphaned
SALES_SEQUENCE = "_sales"


def held_sequences(conn: sa.Connection, config: Config, names: set[str]) -> dict[str, str]:
    """Of ``names``, the sequences whose due messages are held now, with the reason."""
    stored = _stored_states(conn)
    held = {n: PAUSED for n in names if stored.get(n) == "paused"}
    held.update({n: ORPHANED for n in names if n not in config.sequences and n not in held and n != SALES_SEQUENCE})
    return held


def known_sequences(conn: sa.Connection, config: Config) -> set[str]:
    """Every sequence name the config, the stored versions or the enrollments hold."""
    return (set(config.sequences) | set(conn.execute(sa.select(versions.c.name).distinct()).scalars())
            | {sequence for sequence, _, _ in rollups.counts(conn, rollups.RUN)})


def _check_known(conn: sa.Connection, config: Config, name: str) -> None:
    known = known_sequences(conn, config)
    if name not in known:
        raise InputError(f"no sequence named {name!r} (known: {', '.join(sorted(known)) or 'none'})")


def list_sequences(conn: sa.Connection, config: Config) -> list[SequenceRow]:
    """Every sequence the database or the config knows, with its version, state, load and next due time."""
    at = now()
    stored = _stored_states(conn)
    latest = {}
    for name, digest in conn.execute(sa.select(versions.c.name, versions.c.hash).order_by(versions.c.loaded_at)):
        latest[name] = digest  # the newest loaded version wins
    active = dict(conn.execute(sa.select(enrollments.c.sequence, sa.func.count())
                               .where(enrollments.c.status == EnrollmentStatus.ACTIVE.value)
                               .group_by(enrollments.c.sequence)).all())
    scheduled = status_is(messages.c.status, MessageStatus.SCHEDULED.value)
    sequence = grouped(messages.c.sequence)  # the scheduled messages through their index
    due = dict(conn.execute(sa.select(sequence, sa.func.count())
                            .where(scheduled, messages.c.next_attempt_at <= at + timedelta(hours=24))
                            .group_by(sequence)).all())
    nxt = dict(conn.execute(sa.select(sequence, sa.func.min(messages.c.next_attempt_at))
                            .where(scheduled).group_by(sequence)).all())
    rows = []
    for name in sorted(known_sequences(conn, config)):
        seq = config.sequences.get(name)
        state = stored.get(name) or ("active" if seq is not None or name == SALES_SEQUENCE else "orphaned")
        rows.append(SequenceRow(name, seq.hash if seq else latest.get(name), state, active.get(name, 0),
                                due.get(name, 0), to_utc(nxt.get(name))))
    return rows


def _set_state(conn: sa.Connection, name: str, state: str | None, reason: str | None = None) -> None:
    conn.execute(sa.delete(states).where(states.c.name == name))
    if state is not None:
        conn.execute(sa.insert(states).values(name=name, state=state, reason=reason, updated_at=now()))


def pause(conn: sa.Connection, config: Config, name: str) -> str:
    """Hold the sequence's due messages until :func:`resume`; return what was done."""
    _check_known(conn, config, name)
    current = _stored_states(conn).get(name)
    if current == "stopped":
        raise InputError(f"sequence {name!r} is stopped; `followup sequences resume {name}` first")
    _set_state(conn, name, "paused", PAUSED)
    return f"{name}: paused; due messages wait (deferred: {PAUSED}) until `followup sequences resume {name}`"


def resume(conn: sa.Connection, config: Config, name: str) -> str:
    """Make a paused or stopped sequence active; its held messages are due at once."""
    _check_known(conn, config, name)
    _set_state(conn, name, None)
    released = conn.execute(sa.update(messages).where(
        messages.c.sequence == name, status_is(messages.c.status, MessageStatus.SCHEDULED.value),
        messages.c.reason == PAUSED)
        .values(next_attempt_at=now())).rowcount
    return f"{name}: active; {released} held message(s) due now"


def stop(conn: sa.Connection, config: Config, name: str) -> str:
    """End every active enrollment as ``stopped`` and cancel its open messages; take no new enrollments."""
    _check_known(conn, config, name)
    _set_state(conn, name, "stopped", "sequence stopped")
    rows = [dict(r) for r in conn.execute(sa.select(enrollments).where(
        enrollments.c.sequence == name, enrollments.c.status == EnrollmentStatus.ACTIVE.value)).mappings()]
    cancelled = end_enrollments(conn, rows, EnrollmentStatus.STOPPED.value, "sequence stopped")
    return f"{name}: stopped; {len(rows)} enrollment(s) ended, {cancelled} pending message(s) cancelled"


def unenroll(conn: sa.Connection, config: Config, name: str, contact: dict) -> str:
    """End one contact's active enrollment in the sequence as ``unenrolled``, cancelling its open messages."""
    _check_known(conn, config, name)
    rows = [dict(r) for r in conn.execute(sa.select(enrollments).where(
        enrollments.c.sequence == name, enrollments.c.contact_id == contact["id"],
        enrollments.c.status == EnrollmentStatus.ACTIVE.value)).mappings()]
    if not rows:
        raise InputError(f"contact {contact['id']} has no active enrollment in {name!r}")
    cancelled = end_enrollments(conn, rows, EnrollmentStatus.UNENROLLED.value, "unenrolled by hand")
    return f"contact {contact['id']}: unenrolled from {name}; {cancelled} pending message(s) cancelled"


def orphan_warnings(conn: sa.Connection, config: Config) -> list[str]:
    """One line per orphaned sequence that still has active enrollments (for the worker's start)."""
    return [f"sequence {row.name} is orphaned (its file is gone from config/sequences): {row.active} active "
            f"enrollment(s), their due messages are held, not sent; put the file back, or "
            f"`followup sequences stop {row.name}`"
            for row in list_sequences(conn, config) if row.state == "orphaned" and row.active]
