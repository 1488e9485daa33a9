"""The dispatcher: each :meth:`Dispatcher.tick` claims due messages, checks them, sends, records.

The send protocol — the states a message passes and what a crash between them means::

    scheduled ──claim + checks──▶ sending ──provider──▶ sent / failed / retry (scheduled)
                  │                 │
                  │                 └─ crash here: fate unknown → reconcile
                  ├─▶ cancelled / skipped / deferred (scheduled later)
                  └─ crash here: nothing was committed → still scheduled

* The claim and the checks are one transaction: the due messages are chosen and locked (``FOR
  UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite), checked, rendered and committed as
  ``sending`` — leased to this worker (``lease_owner``, ``lease_token``, ``lease_until``) — or as
  their other fate. If the worker dies before the commit, nothing changed and no provider saw them.
  (``claimed``, a lease taken before the checks, is what earlier versions committed; recovery
  still takes such messages over.)
* ``sending`` is committed *before* the provider is called. If the worker dies now, the message
  is reconciled when its lease expires: found at the provider by our own id → ``sent``; a
  provider that can be asked and has no record → sent again; otherwise ``unknown`` for ops.
  It is never resent blindly.
* Results are written fenced by the lease token: a worker whose lease was taken over can no
  longer record anything for that message.

Every transition appends a delivery-log row in the same transaction (:mod:`engine.journal`).

Batches are pipelined: while up to ``MAX_INFLIGHT_BATCHES`` batches are at the provider, the tick's
thread claims and checks the next and commits it as ``sending``, and records the outcomes the send threads
hand back; all database work of a tick is on that one thread. A send that waits between tries
(``Retry-After``, a backoff) waits on a timer, not on a send thread. On SIGTERM nothing new is claimed;
sends already under way finish and are recorded, sends waiting between tries and messages of a batch
that have not reached the provider yet are scheduled again.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from providers.base import OutgoingMessage, Provider

from .abtests import EVERY as AB_EVERY, evaluate_due
from .catalog import sync_catalog
from .clock import now, to_utc
from .config import Config
from .control import HOLD, held_sequences
from .db import is_sqlite, make_engine
from .durations import format_duration
from .kinds import suppress as suppress_contact
from .links import LinkBook
from .journey_checks import JourneyChecks
from .waits import first_look
from .journal import Change, apply, apply_to_touch, execute, is_in
from .models import (COUNTS_AS_SENT, LEASE_RELEASED, status_is, Enrollment, Message, SequenceVersion,
                     WorkerStatus)
from .pauses import pause_providers
from .plan import SequencePlan, decide, plan_from_json
from .installation import message_id_of, reference_prefix
from .ratebuckets import rate_limiters
from .render import NotSent, build_message
from .sending import Outcome, Sender, Steps, Wait
from .timer import Timer
from .walcheckpoint import Checkpointer
from .watchdog import Phases
from .window import SendWindow, next_allowed

__all__ = ["Dispatcher", "TickReport", "DUE_SQL"]

logger = logging.getLogger("followup.worker")
#: batches at the provider at once: enough to overlap bookkeeping with sending and to keep one slow
#: inline retry from holding up the next batches, few enough that leases and memory stay small
MAX_INFLIGHT_BATCHES = 6
messages = Message.__table__
enrollments = Enrollment.__table__
versions_t = SequenceVersion.__table__
worker_status = WorkerStatus.__table__
#: the claim's choice: due messages, oldest first (`status` is compared with a literal, so the partial
#: index ix_messages_due, which holds only scheduled rows, serves it)
DUE_WHERE = "status = 'scheduled' AND next_attempt_at <= :at ORDER BY next_attempt_at, due_at LIMIT :limit"
DUE_SQL = f"SELECT id FROM messages WHERE {DUE_WHERE}"
#: what the checks, the rendering and the log need of a claimed message (no datetimes: each costs a parse
#: on SQLite, and the lease's end is known without reading it back)
WORK_FIELDS = ("id", "enrollment_id", "contact_id", "sequence", "touch_index", "touch", "channel", "urgent", "status",
               "attempt", "provider", "variant")
ENROLLMENT_FIELDS = ("id", "contact_id", "sequence", "sequence_hash", "status", "ended_reason", "offer_code",
                     "offer_expires_at", "event_key", "event_data")
CONTACT_FIELDS = ("id", "phone", "email", "first_name", "last_name", "timezone", "locale", "tags", "attrs",
                  "sms_suppressed", "email_suppressed")
OFFER_FIELDS = ("id", "sequence", "code", "title", "stock", "redeemed")
OFFERS_SQL = f"SELECT {', '.join(OFFER_FIELDS)} FROM offers"
SENT_STATUSES = "(" + ", ".join(f"'{s}'" for s in COUNTS_AS_SENT) + ")"


@dataclass
class _Batch:
    """A batch between its `sending` commit and its last record."""

    to_send: list[tuple[dict, OutgoingMessage]]
    token: str
    ctx: dict
    lease_until: datetime
    freed: bool = False  # its sends are done or only waiting between tries: its pipeline slot is free


@dataclass
class _Pipeline:
    """The batches of one tick that are not recorded yet, and their outcomes as the send threads hand them back."""

    results: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    busy: int = 0  # batches whose sends are under way
    open: int = 0  # batches not yet recorded to the end


@dataclass
class TickReport:
    """Counts of what one tick did, by event."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, event: str, n: int = 1) -> None:  # only the tick's thread counts
        self.counts[event] = self.counts.get(event, 0) + n

    @property
    def claimed(self) -> int:
        return self.counts.get("claimed", 0)


