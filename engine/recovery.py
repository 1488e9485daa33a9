"""Taking over messages whose worker died: the recovery half of the send protocol.

* ``claimed``: the provider was never called → scheduled again (``released``).
* ``sending``: the fate is unknown → asked at every provider of the channel by our own id:
  found → ``sent``; not found anywhere and every provider can be asked → scheduled again;
  otherwise → ``unknown`` for ops, never resent blindly.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .clock import now
from .db import is_sqlite
from .installation import client_reference
from .journal import Change, apply
from .models import LEASE_RELEASED, Message, status_is

if TYPE_CHECKING:
    from .dispatch import Dispatcher, TickReport

__all__ = ["recover", "in_flight_query"]

messages = Message.__table__


def recover(dispatcher: "Dispatcher", report: "TickReport | None" = None, *, everything: bool = False) -> int:
    """Take over messages whose lease expired (``everything``: all in flight, for a lone SQLite worker).

    Works in chunks of ``CHUNK``. With ``everything`` it goes on until nothing is left in flight: a
    worker keeps several batches at the provider, and what a first chunk leaves would otherwise wait
    for its lease to run out.
    """
    total = 0
    while True:
        done = _recover_chunk(dispatcher, report, everything=everything)
        total += done
        if not everything or done < CHUNK:
            return total


CHUNK = 1000


def in_flight_query(engine: sa.Engine, expired_at: datetime | None) -> sa.Select:
    """The ids of a chunk of messages in flight (whose lease ended before ``expired_at``, if given).

    Ordered by the lease's end, which the partial index ix_messages_lease holds: ordered by id, SQLite
    walked the whole table in id order instead, on every tick, however few were in flight.
    """
    cond = status_is(messages.c.status, "claimed", "sending")
    if expired_at is not None:
        cond = sa.and_(cond, messages.c.lease_until < expired_at)
    query = sa.select(messages.c.id).where(cond).order_by(messages.c.lease_until, messages.c.id).limit(CHUNK)
    return query if is_sqlite(engine) else query.with_for_update(skip_locked=True)


def _recover_chunk(dispatcher: "Dispatcher", report: "TickReport | None", *, everything: bool) -> int:
    at = now()
    token = uuid.uuid4().hex
    with dispatcher._write() as conn:
        ids = list(conn.execute(in_flight_query(dispatcher.engine, None if everything else at)).scalars())
        if not ids:
            return 0
        rows = [dict(r) for r in conn.execute(sa.select(messages).where(messages.c.id.in_(ids))).mappings()]
        conn.execute(sa.update(messages).where(messages.c.id.in_(ids)).values(
            lease_owner=dispatcher.worker_id, lease_token=token,
            lease_until=at + timedelta(seconds=dispatcher.settings.worker.lease_seconds)))
    changes, ended = [], []
    for row in rows:
        dead = row["lease_owner"]
        if row["status"] == "claimed":
            reason = f"lease of {dead} expired before sending; the provider never saw it"
            changes.append(Change(row, "released", {"status": "scheduled", "next_attempt_at": at, **LEASE_RELEASED},
                                  reason=reason))
            continue
        found, provider, pmid = dispatcher.sender.lookup_anywhere(row["channel"],
                                                                 client_reference(dispatcher.reference_prefix, row["id"]))
        release = LEASE_RELEASED
        if found:
            reason = f"{dead} died after the provider accepted it; found at {provider} by our id"
            changes.append(Change(row, "sent", {"status": "sent", "provider": provider, "provider_message_id": pmid,
                                                "poll_at": at + timedelta(minutes=1), **release},
                                  reason=reason, provider=provider))
            ended.append((row, at))
        elif found is False:
            reason = f"{dead} died while sending; no provider has our id, so it is sent again"
            changes.append(Change(row, "released", {"status": "scheduled", "next_attempt_at": at, "sent_at": None,
                                                    **release}, reason=reason))
        else:
            reason = f"{dead} died while sending and the provider cannot be asked by our id; not resent"
            changes.append(Change(row, "unknown", {"status": "unknown", "reason": reason, **release}, reason=reason))
            ended.append((row, at))
    with dispatcher._write() as conn:
        applied = apply(conn, changes, worker=dispatcher.worker_id, fence=token, at=at)
        if ended:
            ctx = dispatcher._context(conn, [e[0] for e in ended])
            dispatcher._schedule_next(conn, ended, ctx)
    if report is not None:
        for change in applied:
            report.add(change.event)
    return len(applied)

