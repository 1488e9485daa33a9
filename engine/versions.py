"""Sequence versions: what ``validate`` says about them, and ``followup sequences migrate NAME``.

A sequence file that changed is a new version (its hash); an enrollment keeps the version it enrolled in
(:class:`engine.models.SequenceVersion`) until it is migrated. ``migrate`` moves every active enrollment of
NAME that is on an older version to the current one, matching touches **by name**:

* a touch of the new version whose message was already sent (or failed, skipped...) keeps that message:
  it is not sent again. The contact's place in the new version is after the last such touch.
* the touch after that place is due ``after`` (the new version's) from when the touch before it went out
  (from the enrollment for the first touch); a message that was already scheduled at that very time keeps
  its time (and any deferral it had). Later touches wait for the one before them, as at enrollment.
* a touch of the new version that comes before that place and was never sent is skipped, with the reason
  (the contact has passed it); a new touch there is added as skipped, so each touch has its message.
* a touch the new version no longer has: its pending message is cancelled with the reason; a message
  already sent for it stays in the history (stats still count it under its touch name).
* every touch of the new version done: the enrollment completes.
* an enrollment with a message at the provider right now is left on its version (migrate again later).
* the offer: a new offer code gives the contact the deadline it was first given for that code, else one
  counted from its enrollment; the same code keeps the deadline it has.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from .catalog import sync_catalog
from .clock import now, to_utc
from .config import Config
from .control import known_sequences, orphan_warnings
from .durations import format_duration
from .errors import InputError, Problem
from .journal import Change
from .store import append_log, apply
from .transitions import Facts, Outcome, change
from .models import (FINAL_STATUSES, IN_FLIGHT, OPEN_STATUSES, Enrollment, EnrollmentStatus, Message, MessageStatus)

__all__ = ["MigrateReport", "migrate", "version_problems"]

enrollments = Enrollment.__table__
messages = Message.__table__


def version_problems(conn: sa.Connection, config: Config) -> list[Problem]:
    """Warnings for ``validate``: enrollments on an older version of a sequence, and orphaned sequences."""
    problems = []
    counts = Counter()
    for name, digest, n in conn.execute(
            sa.select(enrollments.c.sequence, enrollments.c.sequence_hash, sa.func.count())
            .where(enrollments.c.status == EnrollmentStatus.ACTIVE.value)
            .group_by(enrollments.c.sequence, enrollments.c.sequence_hash)):
        seq = config.sequences.get(name)
        if seq is not None and digest != seq.hash:
            counts[name] += n
    for name, n in sorted(counts.items()):
        seq = config.sequences[name]
        problems.append(Problem(os.path.relpath(seq.file), "", f"{n} active enrollment(s) stay on an older version "
                                f"of {name} (the file changed; this version is {seq.hash}): they go on as they "
                                f"enrolled; `followup sequences migrate {name}` moves them to this version where "
                                "touches match by name", warning=True))
    folder = os.path.relpath(config.settings.path.parent / "sequences")
    problems += [Problem(folder, "", line, warning=True) for line in orphan_warnings(conn, config)]
    return problems


@dataclass
class MigrateReport:
    """What one ``migrate`` did."""

    name: str
    version: str
    moved: int = 0
    busy: int = 0  # enrollments left: a message of theirs was at the provider
    completed: int = 0
    cancelled: Counter = field(default_factory=Counter)  # touch name no longer in the sequence → messages
    added: Counter = field(default_factory=Counter)  # touch name → messages made for it
    skipped: Counter = field(default_factory=Counter)  # touch name → passed over

    def lines(self) -> list[str]:
        out = [f"{self.name}: {self.moved} enrollment(s) moved to version {self.version}"
               + (f", {self.completed} of them completed (every touch of the new version done)" if self.completed else "")]
        if self.busy:
            out.append(f"{self.busy} enrollment(s) have a message at the provider right now and stay on their "
                       f"version; run `followup sequences migrate {self.name}` again in a minute")
        out += [f"touch {t!r} is not in the new version: {n} pending message(s) cancelled"
                for t, n in sorted(self.cancelled.items())]
        out += [f"touch {t!r} is new: {n} message(s) added" for t, n in sorted(self.added.items())]
        out += [f"touch {t!r} comes before where {n} contact(s) are now: skipped for them"
                for t, n in sorted(self.skipped.items())]
        return out


def _ended_at(message: dict) -> datetime:
    return to_utc(message["sent_at"] or message["updated_at"])


def migrate(conn: sa.Connection, config: Config, name: str) -> MigrateReport:
    """Move the active enrollments of ``name`` on older versions to the current one (see the module)."""
    seq = config.sequences.get(name)
    if seq is None:
        if name in known_sequences(conn, config):
            raise InputError(f"sequence {name!r} has no file in config/sequences, so there is no version to move to; "
                             f"put the file back, or `followup sequences stop {name}`")
        raise InputError(f"no sequence named {name!r}")
    sync_catalog(conn, config)
    report = MigrateReport(name, seq.hash)
    stamp = now()
    rows = [dict(r) for r in conn.execute(sa.select(enrollments).where(
        enrollments.c.sequence == name, enrollments.c.status == EnrollmentStatus.ACTIVE.value,
        enrollments.c.sequence_hash != seq.hash).order_by(enrollments.c.id)).mappings()]
    for enrollment in rows:
        found = [dict(m) for m in conn.execute(sa.select(messages).where(
            messages.c.enrollment_id == enrollment["id"]).order_by(messages.c.id)).mappings()]
        if any(m["status"] in IN_FLIGHT for m in found):
            report.busy += 1
            continue
        _move(conn, seq, enrollment, found, report, stamp)
        report.moved += 1
    return report


def _move(conn: sa.Connection, seq, enrollment: dict, found: list[dict], report: MigrateReport, stamp) -> None:
    why = f"sequence {seq.name} migrated to version {seq.hash}"
    by_touch = {m["touch"]: m for m in found}
    wanted = {t.name for t in seq.touches}
    done = [t.index for t in seq.touches if t.name in by_touch and by_touch[t.name]["status"] in FINAL_STATUSES]
    place = max(done, default=-1)
    # every message steps aside to an index no other holds (its own id, negated), then takes its new one:
    # (enrollment_id, touch_index) is unique at every statement
    for m in found:
        conn.execute(sa.update(messages).where(messages.c.id == m["id"]).values(touch_index=-m["id"]))
    changes: list[Change] = []
    facts = Facts(stamp)
    for m in found:
        if m["touch"] not in wanted and m["status"] in OPEN_STATUSES:
            reason = f"{why}, which has no touch {m['touch']!r}"
            changes.append(change(m, Outcome(MessageStatus.CANCELLED.value, reason), facts))
            report.cancelled[m["touch"]] += 1
    new_rows = []
    base = to_utc(enrollment["enrolled_at"])
    for touch in seq.touches:
        m = by_touch.get(touch.name)
        if m is not None:
            conn.execute(sa.update(messages).where(messages.c.id == m["id"]).values(touch_index=touch.index))
            if m["status"] in FINAL_STATUSES:
                if touch.index == place:
                    base = _ended_at(m)
                continue
            conn.execute(sa.update(messages).where(messages.c.id == m["id"]).values(
                channel=touch.channel, urgent=touch.urgent))
        if touch.index < place:
            reason = f"{why}: touch {touch.name!r} comes before where the contact is now, it is passed over"
            report.skipped[touch.name] += 1
            if m is None:
                new_rows.append(_row(enrollment, seq, touch, MessageStatus.SKIPPED.value, None, reason, stamp))
            else:
                changes.append(change(m, Outcome(MessageStatus.SKIPPED.value, reason), facts))
        elif touch.index == place + 1:
            due = base + touch.after
            reason = f"due {due:%Y-%m-%dT%H:%M:%SZ}, {format_duration(touch.after)} after " + (
                seq.touches[place].name if place >= 0 else "enrollment") + f" ({why})"
            if m is None:
                new_rows.append(_row(enrollment, seq, touch, MessageStatus.SCHEDULED.value, due, reason, stamp))
            elif not (m["status"] == MessageStatus.SCHEDULED.value and to_utc(m["due_at"]) == due):
                changes.append(change(m, Outcome("due", reason, until=due), facts))
        else:
            if m is None:
                new_rows.append(_row(enrollment, seq, touch, MessageStatus.PENDING.value, None,
                                     "waits for the previous touch", stamp))
            elif m["status"] != MessageStatus.PENDING.value:
                reason = f"waits for the previous touch ({why})"
                changes.append(change(m, Outcome(MessageStatus.PENDING.value, reason), facts))
        if m is None:
            report.added[touch.name] += 1
    apply(conn, changes, at=stamp)
    if new_rows:
        stored = [{**{k: v for k, v in r.items() if k != "log_reason"},
                   "reason": r["log_reason"] if r["status"] == MessageStatus.SKIPPED.value else None} for r in new_rows]
        inserted = conn.execute(sa.insert(messages).returning(
            messages.c.id, messages.c.touch, messages.c.channel, messages.c.status), stored).all()
        append_log(conn, [dict(at=stamp, message_id=i, contact_id=enrollment["contact_id"], sequence=seq.name,
                               touch=touch, channel=channel, provider=None, event=status, attempt=0,
                               provider_message_id=None, worker=None, reason=r["log_reason"])
                          for (i, touch, channel, status), r in zip(inserted, new_rows)])
    values = {"sequence_hash": seq.hash, **_offer(conn, seq, enrollment)}
    if place == len(seq.touches) - 1:
        values.update(status=EnrollmentStatus.COMPLETED.value, ended_reason="every touch done", ended_at=stamp)
        report.completed += 1
    conn.execute(sa.update(enrollments).where(enrollments.c.id == enrollment["id"]).values(**values))
    append_log(conn, [dict(at=stamp, message_id=None, contact_id=enrollment["contact_id"], sequence=seq.name,
                           touch=None, channel=None, provider=None, event="migrated", attempt=0,
                           provider_message_id=None, worker=None,
                           reason=f"from version {enrollment['sequence_hash']} to {seq.hash}")])


def _row(enrollment: dict, seq, touch, status: str, due, reason: str, stamp) -> dict:
    return dict(enrollment_id=enrollment["id"], contact_id=enrollment["contact_id"], sequence=seq.name,
                touch_index=touch.index, touch=touch.name, channel=touch.channel, urgent=touch.urgent, status=status,
                due_at=due, next_attempt_at=due, attempt=0, polls=0, updated_at=stamp, source=enrollment["source"],
                log_reason=reason)


def _offer(conn: sa.Connection, seq, enrollment: dict) -> dict:
    """The offer columns an enrollment moving to ``seq`` gets (nothing changes for the same offer code)."""
    if seq.offer is None or enrollment["offer_code"] == seq.offer.code:
        return {}
    given = conn.execute(sa.select(sa.func.min(enrollments.c.offer_expires_at)).where(
        enrollments.c.contact_id == enrollment["contact_id"], enrollments.c.offer_code == seq.offer.code)).scalar()
    deadline = to_utc(given) if given is not None else seq.offer.deadline_for(to_utc(enrollment["enrolled_at"]))
    return {"offer_code": seq.offer.code, "offer_expires_at": deadline}
