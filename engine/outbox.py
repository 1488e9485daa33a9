"""The webhook outbox: an event for the configured webhook URLs, written in the caller's transaction.

:func:`emit` writes one row per URL that takes the event, in the transaction of the change that caused it:
the event goes out if and only if the change is committed. :mod:`engine.webhook_delivery` sends the rows
later, in order per contact and URL. Every row of one event carries the same ``event_id`` (the Standard
Webhooks ``webhook-id``), which a receiver uses to drop a repeat.

The body (what is signed and sent)::

    {"type": "converted", "timestamp": "2026-12-05T06:30:00Z", "id": "evt_…",
     "data": {"contact": {"id": 1, "external_id": null, "phone": "+98…", "email": null,
                          "first_name": "…", "last_name": "…"}, …the event's own fields}}
"""
from __future__ import annotations

import json
import uuid
from typing import Any

import sqlalchemy as sa

from .clock import now
from .models import Contact, OutboxStatus, WebhookOutbox

__all__ = ["emit", "event_body"]

outbox_t = WebhookOutbox.__table__
contacts_t = Contact.__table__
CONTACT_FIELDS = ("id", "external_id", "phone", "email", "first_name", "last_name")


def event_body(event_id: str, kind: str, at, contact: dict | None, payload: dict[str, Any]) -> str:
    """The JSON body of one event (compact, keys in a fixed order)."""
    data = {"contact": contact, **payload}
    return json.dumps({"type": kind, "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "id": event_id, "data": data},
                      ensure_ascii=False, separators=(",", ":"), default=str)


def emit(conn: sa.Connection, config: Any, kind: str, contact_id: int | None, payload: dict[str, Any]) -> str | None:
    """Queue event ``kind`` of ``contact_id`` for each webhook URL that takes it; return its event id (None when
    no URL takes it). ``payload``: the event's own fields, JSON-serializable."""
    urls = [w.url for w in config.settings.webhooks if kind in w.events]
    if not urls:
        return None
    contact = None
    if contact_id is not None:
        row = conn.execute(sa.select(*(contacts_t.c[f] for f in CONTACT_FIELDS))
                           .where(contacts_t.c.id == contact_id)).mappings().first()
        contact = dict(row) if row else {"id": contact_id}
    at = now()
    event_id = f"evt_{uuid.uuid4().hex}"
    body = event_body(event_id, kind, at, contact, payload)
    conn.execute(sa.insert(outbox_t), [
        {"event_id": event_id, "url": url, "kind": kind, "contact_id": contact_id, "body": body,
         "status": OutboxStatus.PENDING.value, "attempts": 0, "created_at": at, "next_attempt_at": at}
        for url in urls])
    return event_id
