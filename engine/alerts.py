"""Alerts: ops are told when a condition starts, and again when it clears.

Each condition of ``alerts.on`` is read as one or more *keys* (``provider_paused:NAME`` per provider,
``credit_below:NAME``, ``queue_lag_over``, ``worker_silent_for:WORKER`` per other worker). Each key's row
in the ``alerts`` table holds its state and what ops were last told::

    reading      told ops     then
    firing       clear/none   alert, unless one went out for this key within the hour (then wait for it)
    firing       firing       nothing
    clear        firing       recovery note
    clear        clear/none   nothing

An alert is not a marketing message: it goes to every ``alerts.to`` recipient through the engine's own
providers and :class:`~engine.sending.Sender` (failover, rate limits), with no send window, frequency cap or
opt-out footer, and leaves no message row or delivery-log row, so no statistic counts it. A key counts as
told when at least one recipient's provider took the message; otherwise the next round tries again.

The evaluator runs in every worker, once a minute, and acts on one of them: the one that holds the
cluster-wide lease ``job:alerts`` in ``worker_status``. It reads the other workers' heartbeats (a worker
cannot report its own silence).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from providers.base import OutgoingMessage, Provider
from providers.errors import ProviderError

from .alert_settings import AlertSettings, Condition
from .clock import now, to_utc
from .config import Config
from .durations import format_duration
from .installation import alert_reference
from .models import AlertState, WorkerStatus
from .poller import cluster_lease
from .reports import queue_state
from .sending import Outcome, Sender
from .store.pauses import Pause, active_pauses, pause_text
from .text import grouped, mask_address

__all__ = ["Alerts", "Delivery", "Reading", "send_alert", "states"]

logger = logging.getLogger("followup.alerts")
alerts_t = AlertState.__table__
worker_status = WorkerStatus.__table__
EVERY = timedelta(minutes=1)
#: at most one alert per key within this time (a recovery note is not held back)
QUIET = timedelta(hours=1)
CREDIT_EVERY = timedelta(minutes=10)
LEASE_SECONDS = 120
TOLD = ("sent", "unknown")  # an ambiguous send may have reached ops: it is not sent again


@dataclass(frozen=True)
class Reading:
    """One key's reading: firing or not, and the sentence that says so."""

    firing: bool
    text: str


@dataclass(frozen=True)
class Delivery:
    """What became of one alert to one recipient."""

    channel: str
    to: str
    outcome: Outcome


def send_alert(sender: Sender, settings: AlertSettings, text: str, paused: frozenset[str] = frozenset()) -> list[Delivery]:
    """Send ``text`` to every recipient: providers not paused first, then, if all are, the paused ones."""
    out = []
    for channel, address in settings.to:
        message = OutgoingMessage(alert_reference(), channel, address, text,
                                  subject=text[:120] if channel == "email" else None)
        outcome = sender.send(message, set(paused))
        if outcome.kind == "deferred" and not outcome.blocked:  # every provider of the channel is paused:
            outcome = sender.send(message, set())                # for ops, a pause is worth trying through
        if outcome.kind in TOLD:
            logger.info("alert to %s %s: %s via %s", channel, mask_address(address), outcome.kind, outcome.provider)
        else:
            logger.warning("alert to %s %s not sent: %s", channel, mask_address(address),
                           mask_address(outcome.reason or outcome.kind))
        out.append(Delivery(channel, address, outcome))
    return out


def states(conn: sa.Connection) -> dict[str, dict]:
    """Every stored alert key's row."""
    return {r["key"]: dict(r) for r in conn.execute(sa.select(alerts_t)).mappings()}


