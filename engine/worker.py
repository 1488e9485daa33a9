"""The background service: APScheduler is only the clock; the database holds what is due."""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import sqlalchemy as sa

from . import heap
from .clock import now
from .config import Config
from .control import orphan_warnings
from .db import SessionLimits, check_schema, is_sqlite, make_engine
from .dberrors import database_error
from .dispatch import Dispatcher
from .errors import FollowupError
from .provider_setup import build_providers
from .settings import Settings
from .watchdog import Phases, Watchdog

if TYPE_CHECKING:
    from .alerts import Alerts
    from .poller import Poller

__all__ = ["EXIT_STUCK", "build_providers", "run_worker", "single_dispatcher_lock", "worker_engine"]

logger = logging.getLogger("followup.worker")
#: the exit status when the drain after SIGTERM outlasted ``worker.drain_seconds`` (EX_TEMPFAIL: what
#: was in flight is taken over by recovery once its lease ends)
EXIT_STUCK = 75


def worker_engine(settings: Settings) -> sa.Engine:
    """The worker's engine: on PostgreSQL every lock wait, statement and connect has the configured bound."""
    w = settings.worker
    return make_engine(settings.database_url, SessionLimits(lock_timeout=w.lock_timeout,
                                                            statement_timeout=w.statement_timeout,
                                                            connect_timeout=w.connect_timeout))


@contextmanager
def single_dispatcher_lock(database_url: str, wait: bool = False) -> Iterator[bool]:
    """On SQLite only one dispatcher may run per database file: hold a lock file beside it.

    Yields True when this process holds the lock (then anything left in flight is an orphan).
    """
    if not database_url.startswith("sqlite:///"):
        yield False
        return
    path = Path(database_url.split("sqlite:///", 1)[1] + ".worker.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = path.open("a+")
    except OSError as err:
        raise database_error(err, database_url) from err
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise FollowupError(
                f"another worker already runs on {path.with_suffix('')}; SQLite allows one worker per database file. "
                "Stop it, or use PostgreSQL (FOLLOWUP_DATABASE_URL=postgresql+psycopg://...) to run several") from None
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_worker(config: Config, *, interval: float = 10.0, once: bool = False, wait_for_lock: bool = False) -> int:
    """Run the worker until SIGTERM/SIGINT (or one pass with ``once``); return the exit status."""
    engine = worker_engine(config.settings)
    check_schema(engine)
    providers = build_providers(config)
    with single_dispatcher_lock(config.settings.database_url, wait=wait_for_lock) as sole:
        dispatcher = Dispatcher(config, providers, engine=engine)
        with engine.connect() as conn:
            for line in orphan_warnings(conn, config):
                logger.warning(line)
        heap.settle()  # everything long-lived is loaded: keep it out of the collector's walks
        watchdog = Watchdog(dispatcher.phases, config.settings.worker.tick_warn_seconds)
        watchdog.start()
        if sole and is_sqlite(engine):
            dispatcher.recover(everything=True)
        # the only worker of a SQLite file needs no lease to be the only one delivering
        deliverer = _deliverer(config, engine, None if sole else dispatcher.worker_id)
        if once:
            report = dispatcher.tick()
            if deliverer is not None:
                _safe_deliver(deliverer)
            dispatcher.close()
            logger.info("one pass done: %s", report.counts or "nothing due")
            return 0
        # imported only here: `worker --once` needs neither the clock nor the delivery poll
        from apscheduler.schedulers.background import BackgroundScheduler

        from .poller import Poller

        stop = threading.Event()
        received: list[int] = []

        def on_signal(signum, _frame):  # only notes the signal: the main thread acts on it below
            received.append(signum)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        scheduler = BackgroundScheduler(timezone=timezone.utc)
        scheduler.add_job(_safe_tick, "interval", args=[dispatcher], seconds=interval, max_instances=1,
                          coalesce=True, next_run_time=now(), id="tick")
        poller = Poller(config, engine, providers, dispatcher.worker_id, phases=dispatcher.phases,
                        stopping=dispatcher.stopping)
        scheduler.add_job(_safe_poll, "interval", args=[poller], seconds=60, max_instances=1, coalesce=True,
                          next_run_time=now(), id="poll")
        if config.settings.alerts is not None:
            from .alerts import Alerts

            alerts = Alerts(config, engine, providers, dispatcher.sender, dispatcher.worker_id)
            scheduler.add_job(_safe_alerts, "interval", args=[alerts], seconds=60, max_instances=1, coalesce=True,
                              next_run_time=now(), id="alerts")
        if deliverer is not None:
            scheduler.add_job(_safe_deliver, "interval", args=[deliverer], seconds=interval, max_instances=1,
                              coalesce=True, next_run_time=now(), id="webhooks")
        scheduler.start()
        logger.info("worker %s started: ticking every %ss on %s", dispatcher.worker_id, interval,
                    engine.url.render_as_string(hide_password=True))
        # a timed wait: the kernel may hand the signal to any thread, and Python runs the handler only
        # once the main thread runs again
        while not stop.wait(0.5):
            pass
        drain = config.settings.worker.drain_seconds
        logger.info("received %s: finishing what is in flight (for at most %ss), then stopping",
                    signal.Signals(received[0]).name, drain)
        deadline = _exit_after(drain, dispatcher.phases)
        dispatcher.stop()
        if deliverer is not None:
            deliverer.stop()
        scheduler.shutdown(wait=True)
        dispatcher.retire()
        dispatcher.close()
        watchdog.stop()
        deadline.cancel()
        logger.info("worker stopped cleanly")
    return 0


def _exit_after(seconds: float, phases: Phases) -> threading.Timer:
    """Give the drain ``seconds``; if the process still runs then, log what is stuck and end it at once.

    ``os._exit``: a thread blocked in a provider call or a database wait can't be interrupted, and a
    normal exit would wait for it. What it held is in flight under a lease; recovery takes it over.
    """
    def give_up() -> None:
        logger.error("did not stop within %ss of the signal (worker.drain_seconds): %s; exiting now with "
                     "status %d, leaving what is in flight to recovery when its lease ends",
                     seconds, phases.describe(), EXIT_STUCK)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_STUCK)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    return timer


def _safe_poll(poller: Poller) -> None:
    try:
        counts = poller.poll()
        if any(counts.values()):
            logger.info("poll: %s", counts)
    except Exception:  # like the tick: one failed round must not stop the next
        logger.exception("delivery poll failed; the next round will try again")


def _safe_alerts(alerts: Alerts) -> None:
    try:
        alerts.run()
    except Exception:  # like the poll: one failed round must not stop the next
        logger.exception("alert round failed; the next round will try again")


def _deliverer(config: Config, engine: sa.Engine, owner: str | None):
    """The webhook outbox's deliverer (:mod:`engine.webhook_delivery`), None when no webhook is configured."""
    if not config.settings.webhooks:
        return None
    from .webhook_delivery import Deliverer

    return Deliverer(config, engine, owner=owner)


def _safe_deliver(deliverer) -> None:
    try:
        report = deliverer.run()
        if report.delivered or report.failed:
            logger.info("webhooks: %d delivered, %d failed", report.delivered, report.failed)
    except Exception:  # like the tick: one failed round must not stop the next
        logger.exception("webhook delivery round failed; the next round will try again")


def _safe_tick(dispatcher: Dispatcher) -> None:
    try:
        report = dispatcher.tick()
        if report.counts:
            logger.debug("tick: %s", report.counts)
    except Exception:  # a failing tick must not kill the clock; the next one tries again
        logger.exception("tick failed; the next tick will try again")
        print("tick failed; see the log above", file=sys.stderr)
