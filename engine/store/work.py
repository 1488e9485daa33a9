"""The worker's statements: claiming due messages, what their checks read, leases, the next touch, heartbeats."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..clock import now, to_utc
from ..durations import format_duration
from ..models import (COUNTS_AS_SENT, IN_FLIGHT, EnrollmentStatus, Enrollment, Message, MessageStatus,
                      SequenceVersion, WorkerStatus, status_is)
from . import driver
from ..transitions import Event, scheduled_values
from .log import apply_to_touch
from ..waits import first_look

__all__ = ["DUE_SQL", "claim_sql", "claim_due", "enrollments_with_contacts", "offers", "recent_sends", "definition",
           "sequence_hashes", "renew_leases", "in_flight_query", "take_over", "schedule_next", "heartbeat", "retire",
           "IN_FLIGHT_CHUNK"]

messages = Message.__table__
enrollments = Enrollment.__table__
versions = SequenceVersion.__table__
worker_status = WorkerStatus.__table__

#: the claim's choice: due messages, oldest first (``status`` is compared with a literal, so the partial
#: index ix_messages_due, which holds only scheduled rows, serves it)
DUE_WHERE = (f"status = '{MessageStatus.SCHEDULED.value}' AND next_attempt_at <= :at "
             "ORDER BY next_attempt_at, due_at LIMIT :limit")
DUE_SQL = f"SELECT id FROM messages WHERE {DUE_WHERE}"
#: what the checks, the rendering and the log need of a claimed message
WORK_FIELDS = ("id", "enrollment_id", "contact_id", "sequence", "touch_index", "touch", "channel", "urgent", "status",
               "attempt", "provider", "variant")
ENROLLMENT_FIELDS = ("id", "contact_id", "sequence", "sequence_hash", "status", "ended_reason", "offer_code",
                     "offer_expires_at", "event_key", "event_data")
CONTACT_FIELDS = ("id", "phone", "email", "first_name", "last_name", "timezone", "locale", "tags", "attrs",
                  "sms_suppressed", "email_suppressed")
OFFER_FIELDS = ("id", "sequence", "code", "title", "stock", "redeemed")
_SENT_STATUSES = "(" + ", ".join(f"'{s}'" for s in COUNTS_AS_SENT) + ")"
#: messages in flight taken over by recovery at once
IN_FLIGHT_CHUNK = 1000


def claim_sql(conn: sa.Connection | sa.Engine) -> str:
    """The ids the claim chooses (``:at``, ``:limit``), locked for this transaction on PostgreSQL."""
    return DUE_SQL + ("" if driver.is_sqlite(conn) else " FOR UPDATE SKIP LOCKED")


def claim_due(conn: sa.Connection, at: datetime, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` messages due at ``at``, oldest first (``WORK_FIELDS`` and the raw ``due_at``).

    On PostgreSQL they stay locked until the transaction ends and a peer claiming now skips them; on
    SQLite the transaction holds the write lock.
    """
    rows = driver.execute(conn, f"SELECT {', '.join(WORK_FIELDS)}, next_attempt_at, due_at FROM messages "
                                f"WHERE {DUE_WHERE}{'' if driver.is_sqlite(conn) else ' FOR UPDATE SKIP LOCKED'}",
                          {"at": at, "limit": limit})
    # after a night every deferred message shares 09:00, so due_at decides; SQLite's text form of a time
    # sorts as the time does
    rows.sort(key=lambda r: (r[-2], r[-1] or r[-2], r[0]))
    claimed = [dict(zip(WORK_FIELDS, r)) for r in rows]  # zip stops at the last work field
    for row, r in zip(claimed, rows):
        row["due_at"] = r[-1]  # as stored: an event wait starts at its due_at (engine.waits)
    return claimed


