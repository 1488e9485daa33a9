"""What ``followup webhooks`` and the dashboard show and do: each URL's state, replay, resume."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from .clock import now, to_utc
from .config import Config
from .errors import InputError
from .models import EndpointState, OutboxStatus, WebhookEndpoint, WebhookOutbox
from .webhook_settings import masked_url

__all__ = ["endpoint_rows", "replay", "resume"]

outbox_t = WebhookOutbox.__table__
endpoints_t = WebhookEndpoint.__table__


def endpoint_rows(conn: sa.Connection, config: Config) -> list[dict]:
    """One row per configured URL (masked): state, events, pending and delivered counts, failing since, last
    error and the oldest pending event's age."""
    states = {r["url"]: dict(r) for r in conn.execute(sa.select(endpoints_t)).mappings()}
    counts: dict[tuple[str, str], int] = {}
    oldest: dict[str, datetime] = {}
    for url, status, n, first in conn.execute(
            sa.select(outbox_t.c.url, outbox_t.c.status, sa.func.count(), sa.func.min(outbox_t.c.created_at))
            .group_by(outbox_t.c.url, outbox_t.c.status)):
        counts[(url, status)] = n
        if status == OutboxStatus.PENDING.value:
            oldest[url] = to_utc(first)
    out = []
    for hook in config.settings.webhooks:
        state = states.get(hook.url, {})
        out.append({
            "url": masked_url(hook.url), "events": list(hook.events),
            "state": state.get("state") or EndpointState.ACTIVE.value,
            "pending": counts.get((hook.url, OutboxStatus.PENDING.value), 0),
            "delivered": counts.get((hook.url, OutboxStatus.DELIVERED.value), 0),
            "oldest_pending": oldest.get(hook.url),
            "failing_since": to_utc(state.get("failing_since")),
            "last_error": state.get("last_error"),
        })
    return out


def _match(config: Config, url: str | None) -> list[str]:
    """The configured URLs that ``url`` names (the URL itself or as masked); all when None."""
    urls = [w.url for w in config.settings.webhooks]
    if url is None:
        return urls
    found = [u for u in urls if url in (u, masked_url(u))]
    if not found:
        raise InputError(f"no webhook {url!r} in settings.yaml; `followup webhooks` lists them")
    return found


def resume(conn: sa.Connection, config: Config, url: str | None = None) -> int:
    """Deliver again to a paused URL (all paused URLs when None): its waiting events are due now. Returns how
    many URLs were resumed."""
    urls = _match(config, url)
    stamp = now()
    done = conn.execute(sa.update(endpoints_t).where(endpoints_t.c.url.in_(urls),
                                                     endpoints_t.c.state == EndpointState.PAUSED.value)
                        .values(state=EndpointState.ACTIVE.value, failing_since=None, paused_at=None,
                                updated_at=stamp)).rowcount
    conn.execute(sa.update(outbox_t).where(outbox_t.c.url.in_(urls),
                                           outbox_t.c.status == OutboxStatus.PENDING.value)
                 .values(next_attempt_at=stamp))
    return done


def replay(conn: sa.Connection, config: Config, since: datetime, url: str | None = None) -> int:
    """Send again every event created since ``since`` (to ``url``, or to all URLs), with its own id, in its order.
    Returns how many rows were queued again."""
    urls = _match(config, url)
    return conn.execute(sa.update(outbox_t).where(outbox_t.c.url.in_(urls), outbox_t.c.created_at >= since,
                                                  outbox_t.c.status == OutboxStatus.DELIVERED.value)
                        .values(status=OutboxStatus.PENDING.value, next_attempt_at=now(), delivered_at=None)).rowcount
