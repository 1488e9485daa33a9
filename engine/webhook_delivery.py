"""Delivering the webhook outbox (:mod:`engine.outbox`): signed, at least once, in order per contact and URL.

Each round takes, for every URL and contact, only the oldest event not yet delivered (the *head*), and only
when it is due; the next event of that contact waits until the head is delivered. A delivery::

    POST, signed (Standard Webhooks) → 2xx → row delivered, committed
                                      → else: tenacity retries a few times at once (short network trouble),
                                        then the row waits until next_attempt_at (stored: survives restarts)

A crash between the POST and the commit sends the event again on the next round: the receiver drops the
repeat by its ``webhook-id``. A URL that has failed for :data:`PAUSE_AFTER` without one success is paused
(``followup webhooks`` shows it; ``followup webhooks resume URL`` delivers again).
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

import requests
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from .clock import now, to_utc
from .config import Config
from .models import EndpointState, OutboxStatus, WebhookEndpoint, WebhookOutbox, status_is
from .webhook_settings import WebhookEndpointSettings, masked_url

__all__ = ["Deliverer", "DeliveryReport", "PAUSE_AFTER", "backoff", "sign"]

logger = logging.getLogger("followup.webhooks")
outbox_t = WebhookOutbox.__table__
endpoints_t = WebhookEndpoint.__table__
#: a URL failing this long without one success is paused
PAUSE_AFTER = timedelta(hours=24)
#: quick tries within one round before the row waits for its next_attempt_at
QUICK_TRIES = 3
#: POSTs in flight at once, each to another contact (a contact's events go one after the other)
CONCURRENCY = 16
TIMEOUT = (5, 10)  # connect, read (seconds)
USER_AGENT = "followup-webhooks/1"


class DeliveryFailed(Exception):
    """The URL did not take the event (no connection, a timeout, or an answer other than 2xx)."""


@dataclass
class DeliveryReport:
    """What one round did."""

    delivered: int = 0
    failed: int = 0
    paused: list[str] = field(default_factory=list)  # masked URLs paused in this round


def backoff(attempts: int) -> timedelta:
    """How long a row waits after its ``attempts``-th failed round: 30 s doubling, at most an hour."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def sign(secret: str, event_id: str, at: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of ``body`` (``webhook-id``, ``-timestamp``, ``-signature``)."""
    return {"webhook-id": event_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(event_id, at, body),
            "content-type": "application/json", "user-agent": USER_AGENT}