def enrollments_with_contacts(conn: sa.Connection, enrollment_ids: set[int]) -> tuple[dict[int, dict], dict[int, dict]]:
    """The enrollments by id and their contacts by id, in one query."""
    e_sql, params = driver.is_in(conn, "e.id", "e", enrollment_ids)
    width = len(ENROLLMENT_FIELDS)
    ens: dict[int, dict] = {}
    cons: dict[int, dict] = {}
    for values in driver.execute(conn, f"SELECT {', '.join('e.' + f for f in ENROLLMENT_FIELDS)}, "
                                       f"{', '.join('c.' + f for f in CONTACT_FIELDS)} FROM enrollments e "
                                       f"JOIN contacts c ON c.id = e.contact_id WHERE {e_sql}", params):
        e = dict(zip(ENROLLMENT_FIELDS, values[:width]))
        e["offer_expires_at"] = to_utc(e["offer_expires_at"])
        ens[e["id"]] = e
        if e["contact_id"] not in cons:
            c = dict(zip(CONTACT_FIELDS, values[width:]))
            if isinstance(c["attrs"], str):  # SQLite hands JSON back as its text
                c["attrs"] = {} if c["attrs"] == "{}" else json.loads(c["attrs"])
            cons[c["id"]] = c
    return ens, cons


def offers(conn: sa.Connection) -> dict[tuple[str, str], dict[str, Any]]:
    """Every offer by (sequence, code)."""
    return {(o[1], o[2]): dict(zip(OFFER_FIELDS, o))
            for o in driver.execute(conn, f"SELECT {', '.join(OFFER_FIELDS)} FROM offers", {})}


def recent_sends(conn: sa.Connection, contact_ids: Any, since: datetime) -> dict[int, list[datetime]]:
    """When each contact's messages that count toward the frequency cap went out since ``since``."""
    c_sql, params = driver.is_in(conn, "contact_id", "c", contact_ids)
    sent: dict[int, list[datetime]] = {}
    for cid, at in driver.execute(conn, f"SELECT contact_id, sent_at FROM messages WHERE {c_sql} "
                                        f"AND sent_at >= :since AND status IN {_SENT_STATUSES}",
                                  {**params, "since": since}):
        sent.setdefault(cid, []).append(to_utc(at))
    return sent


def definition(conn: sa.Connection, sequence_hash: str) -> str:
    """The stored definition (JSON) of a sequence version."""
    return conn.execute(sa.select(versions.c.definition).where(versions.c.hash == sequence_hash)).scalar_one()


def sequence_hashes(conn: sa.Connection, enrollment_ids: set[int]) -> dict[int, str]:
    """The sequence version each enrollment follows."""
    return dict(conn.execute(sa.select(enrollments.c.id, enrollments.c.sequence_hash)
                             .where(enrollments.c.id.in_(enrollment_ids))).all())


def renew_leases(conn: sa.Connection, ids: list[int], token: str, until: datetime) -> None:
    """Extend the leases of messages still ``sending`` under ``token``."""
    conn.execute(sa.update(messages).where(messages.c.id.in_(ids), messages.c.lease_token == token,
                                           status_is(messages.c.status, MessageStatus.SENDING.value))
                 .values(lease_until=until))


def in_flight_query(conn: sa.Connection | sa.Engine, expired_at: datetime | None) -> sa.Select:
    """The ids of a chunk of messages in flight (whose lease ended before ``expired_at``, if given).

    Ordered by the lease's end, which the partial index ix_messages_lease holds.
    """
    cond = status_is(messages.c.status, *IN_FLIGHT)
    if expired_at is not None:
        cond = sa.and_(cond, messages.c.lease_until < expired_at)
    query = (sa.select(messages.c.id).where(cond).order_by(messages.c.lease_until, messages.c.id)
             .limit(IN_FLIGHT_CHUNK))
    return query if driver.is_sqlite(conn) else query.with_for_update(skip_locked=True)


def take_over(conn: sa.Connection, expired_at: datetime | None, *, owner: str, token: str,
              until: datetime) -> list[dict[str, Any]]:
    """Lease a chunk of messages in flight to ``owner`` (those whose lease ended before ``expired_at``, or
    all); their rows as they were before."""
    ids = list(conn.execute(in_flight_query(conn, expired_at)).scalars())
    if not ids:
        return []
    rows = [dict(r) for r in conn.execute(sa.select(messages).where(messages.c.id.in_(ids))).mappings()]
    conn.execute(sa.update(messages).where(messages.c.id.in_(ids))
                 .values(lease_owner=owner, lease_token=token, lease_until=until))
    return rows


