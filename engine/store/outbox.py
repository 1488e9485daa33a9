"""What webhook delivery (:mod:`engine.webhook_delivery`) reads and writes of the outbox and the URLs' states.

A *chain* is the pending rows of one URL and contact, oldest first: only its first row (the head) may go out,
and the next only once the one before is delivered. :func:`due_chains` hands out the chains whose head is due,
each cut at :data:`CHAIN_ROWS` rows; the rows of a NULL contact form one chain per URL.
"""
from __future__ import annotations

from datetime import datetime
from typing import Collection, Iterable

import sqlalchemy as sa

from ..clock import to_utc
from ..models import EndpointState, OutboxStatus, WebhookEndpoint, WebhookOutbox, status_is

__all__ = ["CHAIN_ROWS", "due_chains", "paused_urls", "mark_delivered", "mark_failed", "endpoint_failing_since",
           "set_endpoint"]

outbox_t = WebhookOutbox.__table__
endpoints_t = WebhookEndpoint.__table__
#: rows of one chain handed out at once (a long chain is taken again, in parts, by the next rounds)
CHAIN_ROWS = 10
#: rows recorded as delivered by one statement
MARK_CHUNK = 500


def paused_urls(conn: sa.Connection) -> set[str]:
    """The URLs paused now (:data:`EndpointState.PAUSED`)."""
    return {u for (u,) in conn.execute(sa.select(endpoints_t.c.url)
                                       .where(endpoints_t.c.state == EndpointState.PAUSED.value))}


def due_chains(conn: sa.Connection, urls: Iterable[str], at: datetime, limit: int,
               skip: Collection[tuple[str, int | None]] = ()) -> list[list[dict]]:
    """Up to ``limit`` chains of ``urls`` whose head is due at ``at``, oldest head first, but none of the
    (url, contact) keys in ``skip``; each chain is its first :data:`CHAIN_ROWS` pending rows in order (rows
    after the head are not checked for being due)."""
    urls = list(urls)
    if not urls:
        return []
    pending = status_is(outbox_t.c.status, OutboxStatus.PENDING.value)
    first = (sa.select(sa.func.min(outbox_t.c.id)).where(pending, outbox_t.c.url.in_(urls))
             .group_by(outbox_t.c.url, outbox_t.c.contact_id))
    heads = conn.execute(sa.select(outbox_t.c.url, outbox_t.c.contact_id)
                         .where(outbox_t.c.id.in_(first), outbox_t.c.next_attempt_at <= at)
                         .order_by(outbox_t.c.id).limit(limit + len(skip))).all()
    keys = [(url, contact) for url, contact in heads if (url, contact) not in skip][:limit]
    if not keys:
        return []
    chains: dict[tuple[str, int | None], list[dict]] = {k: [] for k in keys}
    by_url: dict[str, list[int | None]] = {}
    for url, contact in keys:
        by_url.setdefault(url, []).append(contact)
    for url, contacts in by_url.items():
        ids = [c for c in contacts if c is not None]
        which = outbox_t.c.contact_id.in_(ids) if ids else sa.false()
        if len(ids) < len(contacts):
            which = sa.or_(which, outbox_t.c.contact_id.is_(None))
        rank = (sa.func.row_number().over(partition_by=outbox_t.c.contact_id, order_by=outbox_t.c.id)
                .label("chain_rank"))
        ranked = sa.select(outbox_t, rank).where(pending, outbox_t.c.url == url, which).subquery()
        for row in conn.execute(sa.select(*(ranked.c[c.name] for c in outbox_t.c))
                                .where(ranked.c.chain_rank <= CHAIN_ROWS)
                                .order_by(ranked.c.id)).mappings():
            chains[(url, row["contact_id"])].append(dict(row))
    return [chains[k] for k in keys if chains[k]]


def mark_delivered(conn: sa.Connection, rows: list[dict], at: datetime) -> None:
    """Record ``rows`` as delivered at ``at`` (each after one more attempt), and their URLs as working."""
    if not rows:
        return
    ids = [r["id"] for r in rows]
    for lo in range(0, len(ids), MARK_CHUNK):
        conn.execute(sa.update(outbox_t).where(outbox_t.c.id.in_(ids[lo:lo + MARK_CHUNK])).values(
            status=OutboxStatus.DELIVERED.value, delivered_at=at, attempts=outbox_t.c.attempts + 1,
            next_attempt_at=None, last_error=None))
    for url in {r["url"] for r in rows}:
        set_endpoint(conn, url, at, failing_since=None, last_error=None)


def mark_failed(conn: sa.Connection, row: dict, error: str, next_attempt_at: datetime) -> None:
    """Record a failed round of ``row``: one more attempt, tried again at ``next_attempt_at``."""
    conn.execute(sa.update(outbox_t).where(outbox_t.c.id == row["id"]).values(
        attempts=row["attempts"] + 1, next_attempt_at=next_attempt_at, last_error=error))


def endpoint_failing_since(conn: sa.Connection, url: str) -> datetime | None:
    """Since when ``url`` fails without one success (None: it works, or was never tried)."""
    return to_utc(conn.execute(sa.select(endpoints_t.c.failing_since).where(endpoints_t.c.url == url)).scalar())


def set_endpoint(conn: sa.Connection, url: str, at: datetime, **values) -> None:
    """Update ``url``'s state row with ``values`` (created, active, when missing)."""
    values["updated_at"] = at
    done = conn.execute(sa.update(endpoints_t).where(endpoints_t.c.url == url).values(**values))
    if done.rowcount == 0:
        conn.execute(sa.insert(endpoints_t).values(url=url, state=EndpointState.ACTIVE.value,
                                                   **{"failing_since": None, "last_error": None, **values}))
