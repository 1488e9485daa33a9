"""``/metrics`` (Prometheus, read from the database at each scrape) and ``/healthz``.

The worker is another process, so nothing is counted here as it happens: counters come from the
append-only delivery log (read incrementally, :mod:`.tally`), gauges from the message queue, provider states
and worker heartbeats.
"""
from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..db import reading
from ..clock import now
from .auth import require_api_key
from .context import ServiceContext, get_context
from .queries import provider_overview, queue_state, since, worker_ticks

__all__ = ["router", "FollowupCollector"]

router = APIRouter(include_in_schema=False)


class FollowupCollector(Collector):
    """Collects every followup metric from the database at scrape time."""

    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    def collect(self):
        with reading(self.ctx.engine) as conn:
            by_event = CounterMetricFamily("followup_messages", "Message state changes by event and provider",
                                           labels=["event", "provider"])
            for (event, provider), count in self.ctx.log_tally.counts(conn).items():
                by_event.add_metric([event, provider or ""], count)
            yield by_event
            queue = queue_state(conn)
            for name, key, text in (("followup_queue_due", "due", "Messages due now"),
                                    ("followup_queue_deferred", "deferred", "Messages moved past their due time"),
                                    ("followup_queue_lag_seconds", "lag_seconds", "How late the oldest due message is")):
                yield GaugeMetricFamily(name, text, value=queue[key])
            paused = GaugeMetricFamily("followup_provider_paused", "1 when the provider is paused",
                                       labels=["provider", "channel"])
            rate = GaugeMetricFamily("followup_provider_error_rate", "Failed, retried or unknown sends / attempts, last hour",
                                     labels=["provider", "channel"])
            for p in provider_overview(conn, self.ctx.config, since(1)):
                paused.add_metric([p["name"], p["channel"]], 1.0 if p["state"] == "paused" else 0.0)
                rate.add_metric([p["name"], p["channel"]], p["error_rate"])
            yield paused
            yield rate
            last = GaugeMetricFamily("followup_worker_last_tick_timestamp_seconds", "When each worker last ticked",
                                     labels=["worker"])
            took = GaugeMetricFamily("followup_tick_duration_seconds", "How long each worker's last tick took",
                                     labels=["worker"])
            for tick in worker_ticks(conn):
                if tick["last_tick_at"]:
                    last.add_metric([tick["worker"]], tick["last_tick_at"].timestamp())
                duration = tick["detail"].get("duration_seconds")
                if isinstance(duration, (int, float)):
                    took.add_metric([tick["worker"]], float(duration))
            yield last
            yield took


@router.get("/metrics")
def metrics(ctx: ServiceContext = Depends(get_context), _key: str = Depends(require_api_key)) -> Response:
    """Prometheus text format; scrape with ``authorization: {type: Bearer, credentials: KEY}``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FollowupCollector(ctx))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
def healthz(ctx: ServiceContext = Depends(get_context)) -> JSONResponse:
    """Whether the database answers, and when the worker last ticked. 503 when the database does not answer."""
    try:
        with reading(ctx.engine) as conn:
            conn.execute(sa.select(1))
            ticks = worker_ticks(conn)
    except Exception:  # noqa: BLE001 - say no, never the error (it may name the database URL)
        return JSONResponse({"database": "unreachable", "last_tick_at": None}, status_code=503)
    last = max((t["last_tick_at"] for t in ticks if t["last_tick_at"]), default=None)
    return JSONResponse({"database": "ok", "last_tick_at": last.isoformat().replace("+00:00", "Z") if last else None,
                         "last_tick_age_seconds": round((now() - last).total_seconds(), 1) if last else None})