def schedule_next(conn: sa.Connection, ended: list[tuple[dict, datetime]], hash_of: dict[int, str], plans: dict,
                  *, worker: str | None) -> None:
    """Touch n ended (sent, failed, skipped): touch n+1 becomes due ``after`` it; the last ends the enrollment.

    ``hash_of`` maps an enrollment to its sequence version, ``plans`` a version to its
    :class:`~engine.plan.SequencePlan`. The touches that ended together in the same version share their
    next due time, so each such group is one statement.
    """
    groups: dict[tuple[str, int, datetime], list[int]] = {}
    finished = []
    for row, ended_at in ended:
        seq_hash = hash_of[row["enrollment_id"]]
        if row["touch_index"] + 1 >= len(plans[seq_hash].touches):
            finished.append(row["enrollment_id"])
        else:
            groups.setdefault((seq_hash, row["touch_index"] + 1, ended_at), []).append(row["enrollment_id"])
    for (seq_hash, index, ended_at), enrollment_ids in groups.items():
        plan = plans[seq_hash]
        after = plan.touches[index].after
        due = ended_at + after
        # an event wait starts at due_at and is first looked at a little later (engine.waits.first_look)
        apply_to_touch(conn, enrollment_ids, index, event=Event.SCHEDULED.value, worker=worker,
                       values=scheduled_values(due, first_look(plan.touches[index])),
                       reason=f"due {due:%Y-%m-%dT%H:%M:%SZ}, {format_duration(after)} "
                              f"after {plan.touches[index - 1].name}")
    if finished:
        conn.execute(sa.update(enrollments).where(enrollments.c.id.in_(finished),
                                                  enrollments.c.status == EnrollmentStatus.ACTIVE.value)
                     .values(status=EnrollmentStatus.COMPLETED.value, ended_reason="every touch done", ended_at=now()))


def heartbeat(conn: sa.Connection, worker_id: str, detail: dict[str, Any], at: datetime) -> None:
    """Record that worker ``worker_id`` ticked at ``at``, with what the tick did."""
    name = f"worker:{worker_id}"
    text = json.dumps(detail)
    done = conn.execute(sa.update(worker_status).where(worker_status.c.name == name)
                        .values(last_tick_at=at, detail=text)).rowcount
    if not done:
        conn.execute(sa.insert(worker_status).values(name=name, owner=worker_id, last_tick_at=at, detail=text))


def retire(conn: sa.Connection, worker_id: str) -> None:
    """Remove worker ``worker_id``'s heartbeat and end the cluster leases it holds (the next worker takes them
    at once instead of when they run out)."""
    conn.execute(sa.delete(worker_status).where(worker_status.c.name == f"worker:{worker_id}"))
    conn.execute(sa.update(worker_status).where(worker_status.c.name.startswith("job:"),
                                                worker_status.c.owner == worker_id).values(until=None))


def cluster_lease(conn: sa.Connection, job: str, owner: str, at: datetime, seconds: int) -> bool:
    """Take or renew the cluster-wide lease on ``job``; True when ``owner`` holds it."""
    name = f"job:{job}"
    # the job's row, made by the first worker to ask: one asking at the same moment waits for it, then finds
    # it (where an insert after a look would fail on the key)
    conn.execute(driver.dialect_insert(conn, worker_status).values(name=name)
                 .on_conflict_do_nothing(index_elements=["name"]))
    return bool(conn.execute(sa.update(worker_status).where(
        worker_status.c.name == name,
        sa.or_(worker_status.c.owner == owner, worker_status.c.until.is_(None), worker_status.c.until < at))
        .values(owner=owner, until=at + timedelta(seconds=seconds), last_tick_at=at)).rowcount)
