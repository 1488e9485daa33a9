"""The delivery poller: asks the panels for final states on a widening schedule, and reads inbound SMS.

It runs once per cluster, not once per worker: a lease row in ``worker_status`` (``job:poller``)
decides which worker polls.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

import sqlalchemy as sa

from providers.base import Provider
from providers.errors import ProviderError

from .clock import now
from .config import Config
from .journal import Change, apply
from .models import Message, WorkerStatus, status_is
from .receipts import apply_inbound, apply_reports, next_poll
from .watchdog import Phases

__all__ = ["Poller", "cluster_lease"]

logger = logging.getLogger("followup.poller")
messages = Message.__table__
worker_status = WorkerStatus.__table__
BATCH = 500


def cluster_lease(engine: sa.Engine, job: str, owner: str, seconds: int) -> bool:
    """Take or renew the cluster-wide lease on ``job``; True when ``owner`` holds it."""
    at = now()
    name = f"job:{job}"
    with engine.begin() as conn:
        taken = conn.execute(sa.update(worker_status).where(
            worker_status.c.name == name,
            sa.or_(worker_status.c.owner == owner, worker_status.c.until.is_(None), worker_status.c.until < at))
            .values(owner=owner, until=at + timedelta(seconds=seconds), last_tick_at=at)).rowcount
        if taken:
            return True
        exists = conn.execute(sa.select(worker_status.c.name).where(worker_status.c.name == name)).first()
        if exists:
            return False
        conn.execute(sa.insert(worker_status).values(name=name, owner=owner, until=at + timedelta(seconds=seconds),
                                                     last_tick_at=at))
        return True


def _polls(provider: Provider) -> bool:
    return type(provider).delivery_status is not Provider.delivery_status


class Poller:
    """Polls the providers; names its phase in ``phases`` (job ``poll``) and ends a round early on ``stopping``."""

    def __init__(self, config: Config, engine: sa.Engine, providers: dict[str, list[Provider]], owner: str, *,
                 phases: Phases | None = None, stopping: threading.Event | None = None):
        self.config, self.engine, self.owner = config, engine, owner
        self.by_name = {p.name: p for group in providers.values() for p in group}
        self.phases = phases or Phases()
        self.stopping = stopping or threading.Event()

    def poll(self) -> dict[str, int]:
        """One round: receipts for messages whose poll is due, then inbound SMS. Returns counts."""
        try:
            return self._round()
        finally:
            self.phases.end("poll")

    def _round(self) -> dict[str, int]:
        counts = {"receipts": 0, "inbound": 0, "polled": 0}
        self.phases.enter("poll", "lease")
        if not cluster_lease(self.engine, "poller", self.owner, seconds=120):
            return counts
        at = now()
        self.phases.enter("poll", "due receipts")
        with self.engine.connect() as conn:
            due = [dict(r) for r in conn.execute(
                sa.select(messages).where(status_is(messages.c.status, "sent"), messages.c.poll_at <= at)
                .order_by(messages.c.poll_at).limit(BATCH)).mappings()]
        by_provider: dict[str, list[dict]] = {}
        for row in due:
            by_provider.setdefault(row["provider"], []).append(row)
        for name, rows in by_provider.items():
            if self.stopping.is_set():
                return counts
            self.phases.enter("poll", f"receipts from {name}")
            provider = self.by_name.get(name)
            if provider is None or not _polls(provider):
                with self.engine.begin() as conn:  # nothing to ask: stop polling these
                    conn.execute(sa.update(messages).where(messages.c.id.in_([r["id"] for r in rows])).values(poll_at=None))
                continue
            ids = [r["provider_message_id"] for r in rows if r["provider_message_id"]]
            try:
                reports = provider.delivery_status(ids)
            except ProviderError as err:  # the whole batch failed: it waits its next step like any other
                logger.warning("delivery poll of %s failed: %s", name, err)
                reports = []
            for report in reports:
                if report.error is not None:  # that id alone waits its next step; the others are applied
                    logger.warning("delivery poll of %s id %s failed: %s", name, report.provider_message_id,
                                   report.error)
            with self.engine.begin() as conn:
                counts["receipts"] += apply_reports(conn, self.config, name,
                                                    [r for r in reports if r.error is None])
                self._reschedule(conn, rows)
            counts["polled"] += len(rows)
        for provider in self.by_name.values():
            if "sms" not in provider.channels or type(provider).inbound is Provider.inbound:
                continue
            if self.stopping.is_set():
                return counts
            self.phases.enter("poll", f"inbound from {provider.name}")
            try:
                inbound = provider.inbound()
            except ProviderError as err:
                logger.warning("reading inbound SMS from %s failed: %s", provider.name, err)
                continue
            if inbound:
                with self.engine.begin() as conn:
                    counts["inbound"] += apply_inbound(conn, self.config, provider.name, inbound)
        return counts

    def _reschedule(self, conn: sa.Connection, rows: list[dict]) -> None:
        """Messages still without a final state: poll again later, or stop after the last step.

        A message whose polling already ended (its provider no longer reports on it) is left alone.
        """
        still = conn.execute(sa.select(messages.c.id, messages.c.polls).where(
            messages.c.id.in_([r["id"] for r in rows]), messages.c.status == "sent",
            messages.c.poll_at.is_not(None))).all()
        gave_up = []
        for message_id, polls in still:
            when = next_poll(polls + 1)
            conn.execute(sa.update(messages).where(messages.c.id == message_id).values(poll_at=when, polls=polls + 1))
            if when is None:
                gave_up.append(message_id)
        if gave_up:
            rows_by_id = {r["id"]: r for r in rows}
            apply(conn, [Change(rows_by_id[i], "receipt_timeout",
                                reason="no final delivery state after 24h of polling; it stays sent") for i in gave_up])
