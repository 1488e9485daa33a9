"""Read-side queries the API, the dashboard and /metrics share. Reasons come out with addresses masked."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..abtests import variant_report
from ..clock import now, to_utc
from ..config import Config
from ..durations import format_duration
from ..models import (ERROR_EVENTS, ContactEvent, DeliveryLog, Engagement, Enrollment, Message, Offer, WorkerStatus,
                      status_is)
from ..reports import contact_labels, funnel, queue_state
from ..store.pauses import active_pauses
from ..text import mask_address
from ..transitions import Event

__all__ = ["contact_timeline", "sequence_stats", "recent_counts", "queue_state", "provider_overview",
           "log_page", "worker_ticks", "contact_labels", "LOG_FILTERS"]

log_t = DeliveryLog.__table__
messages = Message.__table__
enrollments = Enrollment.__table__
events_t = ContactEvent.__table__
engagements_t = Engagement.__table__
offers = Offer.__table__
LOG_FILTERS = ("sequence", "touch", "channel", "provider", "event")


def _masked(text: str | None) -> str | None:
    return mask_address(text) if text else text


def _times(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    for key in keys:
        row[key] = to_utc(row.get(key))
    return row


def contact_timeline(conn: sa.Connection, contact: dict[str, Any], limit: int = 1000) -> dict[str, Any]:
    """Every message (current state) and every logged step and event of one contact, oldest first."""
    cid = contact["id"]
    enr = [_times(dict(r), "enrolled_at", "ended_at", "offer_expires_at") for r in conn.execute(
        sa.select(enrollments.c.id, enrollments.c.sequence, enrollments.c.status, enrollments.c.ended_reason,
                  enrollments.c.enrolled_at, enrollments.c.ended_at, enrollments.c.offer_code,
                  enrollments.c.offer_expires_at, enrollments.c.event_key).where(enrollments.c.contact_id == cid)
        .order_by(enrollments.c.id)).mappings()]
    msgs = []
    for r in conn.execute(sa.select(messages.c.id, messages.c.sequence, messages.c.touch, messages.c.channel,
                                    messages.c.urgent, messages.c.status, messages.c.reason, messages.c.due_at,
                                    messages.c.next_attempt_at, messages.c.sent_at, messages.c.provider)
                          # by its runs: the index on (enrollment_id, touch_index) finds them at once
                          .where(messages.c.enrollment_id.in_([e["id"] for e in enr]), messages.c.contact_id == cid)
                          .order_by(messages.c.id)).mappings():
        row = _times(dict(r), "due_at", "next_attempt_at", "sent_at")
        row["reason"] = _masked(row["reason"])
        msgs.append(row)
    items: list[dict[str, Any]] = []
    logs = conn.execute(sa.select(log_t).where(log_t.c.contact_id == cid).order_by(log_t.c.id.desc())
                        .limit(limit)).mappings().all()
    for r in reversed(logs):
        items.append({"kind": "message", "id": r["id"], "at": to_utc(r["at"]), "message_id": r["message_id"],
                      "sequence": r["sequence"], "touch": r["touch"], "channel": r["channel"],
                      "provider": r["provider"], "event": r["event"], "reason": _masked(r["reason"])})
    for r in conn.execute(sa.select(events_t).where(events_t.c.contact_id == cid).order_by(events_t.c.id)).mappings():
        items.append({"kind": "event", "id": r["id"], "at": to_utc(r["at"]), "event": r["type"],
                      "sequence": r["sequence"], "channel": r["channel"], "value": r["value"], "source": r["source"],
                      "key": r["key"],
                      "touch": r["touch"], "message_id": r["message_id"], "attributed_by": r["attributed_by"]})
    for r in conn.execute(sa.select(engagements_t).where(engagements_t.c.contact_id == cid)
                          .order_by(engagements_t.c.id.desc()).limit(limit)).mappings():
        items.append({"kind": "engagement", "id": r["id"], "at": to_utc(r["at"]), "event": r["kind"],
                      "sequence": r["sequence"], "touch": r["touch"], "channel": r["channel"],
                      "message_id": r["message_id"], "source": r["source"]})
    items.sort(key=lambda i: (i["at"], 0 if i["kind"] == "event" else 1, i["id"]))
    return {"contact": _contact_view(contact), "enrollments": enr, "messages": msgs, "items": items}


def _contact_view(contact: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "external_id", "phone", "email", "first_name", "last_name", "timezone", "locale",
            "sms_suppressed", "email_suppressed")
    view = {k: contact.get(k) for k in keys}
    view["tags"] = [t for t in (contact.get("tags") or "").split(";") if t]
    return view


def sequence_stats(conn: sa.Connection, config: Config, name: str) -> dict[str, Any]:
    """The funnel of one sequence, with its offer's deadline and stock left."""
    seq = config.sequence(name)
    data = funnel(conn, seq.name, [t.name for t in seq.touches])
    data["description"] = seq.description
    offer = None
    if seq.offer:
        row = conn.execute(sa.select(offers).where(offers.c.sequence == seq.name, offers.c.code == seq.offer.code)
                           ).mappings().first()
        stock = row["stock"] if row else seq.offer.stock
        redeemed = row["redeemed"] if row else 0
        offer = {"code": seq.offer.code, "title": (row["title"] if row else None) or seq.offer.title,
                 "expires_at": to_utc(row["expires_at"]) if row and row["expires_at"] else seq.offer.expires_at,
                 "expires_after": format_duration(seq.offer.expires_after) if seq.offer.expires_after else None,
                 "stock": stock, "redeemed": redeemed,
                 "stock_left": None if stock is None else max(0, stock - redeemed)}
    data["offer"] = offer
    data["variants"] = variant_report(conn, seq)  # hook: journeys (per-variant figures)
    return data


