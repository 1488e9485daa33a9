"""The delivery poller: asks the panels for final states on a widening schedule, and reads inbound SMS.

It runs once per cluster, not once per worker: a lease row in ``worker_status`` (``job:poller``)
decides which worker polls.
"""
from __future__ import annotations

import logging
import threading

import sqlalchemy as sa

from providers.base import Provider
from providers.errors import ProviderError

from .clock import now
from .config import Config
from . import store
from .store import apply
from .store.receipts import advance_polls, due_receipts, stop_polling
from .receipts import apply_inbound, apply_reports, next_poll
from .transitions import Event, Facts, Outcome, change
from .watchdog import Phases

__all__ = ["Poller", "cluster_lease"]

logger = logging.getLogger("followup.poller")
BATCH = 500


def cluster_lease(engine: sa.Engine, job: str, owner: str, seconds: int) -> bool:
    """Take or renew the cluster-wide lease on ``job``; True when ``owner`` holds it."""
    with engine.begin() as conn:
        return store.cluster_lease(conn, job, owner, now(), seconds)


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
            due = due_receipts(conn, at, BATCH)
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
                    stop_polling(conn, [r["id"] for r in rows])
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
        gave_up = advance_polls(conn, [r["id"] for r in rows], next_poll)
        if gave_up:
            rows_by_id = {r["id"]: r for r in rows}
            outcome = Outcome(Event.RECEIPT_TIMEOUT.value, "no final delivery state after 24h of polling; it stays sent")
            apply(conn, [change(rows_by_id[i], outcome, Facts(now())) for i in gave_up])