def _checkpoint(name: str) -> None:
    """A fault-injection point for the crash tests: FOLLOWUP_PAUSE_AT=name:/path/marker stops here."""
    spec = os.environ.get("FOLLOWUP_PAUSE_AT")
    if not spec or not spec.startswith(name + ":"):
        return
    marker = spec.split(":", 1)[1]
    with open(marker, "w") as fh:
        fh.write(str(os.getpid()))
    while True:  # the test kills us here with SIGKILL
        time.sleep(0.05)


class Dispatcher:
    """Claims, checks, sends and records due messages. Thread-safe to stop from a signal handler."""

    def __init__(self, config: Config, providers: dict[str, list[Provider]], *, engine: sa.Engine | None = None,
                 worker_id: str | None = None, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self.settings = config.settings
        self.engine = engine or make_engine(config.settings.database_url)
        self.providers = providers
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.sender = Sender(providers, inline_retries=self.settings.worker.inline_retries, sleep=sleep,
                             limiters=rate_limiters(self.engine, providers))
        self.stopping = threading.Event()
        self.phases = Phases()  # the tick names its phase here; the watchdog and the SIGTERM deadline read it
        self._sleep = None if sleep is time.sleep else sleep  # tests inject a sleep that records the waits
        self._plans: dict[str, SequencePlan] = {}
        self._ab_at: datetime | None = None  # when this worker last evaluated the A/B tests
        self._pool = ThreadPoolExecutor(max_workers=self.settings.worker.concurrency, thread_name_prefix="send")
        # more batch threads than slots: a batch whose last sends wait between tries holds a thread, not a slot
        self._batches = ThreadPoolExecutor(max_workers=4 * MAX_INFLIGHT_BATCHES, thread_name_prefix="batch")
        # on SQLite this process's own writers queue here for the database's single write lock: SQLite's
        # busy handler would have them poll for it with sleeps of a millisecond and more
        self._write_lock: Any = threading.RLock() if is_sqlite(self.engine) else nullcontext()
        self._timer = Timer("retry-timer")  # sends waiting between tries wait here, not on a send thread
        path = self.engine.url.database if is_sqlite(self.engine) else None
        self._checkpointer = Checkpointer(path) if path and path != ":memory:" else None
        with self._write() as conn:
            sync_catalog(conn, config)
            #: what makes the client references of this database's messages its own
            self.reference_prefix = reference_prefix(conn)
        config.renderer.preload({t.template for seq in config.sequences.values() for t in seq.touches})

    # -- the tick ---------------------------------------------------------------------
    def tick(self, *, max_batches: int | None = None) -> TickReport:
        """Recover expired leases, then claim and process batches until nothing is due (or stopping).

        Batches are pipelined: while some are at the provider, this thread claims, checks and commits
        the next as `sending` (so the frequency cap of the next sees it) and records what the send
        threads have finished. All database work of the tick stays on this one thread and connection:
        on SQLite, writers on several threads only queue for the one write lock and lose their caches.
        """
        report = TickReport()
        started = time.monotonic()
        try:
            self._phase("recovery")
            self.recover(report)
            self._pipeline(report, max_batches)
            self._ab_tests()  # hook: journeys (A/B tests evaluated at most once a minute)
            self._phase("heartbeat")
            self._heartbeat(report, time.monotonic() - started)
        finally:
            self.phases.end("tick")
        return report

    def _ab_tests(self) -> None:
        """Evaluate the A/B tests not evaluated in the last minute (nothing when no touch has ``ab:``)."""
        at = now()
        if self._ab_at is not None and at - self._ab_at < AB_EVERY:
            return
        self._ab_at = at
        if any(t.ab is not None for seq in self.config.sequences.values() for t in seq.touches):
            with self._write() as conn:
                evaluate_due(conn, self.config.sequences, at)

    def _phase(self, name: str) -> None:
        self.phases.enter("tick", name)

    def _pipeline(self, report: TickReport, max_batches: int | None) -> None:
        """Claim batches and hand them to the send threads until nothing is due; record every outcome."""
        batches = 0
        pipe = _Pipeline()
        try:
            while not self.stopping.is_set():
                # a batch holds a slot until its sends are done or only waiting between tries
                while pipe.busy >= MAX_INFLIGHT_BATCHES:
                    self._absorb(pipe, self._next_result(pipe), report)
                while not pipe.results.empty():
                    self._absorb(pipe, pipe.results.get(), report)
                self._phase("claim")
                claimed, prepared = self._claim(report)
                if not claimed:
                    break
                if prepared is not None:
                    batch = _Batch(*prepared)
                    pipe.busy += 1
                    pipe.open += 1
                    self._batches.submit(self._send_batch, batch, pipe.results)
                batches += 1
                if max_batches and batches >= max_batches:
                    break
        except BaseException:
            self._absorb_all(pipe, report)  # what is at the provider is still recorded; the first error wins
            raise
        failure = self._absorb_all(pipe, report)
        if failure is not None:
            raise failure

    def _next_result(self, pipe: "_Pipeline") -> tuple:
        """Wait for the send threads' next outcomes: the tick's thread is waiting on the providers."""
        self._phase("send")
        return pipe.results.get()

    def _claim(self, report: TickReport) -> tuple[int, tuple | None]:
        """Choose due messages, check them and commit each as `sending` or as its other fate: one transaction.

        Returns how many were chosen, and what :meth:`_send_batch` needs (None when nothing goes out).
        """
        at = now()
        token = uuid.uuid4().hex
        lease_until = at + timedelta(seconds=self.settings.worker.lease_seconds)
        with self._write() as conn:
            # on PostgreSQL the rows chosen stay locked until the commit; a peer claiming now skips them
            rows = execute(conn, f"SELECT {', '.join(WORK_FIELDS)}, next_attempt_at, due_at FROM messages "
                                 f"WHERE {DUE_WHERE}{'' if is_sqlite(self.engine) else ' FOR UPDATE SKIP LOCKED'}",
                           {"at": at, "limit": self.settings.worker.batch_size})
            if not rows:
                return 0, None
            # oldest first: after a night every deferred message shares 09:00, so due_at decides (SQLite's
            # text form of a time sorts as the time does)
            rows.sort(key=lambda r: (r[-2], r[-1] or r[-2], r[0]))
            claimed = [dict(zip(WORK_FIELDS, r)) for r in rows]  # zip stops at the last work field
            for row, r in zip(claimed, rows):  # hook: journeys (an event wait starts at its due_at)
                row["due_at"] = r[-1]
            _checkpoint("after_claim")
            self._phase("render")
            applied, prepared = self._prepare(conn, claimed, token, at, lease_until)
        report.add("claimed", len(claimed))
        for change in applied:
            report.add(change.event)
        return len(claimed), prepared

    # -- reading what the checks need, in a few queries per batch ----------------------
    def _plan(self, conn: sa.Connection, seq_hash: str) -> SequencePlan:
        if seq_hash not in self._plans:
            text = conn.execute(sa.select(versions_t.c.definition).where(versions_t.c.hash == seq_hash)).scalar_one()
            self._plans[seq_hash] = plan_from_json(text, self.config.holidays)
        return self._plans[seq_hash]

    def _context(self, conn: sa.Connection, rows: list[dict]) -> dict[str, Any]:
        # each enrollment with its contact, in one query (a round trip less on PostgreSQL)
        e_sql, params = is_in(conn, "e.id", "e", {r["enrollment_id"] for r in rows})
        width = len(ENROLLMENT_FIELDS)
        ens, cons = {}, {}
        for values in execute(conn, f"SELECT {', '.join('e.' + f for f in ENROLLMENT_FIELDS)}, "
                                    f"{', '.join('c.' + f for f in CONTACT_FIELDS)} FROM enrollments e "
                                    f"JOIN contacts c ON c.id = e.contact_id WHERE {e_sql}", params):
            e = dict(zip(ENROLLMENT_FIELDS, values))  # zip stops at the enrollment's last field
            e["offer_expires_at"] = to_utc(e["offer_expires_at"])
            ens[e["id"]] = e
            if e["contact_id"] not in cons:
                c = dict(zip(CONTACT_FIELDS, values[width:]))
                if isinstance(c["attrs"], str):  # SQLite hands JSON back as its text
                    c["attrs"] = {} if c["attrs"] == "{}" else json.loads(c["attrs"])
                cons[c["id"]] = c
        c_sql, params = is_in(conn, "contact_id", "c", cons)
        offer_rows = {(o[1], o[2]): dict(zip(OFFER_FIELDS, o)) for o in execute(conn, OFFERS_SQL, {})}
        sent: dict[int, list[datetime]] = {}
        for cid, at in execute(conn, f"SELECT contact_id, sent_at FROM messages WHERE {c_sql} "
                                     f"AND sent_at >= :since AND status IN {SENT_STATUSES}",
                               {**params, "since": now() - timedelta(days=2)}):
            sent.setdefault(cid, []).append(to_utc(at))
        paused = self._paused(conn)
        plans = {e["sequence_hash"]: self._plan(conn, e["sequence_hash"]) for e in ens.values()}
        held = held_sequences(conn, self.config, {r["sequence"] for r in rows})
        return dict(enrollments=ens, contacts=cons, offers=offer_rows, sent=sent, paused=paused, plans=plans,
                    held=held)

    def _paused(self, conn: sa.Connection) -> frozenset[str]:
        """The providers paused for the whole cluster now."""
        at = now()
        return frozenset(name for name, until in execute(
            conn, "SELECT name, paused_until FROM provider_states WHERE state = 'paused'", {})
            if until is None or to_utc(until) > at)

    # -- one batch ----------------------------------------------------------------------
    def _prepare(self, conn: sa.Connection, rows: list[dict], token: str, at: datetime,
                 lease_until: datetime) -> tuple[list[Change], tuple | None]:
        """Check chosen messages in the claim's transaction: write what is not sent, the rest as `sending`.

        Returns the changes written, and what :meth:`_send_batch` needs to send (None when nothing goes out).
        """
        ctx = self._context(conn, rows)
        journey = JourneyChecks(conn, rows, ctx)  # hook: journeys (facts and A/B winners, read once per batch)
        links = LinkBook.load(conn, self.settings, [r["id"] for r in rows], at)  # codes given before keep
        lease = {"lease_owner": self.worker_id, "lease_token": token, "lease_until": lease_until}
        release = LEASE_RELEASED
        first: list[Change] = []
        to_send: list[tuple[dict, OutgoingMessage]] = []
        ended: list[tuple[dict, datetime]] = []
        zones: dict[str, ZoneInfo] = {}
        windows: dict[tuple[str, SendWindow], datetime] = {}  # when each zone's window next opens
        providers = {channel: next((p.name for p in group if p.name not in ctx["paused"]), None)
                     for channel, group in self.providers.items()}
        for row in rows:
            enrollment = ctx["enrollments"][row["enrollment_id"]]
            contact = ctx["contacts"][row["contact_id"]]
            plan = ctx["plans"][enrollment["sequence_hash"]]
            zone = contact.get("timezone") or self.settings.timezone.key
            tz = zones.get(zone) or zones.setdefault(zone, ZoneInfo(zone))
            window = plan.send_window or self.settings.send_window
            opens = windows.get((zone, window))
            if opens is None:
                opens = windows[(zone, window)] = next_allowed(at, tz, window)
            offer = ctx["offers"].get((row["sequence"], enrollment.get("offer_code")))
            decision = decide(now=at, message=row, enrollment=enrollment, contact=contact, offer=offer, tz=tz,
                              window=window, cap=plan.frequency_cap or self.settings.frequency_cap,
                              sent_times=ctx["sent"].setdefault(row["contact_id"], []), opens=opens,
                              held=ctx["held"].get(row["sequence"]), hold=HOLD,
                              kind=plan.touches[row["touch_index"]].kind)
            # hook: journeys (event waits and only_if)
            decision = journey.check(decision, plan.touches[row["touch_index"]], row, enrollment, contact, at,
                                     ctx["held"].get(row["sequence"]))
            if decision.action == "deferred":
                first.append(Change(row, "deferred", {"status": "scheduled", "next_attempt_at": decision.until,
                                                      "reason": decision.reason, **release}, reason=decision.reason))
                continue
            if decision.action in ("cancelled", "skipped"):
                first.append(Change(row, decision.action, {"status": decision.action, "reason": decision.reason,
                                                           "next_attempt_at": None, **release}, reason=decision.reason))
                if decision.action == "skipped":
                    ended.append((row, at))
                continue
            touch, variant = journey.variant(plan.touches[row["touch_index"]], row)  # hook: journeys (A/B)
            built = build_message(self.config, row, touch, plan, enrollment, contact, offer, tz, at,
                                  self.reference_prefix, links)
            if isinstance(built, NotSent):  # a broken template or a too long SMS: the sequence goes on
                first.append(Change(row, built.status, {"status": built.status, "reason": built.reason,
                                                        "next_attempt_at": None, **release}, reason=built.reason))
                ended.append((row, at))
                continue
            provider_name = providers.get(row["channel"])
            sending = {"status": "sending", "attempt": row["attempt"] + 1, "sent_at": at, "provider": provider_name,
                       **lease}
            if variant is not None:  # hook: journeys (the variant is kept on the message)
                sending["variant"] = variant
            first.append(Change(row, "sending", sending, provider=provider_name))
            ctx["sent"][row["contact_id"]].append(at)
            to_send.append((row, built))
        # no fence: the rows are this transaction's own (locked on PostgreSQL, the write lock on SQLite)
        applied = apply(conn, first, worker=self.worker_id, at=at)
        links.save(conn, {row["id"] for row, _ in to_send})
        self._schedule_next(conn, ended, ctx)
        return applied, ((to_send, token, ctx, lease_until) if to_send else None)

    def _send_batch(self, batch: "_Batch", results: "queue.SimpleQueue") -> None:
        """Send a prepared batch (on a batch thread); hand each group of outcomes back to the tick."""
        error = None
        try:
            _checkpoint("before_provider")
            for settled in self._send_all([msg for _, msg in batch.to_send], batch.ctx["paused"], batch.token,
                                          batch.lease_until):
                results.put(("settled", batch, settled))
        except BaseException as err:  # noqa: BLE001 - handed to the tick's thread, which raises it
            error = err
        finally:
            results.put(("end", batch, error))

    def _absorb(self, pipe: "_Pipeline", item: tuple, report: TickReport) -> None:
        """Record one group of outcomes handed back by a batch thread (on the tick's thread)."""
        kind, batch, payload = item
        if kind == "settled":
            if not batch.freed:
                _checkpoint("after_provider")
                batch.freed = True
                pipe.busy -= 1
            if payload:
                self._phase("settle")
                self._record([batch.to_send[i] for i in payload], list(payload.values()), batch.token, batch.ctx,
                             report)
            return
        pipe.open -= 1
        if not batch.freed:
            batch.freed = True
            pipe.busy -= 1
        if payload is not None:
            raise payload

    def _absorb_all(self, pipe: "_Pipeline", report: TickReport) -> Exception | None:
        """Record every batch still open; return the first failure instead of stopping at it."""
        failure = None
        while pipe.open:
            try:
                self._absorb(pipe, self._next_result(pipe), report)
            except Exception as err:
                failure = failure or err
        return failure

    def _send_all(self, outgoing: list[OutgoingMessage], paused: frozenset[str], token: str,
                  lease_until: datetime) -> Iterator[dict[int, Outcome]]:
        """Send concurrently: ``concurrency`` threads pull from one shared queue of the batch.

        Yields the outcomes by index: first those settled when the queue is drained, then, if some
        sends were waiting between tries, the rest. A send that must wait (``Retry-After``, a backoff)
        gives its thread back and resumes on a send thread when the wait is over. The batch's leases
        are renewed while it is at the provider, and a message whose lease ran out is not sent: a
        peer may have taken it over, and two sends would be a duplicate.
        """
        results: list[Outcome | None] = [None] * len(outgoing)
        cursor = iter(range(len(outgoing)))
        lock = threading.Lock()
        left = [len(outgoing)]
        all_settled = threading.Event()
        held = [lease_until]
        done = threading.Event()
        lease = timedelta(seconds=self.settings.worker.lease_seconds)
        ids = [message_id_of(self.reference_prefix, m.message_id) for m in outgoing]

        def renew() -> None:
            while not done.wait(lease.total_seconds() / 3):
                until = now() + lease
                try:
                    with self._write() as conn:
                        conn.execute(sa.update(messages).where(messages.c.id.in_(ids), messages.c.lease_token == token,
                                                               status_is(messages.c.status, "sending"))
                                     .values(lease_until=until))
                    held[0] = until
                except Exception:  # the database is away: sends not yet made wait for the next try
                    logger.exception("could not renew the leases of a batch at the provider")

        def settle(index: int, outcome: Outcome) -> None:
            with lock:
                results[index] = outcome
                left[0] -= 1
                if not left[0]:
                    all_settled.set()

        def advance(index: int, steps: Steps) -> None:
            try:
                wait = next(steps)
            except StopIteration as end:
                settle(index, end.value)
            except Exception as err:  # a bug past the sender's own guard: the request may have left
                logger.exception("sending message %s failed unexpectedly", outgoing[index].message_id)
                settle(index, Outcome("unknown", f"{type(err).__name__} while sending; fate unknown, not resent"))
            else:
                if self._sleep is not None:
                    self._sleep(wait.seconds)
                    resume(index, steps, wait)
                else:
                    self._timer.later(wait.seconds, lambda: self._pool.submit(resume, index, steps, wait))

        def resume(index: int, steps: Steps, wait: Wait) -> None:
            if self.stopping.is_set() or now() >= held[0]:
                steps.close()
                settle(index, wait.abandoned("the worker is stopping" if self.stopping.is_set()
                                             else "the lease ran out before the next try; not sent again here"))
            else:
                advance(index, steps)

        def drain() -> None:
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                if self.stopping.is_set():  # draining: what has not started yet goes back to the queue
                    settle(index, Outcome("released", "the worker is stopping; not sent, scheduled again"))
                elif now() >= held[0]:
                    settle(index, Outcome("retry", "the lease ran out before the provider was called; not sent"))
                else:
                    advance(index, self.sender.steps(outgoing[index], paused))

        keeper = threading.Thread(target=renew, daemon=True, name="lease-keeper")
        keeper.start()
        try:
            workers = min(self.settings.worker.concurrency, len(outgoing))
            for future in [self._pool.submit(drain) for _ in range(workers)]:
                future.result()
            with lock:
                first = {i: r for i, r in enumerate(results) if r is not None}
            yield first
            if len(first) < len(results):
                all_settled.wait()
                yield {i: r for i, r in enumerate(results) if i not in first}  # type: ignore[misc]
        finally:
            done.set()
            keeper.join()

    def _record(self, sent: list[tuple[dict, OutgoingMessage]], outcomes: list[Outcome], token: str,
                ctx: dict, report: TickReport) -> None:
        at = now()
        worker = self.settings.worker
        changes, ended, suppress, blocked = [], [], [], {}
        release = LEASE_RELEASED
        poll_at = at + timedelta(minutes=1)
        for (row, _msg), outcome in zip(sent, outcomes):
            row = {**row, "attempt": row["attempt"] + 1}
            blocked.update(outcome.blocked)
            if outcome.kind == "sent":
                result = outcome.result
                # sent_at stays the moment the attempt went to the provider, as recovery keeps it too: the
                # provider's answer has its own time in the log row, and the frequency cap's index is left alone
                changes.append(Change(row, "sent", {
                    "status": "sent", "provider": outcome.provider, "reason": outcome.reason,
                    "provider_message_id": result.provider_message_id if result else None,
                    "cost": result.cost if result else None, "segments": _msg.metadata.get("segments"),
                    "poll_at": poll_at, **release},
                    reason=outcome.reason, provider=outcome.provider))
                ended.append((row, at))
            elif outcome.kind == "failed":
                changes.append(Change(row, "failed", {"status": "failed", "reason": outcome.reason,
                                                      "provider": outcome.provider, "next_attempt_at": None, **release},
                                      reason=outcome.reason, provider=outcome.provider))
                if outcome.suppress:
                    suppress.append((row["contact_id"], row["channel"], outcome.reason, outcome.promotional_only))
                ended.append((row, at))
            elif outcome.kind == "released":
                changes.append(Change(row, "released", {
                    "status": "scheduled", "next_attempt_at": at, "attempt": row["attempt"] - 1, "sent_at": None,
                    "reason": outcome.reason, **release}, reason=outcome.reason))
            elif outcome.kind == "unknown":
                changes.append(Change(row, "unknown", {"status": "unknown", "reason": outcome.reason,
                                                       "provider": outcome.provider, **release},
                                      reason=outcome.reason, provider=outcome.provider))
                ended.append((row, at))
            elif outcome.kind == "retry" and row["attempt"] >= worker.max_attempts:
                reason = f"retries exhausted after {row['attempt']} attempts: {outcome.reason}"
                changes.append(Change(row, "failed", {"status": "failed", "reason": reason, "provider": outcome.provider,
                                                      "next_attempt_at": None, **release}, reason=reason))
                ended.append((row, at))
            else:  # retry, or deferred because every provider is paused: defer, don't drop
                delay = outcome.retry_after or worker.retry_backoff_seconds * 2 ** max(0, row["attempt"] - 1)
                attempt = row["attempt"] if outcome.kind == "retry" else row["attempt"] - 1
                if outcome.kind == "deferred":  # until a line's operator hours open, else a backoff
                    delay = outcome.retry_after if outcome.retry_after is not None else worker.retry_backoff_seconds
                until = at + timedelta(seconds=delay)
                reason = f"{outcome.reason}; next attempt at {until.isoformat()}"
                changes.append(Change(row, "retry" if outcome.kind == "retry" else "deferred", {
                    "status": "scheduled", "next_attempt_at": until, "attempt": attempt, "reason": reason,
                    "sent_at": None, **release}, reason=reason, provider=outcome.provider))
        with self._write() as conn:
            applied = apply(conn, changes, worker=self.worker_id, fence=token, at=at)
            ids = {c.message["id"] for c in applied}
            self._schedule_next(conn, [e for e in ended if e[0]["id"] in ids], ctx)
            for contact_id, channel, reason, promotional_only in suppress:
                suppress_contact(conn, contact_id, channel, reason, promotional_only=promotional_only)
            self._pause(conn, blocked, at)
        for change in applied:
            report.add(change.event)

    def _pause(self, conn: sa.Connection, blocked: dict[str, str], at: datetime) -> None:
        pause_providers(conn, blocked, at=at, seconds=self.settings.worker.provider_pause_seconds,
                        worker=self.worker_id)

    def _schedule_next(self, conn: sa.Connection, ended: list[tuple[dict, datetime]], ctx: dict) -> None:
        """Touch n ended (sent, failed, skipped): touch n+1 becomes due ``after`` it; the last ends the enrollment.

        Set-based: the touches that ended together in the same sequence version share their next due
        time, so each such group is one statement.
        """
        groups: dict[tuple[str, int, datetime], list[int]] = {}
        finished = []
        for row, ended_at in ended:
            seq_hash = ctx["enrollments"][row["enrollment_id"]]["sequence_hash"]
            if row["touch_index"] + 1 >= len(ctx["plans"][seq_hash].touches):
                finished.append(row["enrollment_id"])
            else:
                groups.setdefault((seq_hash, row["touch_index"] + 1, ended_at), []).append(row["enrollment_id"])
        for (seq_hash, index, ended_at), enrollment_ids in groups.items():
            plan = ctx["plans"][seq_hash]
            after = plan.touches[index].after
            due = ended_at + after
            look = first_look(plan.touches[index])  # hook: journeys (an event wait looks first a little later)
            apply_to_touch(conn, enrollment_ids, index, event="scheduled", worker=self.worker_id,
                           values={"status": "scheduled", "due_at": due, "next_attempt_at": due + look},
                           reason=f"due {due:%Y-%m-%dT%H:%M:%SZ}, {format_duration(after)} "
                                  f"after {plan.touches[index - 1].name}")
        if finished:
            conn.execute(sa.update(enrollments).where(enrollments.c.id.in_(finished), enrollments.c.status == "active")
                         .values(status="completed", ended_reason="every touch done", ended_at=now()))

    # -- leases of workers that died ------------------------------------------------------
    def recover(self, report: TickReport | None = None, *, everything: bool = False) -> int:
        """Take over messages whose lease expired (``everything``: all in flight, for a lone SQLite worker)."""
        from .recovery import recover

        return recover(self, report, everything=everything)

    def _heartbeat(self, report: TickReport, duration: float) -> None:
        at = now()
        name = f"worker:{self.worker_id}"
        detail = json.dumps({**report.counts, "duration_seconds": round(duration, 4)})
        with self._write() as conn:
            done = conn.execute(sa.update(worker_status).where(worker_status.c.name == name)
                                .values(last_tick_at=at, detail=detail)).rowcount
            if not done:
                conn.execute(sa.insert(worker_status).values(name=name, owner=self.worker_id, last_tick_at=at,
                                                             detail=detail))

    def retire(self) -> None:
        """Remove this worker's heartbeat on a clean stop: only a worker that died or hangs is silent."""
        try:
            with self._write() as conn:
                conn.execute(sa.delete(worker_status).where(worker_status.c.name == f"worker:{self.worker_id}"))
        except sa.exc.SQLAlchemyError:  # the database is away: the row stays, and reads as a silent worker
            logger.warning("could not remove this worker's heartbeat; it will show as a silent worker")

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A write transaction (queued behind this worker's other writers on SQLite)."""
        with self._write_lock, self.engine.begin() as conn:
            yield conn
        if self._checkpointer is not None:
            self._checkpointer.poke()

    def stop(self) -> None:
        """Claim nothing more; sends waiting between tries give up now and are scheduled again."""
        self.stopping.set()
        self._timer.wake_all()

    def close(self) -> None:
        self.stopping.set()
        self._timer.wake_all()  # waiting sends give up now and are scheduled again
        self._batches.shutdown(wait=True)
        self._timer.close()
        self._pool.shutdown(wait=True)
        if self._checkpointer is not None:
            self._checkpointer.close()
        for limiter in self.sender.limiters.values():
            limiter.close()
        for group in self.providers.values():
            for provider in group:
                provider.close()
