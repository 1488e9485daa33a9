"""Delivering the webhook outbox (:mod:`engine.outbox`): signed, at least once, in order per contact and URL.

The pending rows of one URL and contact form a *chain*; only its oldest row (the head) may go out, and each
next one only after the one before was taken. The main thread takes the chains whose head is due (oldest head
first, each cut at :data:`engine.store.outbox.CHAIN_ROWS` rows) and hands each whole chain to one of
:data:`CONCURRENCY` lanes, which POSTs its rows one after the other, while other lanes serve other chains::

    lane:  POST, signed (Standard Webhooks) → 2xx → outcome queued, next row of the chain
                                             → else: tenacity retries a few times at once (short network
                                               trouble), then the failure is queued and the chain stops
    main:  every FLUSH_SECONDS, the outcomes queued so far in one transaction: rows delivered; a failed row
           waits until its next_attempt_at (stored: survives restarts), and the rest of its chain behind it;
           when few chains are left to start, more are taken, none of a URL and contact still *active*

A chain stays active from the moment it is taken until its lane is done and every outcome it queued is
recorded, so a contact is never in two lanes at once and is taken again only as the database has it. A lane
queues a chain's outcomes in the chain's order and a flush takes all queued so far, so a row is never recorded
as delivered before the rows of its chain ahead of it. A crash between a POST and the flush that records it
sends the row (and those after it in its chain) again, in order: the receiver drops a repeat by its
``webhook-id``. A URL that has failed for :data:`PAUSE_AFTER` without one success is paused (``followup
webhooks`` shows it; ``followup webhooks resume URL`` delivers again); its lanes stop at once.

With several workers (PostgreSQL), one delivers at a time: a worker's run holds the cluster-wide lease
``job:webhooks`` (:data:`LEASE_SECONDS`, renewed every :data:`RENEW_SECONDS` while it runs); the others' runs
find it held and deliver nothing (the only worker of a SQLite file runs without one). A worker that loses the
lease stops taking chains and its lanes stop after the POST in flight; when a worker dies, another takes the lease once it ends and delivers from what the
database recorded, so a chain is never in two workers' lanes at once.
"""
from __future__ import annotations

import http.client
import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Callable

import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from .clock import now, to_utc
from .config import Config
from .models import EndpointState
from .poller import cluster_lease
from .store.outbox import due_chains, endpoint_failing_since, mark_delivered, mark_failed, paused_urls, set_endpoint
from .webhook_http import Poster
from .webhook_settings import WebhookEndpointSettings, masked_url

__all__ = ["Deliverer", "DeliveryReport", "PAUSE_AFTER", "backoff", "sign"]

logger = logging.getLogger("followup.webhooks")
#: a URL failing this long without one success is paused
PAUSE_AFTER = timedelta(hours=24)
#: quick tries before the row waits for its next_attempt_at
QUICK_TRIES = 3
#: lanes: POSTs in flight at once, each of another chain
CONCURRENCY = 32
#: chains taken at once (more are taken when half of them are done)
CHAINS_PER_TAKE = 1000
#: how often the outcomes so far are recorded (a crash sends at most this much again)
FLUSH_SECONDS = 0.2
TIMEOUT = (5, 10)  # connect, read (seconds)
#: the delivering worker's lease, and how often a run renews it
LEASE_SECONDS = 30
RENEW_SECONDS = 5
USER_AGENT = "followup-webhooks/1"


class DeliveryFailed(Exception):
    """The URL did not take the event (no connection, a timeout, or an answer other than 2xx)."""


@dataclass
class DeliveryReport:
    """What one run did."""

    delivered: int = 0
    failed: int = 0
    paused: list[str] = field(default_factory=list)  # masked URLs paused in this run


