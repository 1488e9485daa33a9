"""Taking over messages whose worker died: the recovery half of the send protocol.

* ``claimed``: the provider was never called → scheduled again (``released``).
* ``sending``: the fate is unknown → asked at every provider of the channel by our own id:
  found → ``sent``; not found anywhere and every provider can be asked → scheduled again;
  otherwise → ``unknown`` for ops, never resent blindly.

The questions go out together on the send threads and are waited for at most half a lease: asked one
by one, a chunk (a thousand rows at 0.2 s each) would outlast the lease it was taken over with, a peer
would take it over again, and the answers could not be recorded. What has no answer in time, or when the
worker is stopping, stays leased to this worker and is taken over again once that lease ends.
"""
from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, wait
from datetime import datetime, timedelta
from functools import partial
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

logger = logging.getLogger("followup.worker")
messages = Message.__table__
Answer = tuple[bool | None, str | None, str | None]  # Sender.lookup_anywhere's (found?, provider, provider id)


def recover(dispatcher: "Dispatcher", report: "TickReport | None" = None, *, everything: bool = False) -> int:
    """Take over messages whose lease expired (``everything``: all in flight, for a lone SQLite worker).

    Works in chunks of ``CHUNK``. With ``everything`` it goes on until nothing is left in flight: a
    worker keeps several batches at the provider, and what a first chunk leaves would otherwise wait
    for its lease to run out.
    """
    total = 0
    while not dispatcher.stopping.is_set():
        done, complete = _recover_chunk(dispatcher, report, everything=everything)
        total += done
        if not everything or not complete or done < CHUNK:
            break
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


def _recover_chunk(dispatcher: "Dispatcher", report: "TickReport | None", *, everything: bool) -> tuple[int, bool]:
    """Take over one chunk; return how many were settled, and whether every row of it was."""
    at = now()
    token = uuid.uuid4().hex
    lease = dispatcher.settings.worker.lease_seconds
    with dispatcher._write() as conn:
        ids = list(conn.execute(in_flight_query(dispatcher.engine, None if everything else at)).scalars())
        if not ids:
            return 0, True
        rows = [dict(r) for r in conn.execute(sa.select(messages).where(messages.c.id.in_(ids))).mappings()]
        conn.execute(sa.update(messages).where(messages.c.id.in_(ids)).values(
            lease_owner=dispatcher.worker_id, lease_token=token, lease_until=at + timedelta(seconds=lease)))
    answers = _ask_providers(dispatcher, [r for r in rows if r["status"] != "claimed"], lease / 2)
    changes, ended = [], []
    for row in rows:
        dead = row["lease_owner"]
        if row["status"] == "claimed":
            reason = f"lease of {dead} expired before sending; the provider never saw it"
            changes.append(Change(row, "released", {"status": "scheduled", "next_attempt_at": at, **LEASE_RELEASED},
                                  reason=reason))
            continue
        if row["id"] not in answers:
            continue  # still leased to us: taken over again when that lease ends
        found, provider, pmid = answers[row["id"]]
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
    return len(applied), len(changes) == len(rows)


def _ask_providers(dispatcher: "Dispatcher", rows: list[dict], seconds: float) -> dict[int, Answer]:
    """Ask the providers about each row by our own id, on the send threads; wait at most ``seconds``.

    Returns the answers that came in time, by message id. It stops waiting as soon as the worker is
    stopping; questions not yet asked then are dropped, and those under way end on their own
    (each provider call has its timeout).
    """
    if not rows:
        return {}
    ask = dispatcher.sender.lookup_anywhere
    reference = partial(client_reference, dispatcher.reference_prefix)
    pending: dict[Future, int] = {dispatcher._pool.submit(ask, r["channel"], reference(r["id"])): r["id"] for r in rows}
    answers: dict[int, Answer] = {}
    deadline = time.monotonic() + seconds
    while pending and not dispatcher.stopping.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        done, _ = wait(pending, timeout=min(left, 0.5), return_when=FIRST_COMPLETED)
        for future in done:
            answers[pending.pop(future)] = future.result()
    if pending:
        for future in pending:
            future.cancel()
        logger.warning("recovery: %d of %d messages at the provider not asked about within %.0fs%s; they stay "
                       "leased to this worker and are taken over again when the lease ends", len(pending), len(rows),
                       seconds, " (the worker is stopping)" if dispatcher.stopping.is_set() else "")
    return answers