class Alerts:
    """Reads the conditions of ``alerts.on`` and tells ops through ``sender`` (see the module docstring)."""

    def __init__(self, config: Config, engine: sa.Engine, providers: dict[str, list[Provider]], sender: Sender,
                 owner: str):
        if config.settings.alerts is None:
            raise ValueError("alerts are not configured")
        self.settings: AlertSettings = config.settings.alerts
        self.engine, self.providers, self.sender, self.owner = engine, providers, sender, owner
        self._last_round: datetime | None = None
        self._last_credit: datetime | None = None

    def run(self) -> list[tuple[str, str]]:
        """One round, at most once a minute and only on the worker holding the lease; returns what was sent
        as (key, firing|clear) pairs."""
        at = now()
        if self._last_round is not None and at - self._last_round < EVERY:
            return []
        if not cluster_lease(self.engine, "alerts", self.owner, seconds=LEASE_SECONDS):
            return []
        self._last_round = at
        return self.evaluate()

    def evaluate(self) -> list[tuple[str, str]]:
        """Read every condition, then alert or send a recovery note where the table above says so."""
        at = now()
        with self.engine.connect() as conn:
            stored = states(conn)
            pauses = active_pauses(conn, at)
            readings: dict[str, Reading] = {}
            for condition in self.settings.on:
                readings.update(self._read(conn, condition, at, pauses, stored))
        paused = frozenset(pauses)
        sent = []
        for key, reading in readings.items():
            row = stored.get(key)
            told = row["notified"] if row else None
            last = to_utc(row["last_sent_at"]) if row else None
            if reading.firing and told != "firing" and (last is None or at - last >= QUIET):
                ok = self._tell(f"followup alert: {reading.text}", paused)
                self._store(key, reading, row, at, notified="firing" if ok else told, sent_at=at if ok else last)
                sent += [(key, "firing")] if ok else []
            elif not reading.firing and told == "firing":
                ok = self._tell(f"followup recovered: {reading.text}", paused)
                self._store(key, reading, row, at, notified="clear" if ok else told, sent_at=last)
                sent += [(key, "clear")] if ok else []
            elif row is not None or reading.firing:
                self._store(key, reading, row, at, notified=told, sent_at=last)
        return sent

    def _tell(self, text: str, paused: frozenset[str]) -> bool:
        return any(d.outcome.kind in TOLD for d in send_alert(self.sender, self.settings, text, paused))

    def _store(self, key: str, reading: Reading, row: dict | None, at: datetime, *, notified: str | None,
               sent_at: datetime | None) -> None:
        state = "firing" if reading.firing else "clear"
        values = {"state": state, "detail": reading.text[:500], "notified": notified, "last_sent_at": sent_at,
                  "since": at if row is None or row["state"] != state else row["since"]}
        with self.engine.begin() as conn:
            if row is None:
                conn.execute(sa.insert(alerts_t).values(key=key, **values))
            else:
                conn.execute(sa.update(alerts_t).where(alerts_t.c.key == key).values(**values))

    # -- the conditions -----------------------------------------------------------------------------
    def _read(self, conn: sa.Connection, condition: Condition, at: datetime, pauses: dict[str, Pause],
              stored: dict[str, dict]) -> dict[str, Reading]:
        kind, limit = condition.kind, condition.threshold
        if kind == "provider_paused":
            return self._paused(pauses)
        if kind == "credit_below":
            assert isinstance(limit, float)
            return self._credit(limit, at)
        assert isinstance(limit, timedelta)
        if kind == "queue_lag_over":
            return self._lag(conn, limit, at)
        return self._workers(conn, kind, limit, at, stored)

    def _paused(self, pauses: dict[str, Pause]) -> dict[str, Reading]:
        out = {}
        for name in self._names():
            pause = pauses.get(name)
            out[f"provider_paused:{name}"] = (
                Reading(True, f"provider {name} is {pause_text(pause)}: {pause.reason}")
                if pause else Reading(False, f"provider {name} is active again"))
        return out

    def _lag(self, conn: sa.Connection, limit: timedelta, at: datetime) -> dict[str, Reading]:
        """How late the oldest due message is, as ``followup_queue_lag_seconds`` reads it."""
        queue = queue_state(conn, at)
        lag = timedelta(seconds=int(queue["lag_seconds"]))
        if lag > limit:
            return {"queue_lag_over": Reading(True, f"the oldest due message is {format_duration(lag)} late (over "
                                                    f"{format_duration(limit)}); {queue['due']} due")}
        return {"queue_lag_over": Reading(False, f"the queue is on time again (oldest due message "
                                                 f"{format_duration(lag)} late)")}

    def _names(self) -> list[str]:
        return [p.name for group in self.providers.values() for p in group]

    def _credit(self, limit: float, at: datetime) -> dict[str, Reading]:
        """Each provider's credit, asked at most every 10 minutes; one that can't say is left as it was."""
        if self._last_credit is not None and at - self._last_credit < CREDIT_EVERY:
            return {}
        self._last_credit = at
        out = {}
        for provider in {p.name: p for group in self.providers.values() for p in group}.values():
            try:
                credit = provider.check().credit
            except (ProviderError, OSError) as err:
                logger.warning("credit check of %s failed: %s", provider.name, err)
                continue
            if credit is None:
                continue
            firing = credit < limit
            out[f"credit_below:{provider.name}"] = Reading(
                firing, f"provider {provider.name} has credit {grouped(credit)}, "
                        f"{'below' if firing else 'at or above'} {grouped(limit)}{'' if firing else ' again'}")
        return out

    def _workers(self, conn: sa.Connection, kind: str, limit: timedelta, at: datetime,
                 stored: dict[str, dict]) -> dict[str, Reading]:
        """Every other worker's heartbeat; a worker that stopped cleanly (its row gone) clears its key."""
        me = f"worker:{self.owner}"
        out = {f"{kind}:{key.split(':', 1)[1]}": Reading(False, f"worker {key.split(':', 1)[1]} stopped cleanly")
               for key in stored if key.startswith(f"{kind}:")}
        for name, last in conn.execute(sa.select(worker_status.c.name, worker_status.c.last_tick_at)
                                       .where(worker_status.c.name.like("worker:%"), worker_status.c.name != me)):
            worker, last = name[len("worker:"):], to_utc(last)
            silent = at - last if last else None
            if silent is not None and silent > limit:
                out[f"{kind}:{worker}"] = Reading(True, f"worker {worker} has not ticked for {format_duration(silent)}"
                                                        f" (since {last:%Y-%m-%d %H:%M} UTC)")
            else:
                out[f"{kind}:{worker}"] = Reading(False, f"worker {worker} ticks again")
        return out