def backoff(attempts: int) -> timedelta:
    """How long a row waits after its ``attempts``-th failed round: 30 s doubling, at most an hour."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


@lru_cache(maxsize=64)
def _signer(secret: str) -> Webhook:
    return Webhook(secret)


def sign(secret: str, event_id: str, at: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of ``body`` (``webhook-id``, ``-timestamp``, ``-signature``)."""
    return {"webhook-id": event_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": _signer(secret).sign(event_id, at, body),
            "content-type": "application/json", "user-agent": USER_AGENT}


class _Lanes:
    """What the lanes of one run share with the main thread."""

    def __init__(self, paused: set[str]):
        self.outcomes: queue.SimpleQueue[tuple[dict, str | None]] = queue.SimpleQueue()
        self.finished: queue.SimpleQueue[tuple[str, int | None]] = queue.SimpleQueue()
        self.paused = paused
        self.halt = threading.Event()
        self.idle = threading.Event()
        self.errors: list[BaseException] = []
        #: (url, contact) of the chains taken and not yet released (main thread only)
        self.active: set[tuple[str, int | None]] = set()
        self._running = 0
        self._lock = threading.Lock()

    def starting(self, chains: int) -> None:
        with self._lock:
            self._running += chains
            self.idle.clear()

    def done(self, key: tuple[str, int | None]) -> None:
        """A lane is done with a chain (after queueing its last outcome)."""
        self.finished.put(key)
        with self._lock:
            self._running -= 1
            if self._running == 0:
                self.idle.set()


def _drain(q: queue.SimpleQueue) -> list:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