def recent_counts(conn: sa.Connection, since: datetime) -> dict[str, int]:
    """Log events since ``since``, by event (sent, delivered, failed, skipped, ...)."""
    rows = conn.execute(sa.select(log_t.c.event, sa.func.count()).where(log_t.c.at >= since)
                        .group_by(log_t.c.event))
    return {event: count for event, count in rows}


def provider_overview(conn: sa.Connection, config: Config, since: datetime) -> list[dict[str, Any]]:
    """Each configured provider: state, why paused, error rate since ``since`` and its last error."""
    pauses = active_pauses(conn)
    counts: dict[str, dict[str, int]] = {}
    for provider, event, count in conn.execute(
            sa.select(log_t.c.provider, log_t.c.event, sa.func.count())
            .where(log_t.c.at >= since, log_t.c.provider.is_not(None)).group_by(log_t.c.provider, log_t.c.event)):
        counts.setdefault(provider, {})[event] = count
    out = []
    for channel, entries in config.settings.providers.items():
        for i, entry in enumerate(entries):
            name = entry["name"]
            pause = pauses.get(name)
            c = counts.get(name, {})
            errors = sum(c.get(e, 0) for e in ERROR_EVENTS if e != Event.UNDELIVERED)
            attempts = c.get(Event.SENT.value, 0) + errors
            last = conn.execute(sa.select(log_t.c.at, log_t.c.event, log_t.c.reason)
                                .where(log_t.c.provider == name, status_is(log_t.c.event, *ERROR_EVENTS))
                                .order_by(log_t.c.id.desc()).limit(1)).mappings().first()
            out.append({"name": name, "type": entry.get("type"), "channel": channel,
                        "role": "primary" if i == 0 else f"failover {i}",
                        "state": "paused" if pause else "active",
                        "paused_until": pause.until if pause else None,
                        "reason": pause.reason if pause else None,
                        "error_rate": round(errors / attempts, 4) if attempts else 0.0,
                        "last_error": ({"at": to_utc(last["at"]), "event": last["event"],
                                        "reason": _masked(last["reason"])} if last else None),
                        "credit": None})
    return out


def log_page(conn: sa.Connection, *, filters: dict[str, str | None], contact_id: int | None = None,
             before_id: int | None = None, limit: int = 50) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the delivery log, newest first, keyset-paged by id; returns (rows, next before_id)."""
    query = sa.select(log_t)
    for key in LOG_FILTERS:
        if filters.get(key):
            query = query.where(log_t.c[key] == filters[key])
    if contact_id is not None:
        query = query.where(log_t.c.contact_id == contact_id)
    if before_id:
        query = query.where(log_t.c.id < before_id)
    rows = [dict(r) for r in conn.execute(query.order_by(log_t.c.id.desc()).limit(limit + 1)).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    for row in rows:
        row["at"] = to_utc(row["at"])
        row["reason"] = _masked(row["reason"])
    return rows, (rows[-1]["id"] if more and rows else None)


def worker_ticks(conn: sa.Connection) -> list[dict[str, Any]]:
    """Each worker's last tick (rows named ``worker:...``), newest first, with its counts."""
    table = WorkerStatus.__table__
    out = []
    for r in conn.execute(sa.select(table).where(table.c.name.like("worker:%"))
                          .order_by(table.c.last_tick_at.desc())).mappings():
        try:
            detail = json.loads(r["detail"] or "{}")
        except ValueError:
            detail = {}
        out.append({"worker": r["name"][len("worker:"):], "last_tick_at": to_utc(r["last_tick_at"]),
                    "detail": detail if isinstance(detail, dict) else {}})
    return out


def since(hours: float) -> datetime:
    return now() - timedelta(hours=hours)
