"""Delivering the webhook outbox (:mod:`engine.outbox`): signed, at least once, in order per contact and URL.

The pending rows of one URL and contact form a *chain*; only its oldest row (the head) may go out, and each
next one only after the one before was taken. A round takes the chains whose head is due (oldest head first,
each cut at :data:`engine.store.outbox.CHAIN_ROWS` rows) and hands each whole chain to one of
:data:`CONCURRENCY` lanes, which POSTs its rows one after the other, while other lanes serve other chains::

    lane:  POST, signed (Standard Webhooks) → 2xx → outcome queued, next row of the chain
                                             → else: tenacity retries a few times at once (short network
                                               trouble), then the failure is queued and the chain stops
    main:  every FLUSH_SECONDS, the outcomes queued so far in one transaction: rows delivered; a failed row
           waits until its next_attempt_at (stored: survives restarts), and the rest of its chain behind it

A lane queues a chain's outcomes in the chain's order and a flush takes all queued so far, so a row is never
recorded as delivered before the rows of its chain ahead of it. A crash between a POST and the flush that
records it sends the row (and those after it in its chain) again, in order: the receiver drops a repeat by its
``webhook-id``. A URL that has failed for :data:`PAUSE_AFTER` without one success is paused (``followup
webhooks`` shows it; ``followup webhooks resume URL`` delivers again); its lanes stop at once.
"""
from __future__ import annotations

import http.client
import logging
import queue
import threading
import time
from concurrent.futures import ALL_COMPLETED, ThreadPoolExecutor, wait
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
from .store.outbox import due_chains, endpoint_failing_since, mark_delivered, mark_failed, paused_urls, set_endpoint
from .webhook_http import Poster
from .webhook_settings import WebhookEndpointSettings, masked_url

__all__ = ["Deliverer", "DeliveryReport", "PAUSE_AFTER", "backoff", "sign"]

logger = logging.getLogger("followup.webhooks")
#: a URL failing this long without one success is paused
PAUSE_AFTER = timedelta(hours=24)
#: quick tries within one round before the row waits for its next_attempt_at
QUICK_TRIES = 3
#: lanes: POSTs in flight at once, each of another chain
CONCURRENCY = 32
#: chains taken per round
CHAINS_PER_ROUND = 1000
#: how often the outcomes so far are recorded (a crash sends at most this much again)
FLUSH_SECONDS = 0.2
TIMEOUT = (5, 10)  # connect, read (seconds)
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


@dataclass
class _Round:
    """What the lanes of one round share with the main thread."""

    outcomes: "queue.SimpleQueue[tuple[dict, str | None]]" = field(default_factory=queue.SimpleQueue)
    paused: set[str] = field(default_factory=set)
    halt: threading.Event = field(default_factory=threading.Event)


class Deliverer:
    """Delivers due outbox rows to their URLs; :meth:`run` delivers until nothing is due (the worker runs it
    on its clock), :meth:`stop` ends a run early."""

    def __init__(self, config: Config, engine: sa.Engine, *, poster: Poster | None = None,
                 sleep: Callable[[float], None] = time.sleep, batch: int = CHAINS_PER_ROUND,
                 concurrency: int = CONCURRENCY):
        self.config = config
        self.engine = engine
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

    def run(self, rounds: int | None = None) -> DeliveryReport:
        """Deliver due events, round after round, until a round delivers nothing, ``rounds`` are done or
        :meth:`stop` is called; return what was done."""
        report = DeliveryReport()
        done = 0
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="webhook") as pool:
                while not self.stopping.is_set() and (rounds is None or done < rounds):
                    delivered = report.delivered
                    self._round(pool, report)
                    done += 1
                    if report.delivered == delivered:
                        break
        finally:
            self.poster.close()  # the lanes' threads are gone with the pool
        return report

    def _round(self, pool: ThreadPoolExecutor, report: DeliveryReport) -> None:
        """Deliver the due chains, one lane each; record the outcomes as they come back."""
        with self.engine.connect() as conn:
            paused = paused_urls(conn)
            chains = due_chains(conn, [u for u in self.endpoints if u not in paused], now(), self.batch)
        if not chains:
            return
        shared = _Round(paused=paused)
        lanes = [pool.submit(self._chain, chain, shared) for chain in chains]
        waiting = set(lanes)
        try:
            while waiting:
                _, waiting = wait(waiting, timeout=FLUSH_SECONDS, return_when=ALL_COMPLETED)
                self._flush(shared, report)
        except BaseException:
            shared.halt.set()  # the outcomes cannot be recorded: stop sending more
            raise
        for lane in lanes:
            lane.result()

    def _chain(self, chain: list[dict], shared: _Round) -> None:
        """POST the rows of one chain in order, until one fails or one is not due yet (a lane)."""
        endpoint = self.endpoints[chain[0]["url"]]
        for row in chain:
            if shared.halt.is_set() or self.stopping.is_set() or row["url"] in shared.paused:
                return
            due = row["next_attempt_at"]
            if due is not None and to_utc(due) > now():
                return
            error = self._post(endpoint, row)
            shared.outcomes.put((row, error))
            if error is not None:
                return

    def _flush(self, shared: _Round, report: DeliveryReport) -> None:
        """Record the outcomes queued so far, in one transaction."""
        taken = []
        while True:
            try:
                taken.append(shared.outcomes.get_nowait())
            except queue.Empty:
                break
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
                        shared.paused.add(row["url"])
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
