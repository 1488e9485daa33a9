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
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

import sqlalchemy as sa

from providers.base import SendResult

from . import store
from .clock import now
from .installation import client_reference
from .models import MessageStatus
from .plan import SequencePlan, plan_from_json
from .sending import Sender
from .store import Store, apply
from .transitions import ENDS_TOUCH, Facts, Outcome, change

__all__ = ["Recovery", "in_flight_query"]

logger = logging.getLogger("followup.worker")
in_flight_query = store.in_flight_query
Answer = tuple[bool | None, str | None, str | None]  # Sender.lookup_anywhere's (found?, provider, provider id)
CHUNK = store.IN_FLIGHT_CHUNK


class Counts(Protocol):
    def add(self, event: str, n: int = 1) -> None: ...


class Recovery:
    """Takes over the messages of workers that died, for one worker (``worker_id``).

    The questions to the providers go out on ``pool``; ``stopping`` ends the wait for answers early.
    """

    def __init__(self, store: Store, sender: Sender, *, worker_id: str, lease_seconds: float, reference_prefix: str,
                 pool: Executor, stopping: threading.Event):
        self.store, self.sender = store, sender
        self.worker_id, self.lease_seconds, self.reference_prefix = worker_id, lease_seconds, reference_prefix
        self.pool, self.stopping = pool, stopping
        self._plans: dict[str, SequencePlan] = {}

    def recover(self, report: Counts | None = None, *, everything: bool = False) -> int:
        """Take over messages whose lease expired (``everything``: all in flight, for a lone SQLite worker).

        Works in chunks of ``CHUNK``. With ``everything`` it goes on until nothing is left in flight: a
        worker keeps several batches at the provider, and what a first chunk leaves would otherwise wait
        for its lease to run out.
        """
        total = 0
        while not self.stopping.is_set():
            done, complete = self._chunk(report, everything=everything)
            total += done
            if not everything or not complete or done < CHUNK:
                break
        return total

    def _chunk(self, report: Counts | None, *, everything: bool) -> tuple[int, bool]:
        """Take over one chunk; return how many were settled, and whether every row of it was."""
        at = now()
        token = uuid.uuid4().hex
        lease = self.lease_seconds
        with self.store.write() as conn:
            rows = store.take_over(conn, None if everything else at, owner=self.worker_id, token=token,
                                   until=at + timedelta(seconds=lease))
        if not rows:
            return 0, True
        answers = self._ask_providers([r for r in rows if r["status"] != MessageStatus.CLAIMED], lease / 2)
        changes, ended = [], []
        facts = Facts(at)
        for row in rows:
            outcome = self._finding(row, answers)
            if outcome is None:
                continue  # still leased to us: taken over again when that lease ends
            made = change(row, outcome, facts)
            changes.append(made)
            if made.values["status"] in ENDS_TOUCH:
                ended.append((row, at))
        with self.store.write() as conn:
            applied = apply(conn, changes, worker=self.worker_id, fence=token, at=at)
            if ended:
                self._schedule_next(conn, ended)
        if report is not None:
            report.add_events(applied)
        return len(applied), len(changes) == len(rows)

    @staticmethod
    def _finding(row: dict, answers: dict[int, Answer]) -> Outcome | None:
        """What recovery learnt of a message in flight, or None when its provider has not answered yet."""
        dead = row["lease_owner"]
        if row["status"] == MessageStatus.CLAIMED:
            return Outcome("released", f"lease of {dead} expired before sending; the provider never saw it")
        if row["id"] not in answers:
            return None
        found, provider, pmid = answers[row["id"]]
        if found:
            return Outcome("sent", f"{dead} died after the provider accepted it; found at {provider} by our id",
                           provider, SendResult(pmid))
        if found is False:
            return Outcome("lost", f"{dead} died while sending; no provider has our id, so it is sent again")
        return Outcome("unknown", f"{dead} died while sending and the provider cannot be asked by our id; not resent")

    def _schedule_next(self, conn: sa.Connection, ended: list[tuple[dict, datetime]]) -> None:
        hash_of = store.sequence_hashes(conn, {row["enrollment_id"] for row, _ in ended})
        for seq_hash in set(hash_of.values()) - set(self._plans):
            self._plans[seq_hash] = plan_from_json(store.definition(conn, seq_hash))
        store.schedule_next(conn, ended, hash_of, self._plans, worker=self.worker_id)

    def _ask_providers(self, rows: list[dict], seconds: float) -> dict[int, Answer]:
        """Ask the providers about each row by our own id, on the send threads; wait at most ``seconds``.

        Returns the answers that came in time, by message id. It stops waiting as soon as the worker is
        stopping; questions not yet asked then are dropped, and those under way end on their own
        (each provider call has its timeout).
        """
        if not rows:
            return {}
        ask = self.sender.lookup_anywhere
        reference = partial(client_reference, self.reference_prefix)
        pending: dict[Future, int] = {self.pool.submit(ask, r["channel"], reference(r["id"])): r["id"] for r in rows}
        answers: dict[int, Answer] = {}
        deadline = time.monotonic() + seconds
        while pending and not self.stopping.is_set():
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
                           "leased to this worker and are taken over again when the lease ends", len(pending),
                           len(rows), seconds, " (the worker is stopping)" if self.stopping.is_set() else "")
        return answers