class Deliverer:
    """Delivers due outbox rows to their URLs; :meth:`run` delivers until nothing is due (the worker runs it
    on its clock), :meth:`stop` ends a run early."""

    def __init__(self, config: Config, engine: sa.Engine, *, owner: str | None = None, poster: Poster | None = None,
                 sleep: Callable[[float], None] = time.sleep, batch: int = CHAINS_PER_TAKE,
                 concurrency: int = CONCURRENCY):
        self.config = config
        self.engine = engine
        #: the worker running this deliverer, which holds the cluster-wide lease while it runs (None: no lease,
        #: a single process such as a test)
        self.owner = owner
        self.concurrency = concurrency
        self.poster = poster or Poster(*TIMEOUT)
        self.batch = batch
        self.endpoints: dict[str, WebhookEndpointSettings] = {w.url: w for w in config.settings.webhooks}
        self.stopping = threading.Event()
        # one controller for every lane: tenacity keeps each call's state per thread
        self.retrying = Retrying(stop=stop_after_attempt(QUICK_TRIES), wait=wait_exponential(multiplier=0.5, max=4),
                                 retry=retry_if_exception_type(DeliveryFailed), sleep=sleep, reraise=False)

    def stop(self) -> None:
        """End the current run after the POSTs in flight (their outcomes are recorded)."""
        self.stopping.set()

    def run(self) -> DeliveryReport:
        """Deliver due events until none is left to take and every lane is done, or :meth:`stop` is called;
        return what was done."""
        report = DeliveryReport()
        if not self._lease():
            return report
        renewed = time.monotonic()
        with self.engine.connect() as conn:
            lanes = _Lanes(paused_urls(conn))
        more = True  # False after a take found nothing, until a chain is released
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="webhook") as pool:
                try:
                    while True:
                        if time.monotonic() - renewed >= RENEW_SECONDS:
                            if not self._lease():
                                lanes.halt.set()  # another worker delivers now: stop after the POSTs in flight
                            renewed = time.monotonic()
                        ending = self.stopping.is_set() or lanes.halt.is_set()
                        if more and not ending and len(lanes.active) <= self.batch // 2:
                            more = self._take(pool, lanes)
                        if not lanes.active:
                            break
                        lanes.idle.wait(FLUSH_SECONDS)
                        released = _drain(lanes.finished)  # before the outcomes: theirs are all queued
                        self._flush(lanes, report)
                        if released:
                            lanes.active.difference_update(released)
                            more = True
                except BaseException:
                    lanes.halt.set()  # the outcomes cannot be recorded: stop sending more
                    raise
        finally:
            self.poster.close()  # the lanes' threads are gone with the pool
        if lanes.errors:
            raise lanes.errors[0]
        return report

    def _lease(self) -> bool:
        """Take or renew the delivering worker's lease; True when this one may deliver."""
        return self.owner is None or cluster_lease(self.engine, "webhooks", self.owner, seconds=LEASE_SECONDS)

    def _take(self, pool: ThreadPoolExecutor, lanes: _Lanes) -> bool:
        """Hand the next due chains (none of an active key) to the lanes; False when there was none."""
        with self.engine.connect() as conn:
            urls = [u for u in self.endpoints if u not in lanes.paused]
            chains = due_chains(conn, urls, now(), self.batch, skip=lanes.active)
        if not chains:
            return False
        lanes.starting(len(chains))
        for chain in chains:
            lanes.active.add((chain[0]["url"], chain[0]["contact_id"]))
            pool.submit(self._chain, chain, lanes)
        return True

    def _chain(self, chain: list[dict], lanes: _Lanes) -> None:
        """POST the rows of one chain in order, until one fails or one is not due yet (a lane)."""
        try:
            endpoint = self.endpoints[chain[0]["url"]]
            for row in chain:
                if lanes.halt.is_set() or self.stopping.is_set() or row["url"] in lanes.paused:
                    return
                due = row["next_attempt_at"]
                if due is not None and to_utc(due) > now():
                    return
                error = self._post(endpoint, row)
                lanes.outcomes.put((row, error))
                if error is not None:
                    return
        except BaseException as err:  # raised by run() once every lane is done
            lanes.errors.append(err)
            lanes.halt.set()
        finally:
            lanes.done((chain[0]["url"], chain[0]["contact_id"]))

    def _flush(self, lanes: _Lanes, report: DeliveryReport) -> None:
        """Record the outcomes queued so far, in one transaction."""
        taken = _drain(lanes.outcomes)
        if not taken:
            return
        with self.engine.begin() as conn:
            stamp = now()
            delivered = [row for row, error in taken if error is None]
            mark_delivered(conn, delivered, stamp)
            report.delivered += len(delivered)
            for row, error in taken:
                if error is not None:
                    report.failed += 1
                    if self._failed(conn, row, error, stamp):
                        lanes.paused.add(row["url"])
                        report.paused.append(masked_url(row["url"]))

    def _post(self, endpoint: WebhookEndpointSettings, row: dict) -> str | None:
        """POST one row, with quick retries; None when the URL took it, else why not (no secret in it)."""
        def attempt() -> None:
            headers = sign(endpoint.secret, row["event_id"], now(), row["body"])
            try:
                status = self.poster.post(endpoint.url, row["body"].encode("utf-8"), headers)
            except (OSError, http.client.HTTPException) as err:
                raise DeliveryFailed(type(err).__name__) from err
            if not 200 <= status < 300:
                raise DeliveryFailed(f"HTTP {status}")

        try:
            self.retrying(attempt)
        except RetryError as err:
            return str(err.last_attempt.exception())[:500]
        return None

    def _failed(self, conn: sa.Connection, row: dict, error: str, stamp: datetime) -> bool:
        """Record a failed round of ``row``; return True when its URL is paused now."""
        mark_failed(conn, row, error, stamp + backoff(row["attempts"] + 1))
        since = endpoint_failing_since(conn, row["url"]) or stamp
        pause = stamp - since >= PAUSE_AFTER
        values = {"failing_since": since, "last_error": error}
        if pause:
            values.update(state=EndpointState.PAUSED.value, paused_at=stamp)
            logger.warning("webhook %s paused: failing since %s (%s); `followup webhooks resume` delivers again",
                           masked_url(row["url"]), f"{since:%Y-%m-%d %H:%M} UTC", error)
        set_endpoint(conn, row["url"], stamp, **values)
        return pause