class Deliverer:
    """Delivers due outbox rows to their URLs; :meth:`run` is one round (the worker runs it on its clock)."""

    def __init__(self, config: Config, engine: sa.Engine, *, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep, batch: int = 500):
        self.config = config
        self.engine = engine
        self.session = session or requests.Session()
        self.sleep = sleep
        self.batch = batch
        self.endpoints: dict[str, WebhookEndpointSettings] = {w.url: w for w in config.settings.webhooks}

    def run(self, rounds: int = 20) -> DeliveryReport:
        """Deliver due events, head by head, until none is due or ``rounds`` passes are done; return what was
        done."""
        report = DeliveryReport()
        for _ in range(rounds):
            delivered = report.delivered
            self._round(report)
            if report.delivered == delivered:
                break
        return report

    def _round(self, report: DeliveryReport) -> None:
        """Deliver every due head once: POSTs to different contacts run side by side (at most
        :data:`CONCURRENCY`); the outcomes are committed on this thread as they come back."""
        with self.engine.connect() as conn:
            paused = {u for (u,) in conn.execute(sa.select(endpoints_t.c.url).where(
                endpoints_t.c.state == EndpointState.PAUSED.value))}
            heads = [h for h in self._heads(conn, paused) if h["url"] in self.endpoints]
        if not heads:
            return
        with ThreadPoolExecutor(max_workers=min(CONCURRENCY, len(heads)), thread_name_prefix="webhook") as pool:
            posts = {pool.submit(self._post, self.endpoints[row["url"]], row): row for row in heads}
            waiting = set(posts)
            while waiting:
                done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                with self.engine.begin() as conn:  # what came back meanwhile, in one transaction
                    delivered = [posts[f] for f in done if f.result() is None]
                    if delivered:
                        self._delivered(conn, delivered)
                        report.delivered += len(delivered)
                    for future in done:
                        if future.result() is not None:
                            report.failed += 1
                            if self._failed(conn, posts[future], future.result()):
                                report.paused.append(masked_url(posts[future]["url"]))

    def _heads(self, conn: sa.Connection, paused: set[str]) -> list[dict]:
        """The oldest pending row of each URL and contact, where it is due, oldest first."""
        pending = status_is(outbox_t.c.status, OutboxStatus.PENDING.value)
        first = (sa.select(sa.func.min(outbox_t.c.id)).where(pending)
                 .group_by(outbox_t.c.url, outbox_t.c.contact_id))
        query = (sa.select(outbox_t).where(outbox_t.c.id.in_(first), outbox_t.c.next_attempt_at <= now())
                 .order_by(outbox_t.c.id).limit(self.batch))
        if paused:
            query = query.where(outbox_t.c.url.not_in(paused))
        return [dict(r) for r in conn.execute(query).mappings()]

    def _post(self, endpoint: WebhookEndpointSettings, row: dict) -> str | None:
        """POST one row, with quick retries; None when the URL took it, else why not (no secret in it)."""
        def attempt() -> None:
            headers = sign(endpoint.secret, row["event_id"], now(), row["body"])
            try:
                answer = self.session.post(endpoint.url, data=row["body"].encode("utf-8"), headers=headers,
                                           timeout=TIMEOUT, allow_redirects=False)
            except requests.RequestException as err:
                raise DeliveryFailed(type(err).__name__) from err
            if not 200 <= answer.status_code < 300:
                raise DeliveryFailed(f"HTTP {answer.status_code}")

        try:
            Retrying(stop=stop_after_attempt(QUICK_TRIES), wait=wait_exponential(multiplier=0.5, max=4),
                     retry=retry_if_exception_type(DeliveryFailed), sleep=self.sleep, reraise=False)(attempt)
        except RetryError as err:
            return str(err.last_attempt.exception())[:500]
        return None

    def _delivered(self, conn: sa.Connection, rows: list[dict]) -> None:
        stamp = now()
        conn.execute(sa.update(outbox_t).where(outbox_t.c.id == sa.bindparam("row_id")).values(
            status=OutboxStatus.DELIVERED.value, delivered_at=stamp, attempts=sa.bindparam("tries"),
            next_attempt_at=None, last_error=None),
            [{"row_id": r["id"], "tries": r["attempts"] + 1} for r in rows])
        for url in {r["url"] for r in rows}:
            self._endpoint(conn, url, failing_since=None, last_error=None)

    def _failed(self, conn: sa.Connection, row: dict, error: str) -> bool:
        """Record a failed round of ``row``; return True when its URL is paused now."""
        stamp = now()
        attempts = row["attempts"] + 1
        conn.execute(sa.update(outbox_t).where(outbox_t.c.id == row["id"]).values(
            attempts=attempts, next_attempt_at=stamp + backoff(attempts), last_error=error))
        current = conn.execute(sa.select(endpoints_t).where(endpoints_t.c.url == row["url"])).mappings().first()
        since = to_utc(current["failing_since"]) if current and current["failing_since"] else stamp
        pause = stamp - since >= PAUSE_AFTER
        values = {"failing_since": since, "last_error": error}
        if pause:
            values.update(state=EndpointState.PAUSED.value, paused_at=stamp)
            logger.warning("webhook %s paused: failing since %s (%s); `followup webhooks resume` delivers again",
                           masked_url(row["url"]), f"{since:%Y-%m-%d %H:%M} UTC", error)
        self._endpoint(conn, row["url"], **values)
        return pause

    @staticmethod
    def _endpoint(conn: sa.Connection, url: str, **values) -> None:
        values["updated_at"] = now()
        done = conn.execute(sa.update(endpoints_t).where(endpoints_t.c.url == url).values(**values))
        if done.rowcount == 0:
            conn.execute(sa.insert(endpoints_t).values(url=url, state=EndpointState.ACTIVE.value,
                                                       **{"failing_since": None, "last_error": None, **values}))
