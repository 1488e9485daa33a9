"""The dispatcher: each :meth:`Dispatcher.tick` claims due messages, decides, renders, sends and settles them.

The send protocol — the states a message passes and what a crash between them means::

    scheduled ──claim + checks──▶ sending ──provider──▶ sent / failed / retry (scheduled)
                  │                 │
                  │                 └─ crash here: fate unknown → recovery
                  ├─▶ cancelled / skipped / deferred (scheduled later)
                  └─ crash here: nothing was committed → still scheduled

* The claim and the checks are one transaction: the due messages are chosen and locked (``FOR
  UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite), checked, rendered and committed as
  ``sending`` — leased to this worker (``lease_owner``, ``lease_token``, ``lease_until``) — or as
  their other fate. If the worker dies before the commit, nothing changed and no provider saw them.
* ``sending`` is committed *before* the provider is called. If the worker dies now, the message
  is taken over by :mod:`engine.recovery` when its lease expires: found at the provider by our own id
  → ``sent``; a provider that can be asked and has no record → sent again; otherwise ``unknown`` for
  ops. It is never resent blindly.
* Results are written fenced by the lease token: a worker whose lease was taken over can no
  longer record anything for that message.

The moves are declared in :mod:`engine.transitions`; every statement is in :mod:`engine.store`, and every
change appends a delivery-log row in the same transaction.

Batches are pipelined: while up to ``MAX_INFLIGHT_BATCHES`` batches are at the provider, the tick's
thread claims and checks the next and commits it as ``sending``, and settles the outcomes the send threads
hand back; all database work of a tick is on that one thread (on PostgreSQL the records of those outcomes
run on the store's writer thread, :meth:`Store.behind`, while the tick claims on). A send that waits
between tries (``Retry-After``, a backoff) waits on a timer, not on a send thread. On SIGTERM nothing new
is claimed; sends already under way finish and are recorded, sends waiting between tries and messages of
a batch that have not reached the provider yet are scheduled again.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Callable
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from providers.base import OutgoingMessage, Provider

from . import store
from .abtests import AbSchedule
from .batch import Batch, BatchContext, Pipeline, TickReport
from .catalog import sync_catalog
from .clock import now
from .config import Config
from .db import make_engine
from .faultpoints import fault_point
from .installation import reference_prefix
from .journal import Change
from .kinds import suppress as suppress_contact
from .models import MessageStatus
from .plan import SequencePlan
from .ratebuckets import rate_limiters
from .recovery import Recovery
from .render import NotSent, build_message
from .sending import BatchSend, Later, Sender
from .store import Store, apply
from .timer import Timer
from .transitions import ENDS_TOUCH, Facts, Outcome, change
from .watchdog import Phases

__all__ = ["Dispatcher", "TickReport"]

logger = logging.getLogger("followup.worker")
MAX_INFLIGHT_BATCHES = 6  # at the provider at once: bookkeeping overlaps sending; leases and memory stay small


class Dispatcher:
    """Claims, decides, renders, sends and settles due messages. Thread-safe to stop from a signal handler.

    ``sleep`` is the rate limiters' clock; ``timer`` runs the waits between a send's tries
    (:class:`engine.timer.Immediate` under a frozen clock).
    """

    def __init__(self, config: Config, providers: dict[str, list[Provider]], *, engine: sa.Engine | None = None,
                 worker_id: str | None = None, sleep: Callable[[float], None] = time.sleep,
                 timer: Later | None = None):
        self.config = config
        self.settings = config.settings
        self.engine = engine or make_engine(config.settings.database_url)
        self.providers = providers
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.sender = Sender(providers, inline_retries=self.settings.worker.inline_retries, sleep=sleep,
                             limiters=rate_limiters(self.engine, providers))
        self.stopping = threading.Event()
        self.phases = Phases()  # the tick names its phase here; the watchdog and the SIGTERM deadline read it
        self.store = Store(self.engine)
        self._plans: dict[str, SequencePlan] = {}
        self._ab = AbSchedule()  # the A/B tests, evaluated at most once a minute
        self._pool = ThreadPoolExecutor(max_workers=self.settings.worker.concurrency, thread_name_prefix="send")
        # more batch threads than slots: a batch whose last sends wait between tries holds a thread, not a slot
        self._batches = ThreadPoolExecutor(max_workers=4 * MAX_INFLIGHT_BATCHES, thread_name_prefix="batch")
        self._timer = timer or Timer("retry-timer")
        with self.store.write() as conn:
            sync_catalog(conn, config)
            #: what makes the client references of this database's messages its own
            self.reference_prefix = reference_prefix(conn)
        self.recovery = Recovery(self.store, self.sender, worker_id=self.worker_id,
                                 lease_seconds=self.settings.worker.lease_seconds,
                                 reference_prefix=self.reference_prefix, pool=self._pool, stopping=self.stopping)
        config.renderer.preload({t.template for seq in config.sequences.values() for t in seq.touches})

    # -- the tick ---------------------------------------------------------------------
    def tick(self, *, max_batches: int | None = None) -> TickReport:
        """Recover expired leases, then claim and process batches until nothing is due (or stopping)."""
        report = TickReport()
        started = time.monotonic()
        try:
            self._phase("recovery")
            self.recover(report)
            self._pipeline(report, max_batches)
            self._ab.run(self.store.write, self.config.sequences, now())
            self._phase("heartbeat")
            with self.store.write() as conn:
                store.heartbeat(conn, self.worker_id,
                                {**report.counts, "duration_seconds": round(time.monotonic() - started, 4)}, now())
                self.store.fold_counts(conn, now())
        finally:
            self.phases.end("tick")
        return report

    def _phase(self, name: str) -> None:
        self.phases.enter("tick", name)

    def _pipeline(self, report: TickReport, max_batches: int | None) -> None:
        """Claim batches and hand them to the send threads until nothing is due; settle every outcome.

        While some batches are at the provider, this thread claims, checks and commits the next as
        ``sending`` (so the frequency cap of the next sees it) and settles what the send threads have
        finished: on SQLite, writers on several threads would only queue for the one write lock.
        """
        batches = 0
        pipe = Pipeline()
        try:
            while not self.stopping.is_set():
                # a batch holds a slot until its sends are done or only waiting between tries
                while pipe.busy >= MAX_INFLIGHT_BATCHES:
                    self._absorb(pipe, self._next_result(pipe), report)
                while not pipe.results.empty():
                    self._absorb(pipe, pipe.results.get(), report)
                pipe.written(report)
                self._phase("claim")
                claimed, batch = self._claim(report)
                if not claimed:
                    break
                if batch is not None:
                    pipe.busy += 1
                    pipe.open += 1
                    self._batches.submit(self._send, batch, pipe.results)
                batches += 1
                if max_batches and batches >= max_batches:
                    break
        except BaseException:
            self._absorb_all(pipe, report)  # what is at the provider is still recorded; the first error wins
            raise
        failure = self._absorb_all(pipe, report)
        if failure is not None:
            raise failure

    def _next_result(self, pipe: Pipeline) -> tuple:
        """Wait for the send threads' next outcomes: the tick's thread is waiting on the providers."""
        self._phase("send")
        return pipe.results.get()

    # -- claim → decide → render, in one transaction ------------------------------------------
    def _claim(self, report: TickReport) -> tuple[int, Batch | None]:
        """Choose due messages, decide and render them and commit each as ``sending`` or as its other fate.

        Returns how many were chosen, and the batch to send (None when nothing goes out).
        """
        at = now()
        token = uuid.uuid4().hex
        lease_until = at + timedelta(seconds=self.settings.worker.lease_seconds)
        with self.store.write() as conn:
            rows = store.claim_due(conn, at, self.settings.worker.batch_size)
            if not rows:
                return 0, None
            fault_point("after_claim")
            self._phase("render")
            ctx = BatchContext.read(conn, rows, self.config, self._plans, at)
            facts = Facts(at, lease={"lease_owner": self.worker_id, "lease_token": token, "lease_until": lease_until})
            changes, to_send = self._prepare(rows, ctx, facts)
            # no fence: the rows are this transaction's own (locked on PostgreSQL, the write lock on SQLite)
            applied = apply(conn, changes, worker=self.worker_id, at=at)
            ctx.links.save(conn, {row["id"] for row, _ in to_send})  # codes of messages not sent are not kept
            store.schedule_next(conn, [(c.message, at) for c in changes if c.values["status"] in ENDS_TOUCH],
                                ctx.hash_of(), ctx.plans, worker=self.worker_id)
        report.add("claimed", len(rows))
        report.add_events(applied)
        return len(rows), (Batch(to_send, token, ctx, lease_until) if to_send else None)

    def _prepare(self, rows: list[dict], ctx: BatchContext,
                 facts: Facts) -> tuple[list[Change], list[tuple[dict, OutgoingMessage]]]:
        """Decide and render each chosen message: the changes to commit, and what goes to the providers."""
        at = facts.at
        changes: list[Change] = []
        to_send: list[tuple[dict, OutgoingMessage]] = []
        zones: dict[str, ZoneInfo] = {}
        providers = {channel: next((p.name for p in group if p.name not in ctx.paused), None)
                     for channel, group in self.providers.items()}
        for row in rows:
            enrollment, contact = ctx.enrollments[row["enrollment_id"]], ctx.contacts[row["contact_id"]]
            plan = ctx.plans[enrollment["sequence_hash"]]
            zone = contact.get("timezone") or self.settings.timezone.key
            tz = zones.get(zone) or zones.setdefault(zone, ZoneInfo(zone))
            offer = ctx.offers.get((row["sequence"], enrollment.get("offer_code")))
            decision = ctx.decide(row, plan, enrollment, contact, offer, tz, at, self.settings)
            if decision.action != "send":
                changes.append(change(row, Outcome(decision.action, decision.reason, until=decision.until), facts))
                continue
            touch, variant = ctx.journey.variant(plan.touches[row["touch_index"]], row)  # its A/B variant, if any
            built = build_message(self.config, row, touch, plan, enrollment, contact, offer, tz, at,
                                  self.reference_prefix, ctx.links)
            if isinstance(built, NotSent):  # a broken template or a too long SMS: the sequence goes on
                changes.append(change(row, Outcome(built.status, built.reason), facts))
                continue
            sending = Outcome("sending", provider=providers.get(row["channel"]), variant=variant)
            changes.append(change(row, sending, facts))
            ctx.sent[row["contact_id"]].append(at)
            to_send.append((row, built))
        return changes, to_send

    # -- send -------------------------------------------------------------------------------------
    def _send(self, batch: Batch, results) -> None:
        """Send a batch (on a batch thread); hand each group of outcomes back to the tick's thread."""
        error = None
        worker = self.settings.worker
        ids = [row["id"] for row, _ in batch.to_send]

        def renew(until: datetime) -> None:
            with self.store.write() as conn:
                store.renew_leases(conn, ids, batch.token, until)

        try:
            fault_point("before_provider")
            sends = BatchSend(self.sender, [msg for _, msg in batch.to_send], batch.ctx.paused, pool=self._pool,
                              timer=self._timer, concurrency=worker.concurrency, stopping=self.stopping,
                              lease_until=batch.lease_until, lease_seconds=worker.lease_seconds, renew=renew)
            for settled in sends.run():
                results.put(("settled", batch, settled))
        except BaseException as err:  # noqa: BLE001 - handed to the tick's thread, which raises it
            error = err
        finally:
            results.put(("end", batch, error))

    # -- settle -------------------------------------------------------------------------------------
    def _absorb(self, pipe: Pipeline, item: tuple, report: TickReport) -> None:
        """Settle one group of outcomes handed back by a batch thread (on the tick's thread)."""
        kind, batch, payload = item
        if kind == "settled":
            if not batch.freed:
                fault_point("after_provider")
                batch.freed = True
                pipe.busy -= 1
            if payload:
                self._phase("settle")
                pipe.writes.append(self._settle([batch.to_send[i] for i in payload], list(payload.values()), batch))
                pipe.written(report)
            return
        pipe.open -= 1
        if not batch.freed:
            batch.freed = True
            pipe.busy -= 1
        if payload is not None:
            raise payload

    def _absorb_all(self, pipe: Pipeline, report: TickReport) -> Exception | None:
        """Settle every batch still open; return the first failure instead of stopping at it."""
        failure = None
        while pipe.open or pipe.writes:
            try:
                if pipe.open:
                    self._absorb(pipe, self._next_result(pipe), report)
                else:
                    self._phase("settle")
                    pipe.written(report, wait=True)
            except Exception as err:
                failure = failure or err
        return failure

    def _settle(self, sent: list[tuple[dict, OutgoingMessage]], outcomes: list[Outcome], batch: Batch) -> Future:
        """Store what the providers said, fenced by the batch's lease; schedule the next touches; pause
        the providers that refused us. The future of the record (:meth:`Store.behind`): the changes applied."""
        at = now()
        worker = self.settings.worker
        changes, suppress, blocked = [], [], {}
        sending = MessageStatus.SENDING.value
        facts = Facts(at, max_attempts=worker.max_attempts, backoff_seconds=worker.retry_backoff_seconds)
        for (row, msg), outcome in zip(sent, outcomes):
            row = {**row, "status": sending, "attempt": row["attempt"] + 1}
            blocked.update(outcome.blocked)
            facts.segments = msg.metadata.get("segments")  # the rest of the facts are the batch's
            made = change(row, outcome, facts)
            changes.append(made)
            if outcome.suppress and made.event == MessageStatus.FAILED:
                suppress.append((row["contact_id"], row["channel"], outcome.reason, outcome.promotional_only))
        pause_until = at + timedelta(seconds=worker.provider_pause_seconds)
        return self.store.behind(self._record, changes, batch, suppress, blocked, at, pause_until)

    def _record(self, changes: list[Change], batch: Batch, suppress: list[tuple], blocked: dict[str, str],
                at: datetime, pause_until: datetime) -> list[Change]:
        with self.store.write() as conn:  # the transaction of _settle
            applied = apply(conn, changes, worker=self.worker_id, fence=batch.token, at=at)
            store.schedule_next(conn, [(c.message, at) for c in applied if c.values["status"] in ENDS_TOUCH],
                                batch.ctx.hash_of(), batch.ctx.plans, worker=self.worker_id)
            for contact_id, channel, reason, promotional_only in suppress:
                suppress_contact(conn, contact_id, channel, reason, promotional_only=promotional_only)
            store.pause_providers(conn, blocked, until=pause_until, at=at, worker=self.worker_id)
        return applied

    # -- leases of workers that died, and stopping -------------------------------------------------
    def recover(self, report: TickReport | None = None, *, everything: bool = False) -> int:
        """Take over messages whose lease expired (``everything``: all in flight, for a lone SQLite worker)."""
        return self.recovery.recover(report, everything=everything)

    def retire(self) -> None:
        """On a clean stop, remove this worker's heartbeat and end its leases: only a dead or hung worker is silent."""
        try:
            with self.store.write() as conn:
                store.retire(conn, self.worker_id)
        except sa.exc.SQLAlchemyError:  # the database is away: the row stays, and reads as a silent worker
            logger.warning("could not remove this worker's heartbeat; it will show as a silent worker")

    def stop(self) -> None:
        """Claim nothing more; sends waiting between tries give up now and are scheduled again."""
        self.stopping.set()
        self._timer.wake_all()

    def close(self) -> None:
        self.stop()
        self._batches.shutdown(wait=True)
        self._timer.close()
        self._pool.shutdown(wait=True)
        self.store.close()
        for limiter in self.sender.limiters.values():
            limiter.close()
        for group in self.providers.values():
            for provider in group:
                provider.close()
