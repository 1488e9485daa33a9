"""Read-side queries for ops: the delivery log and the funnel."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterator

import sqlalchemy as sa

from .clock import now, to_utc
from .models import (ACCEPTED, FINAL_STATUSES, ContactEvent, DeliveryLog, Engagement, EngagementKind,
                     EnrollmentStatus, Message, MessageStatus, status_is)
from .store import rollups

__all__ = ["log_query", "funnel", "queue_state", "unattributed", "TOUCH_COUNTS"]

log_t = DeliveryLog.__table__
messages = Message.__table__
events_t = ContactEvent.__table__
engagements_t = Engagement.__table__

SENT_LIKE = ACCEPTED
#: what :func:`funnel` counts per touch: each final status (``sent``: every accepted one), and waiting (not sent yet)
TOUCH_COUNTS = (*FINAL_STATUSES, "waiting")


def log_query(conn: sa.Connection, *, sequence: str | None = None, contact_id: int | None = None,
              event: str | None = None, since: datetime | None = None, after_id: int | None = None,
              limit: int | None = 200, newest_first: bool = False) -> Iterator[dict[str, Any]]:
    """Delivery-log rows matching the filters (oldest first unless ``newest_first``)."""
    query = sa.select(log_t)
    if sequence:
        query = query.where(log_t.c.sequence == sequence)
    if contact_id is not None:
        query = query.where(log_t.c.contact_id == contact_id)
    if event:
        query = query.where(log_t.c.event == event)
    if since:
        query = query.where(log_t.c.at >= since)
    if after_id:
        query = query.where(log_t.c.id > after_id)
    query = query.order_by(log_t.c.id.desc() if newest_first else log_t.c.id)
    if limit:
        query = query.limit(limit)
    for row in conn.execute(query).mappings():
        out = dict(row)
        out["at"] = to_utc(out["at"])
        yield out


def contact_labels(conn: sa.Connection, ids: set[int]) -> dict[int, dict[str, Any]]:
    """How people read contacts in a table: ``{id: {"id", "name", "phone", "email", "address", "text"}}``, masked;
    the address is the phone, else the email, and ``text`` is the name and address together (never a bare id)."""
    from .models import Contact
    from .text import mask_email, mask_phone

    table = Contact.__table__
    rows = conn.execute(sa.select(table.c.id, table.c.first_name, table.c.last_name, table.c.phone, table.c.email)
                        .where(table.c.id.in_(sorted(ids)))).mappings() if ids else []
    labels = {}
    for row in rows:
        name = " ".join(p for p in (row["first_name"], row["last_name"]) if p)
        address = mask_phone(row["phone"]) or mask_email(row["email"])
        labels[row["id"]] = {"id": row["id"], "name": name, "phone": mask_phone(row["phone"]),
                             "email": mask_email(row["email"]), "address": address,
                             "text": " ".join(p for p in (name, address) if p) or f"#{row['id']}"}
    return labels


#: events the delivery log records besides a message's statuses
LOG_ONLY_EVENTS = ("deferred", "retry", "released", "scheduled", "provider_paused", "receipt_timeout", "requeued",
                   "test_sent", "test_failed")


def log_filter_values(conn: sa.Connection, sequences: list[str]) -> dict[str, set[str]]:
    """What ``--event`` and ``--sequence`` of ``followup logs`` can match: declared names and those in the log."""
    from .models import MessageStatus

    events = {s.value for s in MessageStatus} | set(LOG_ONLY_EVENTS)
    events |= set(conn.execute(sa.select(log_t.c.event).distinct()).scalars())
    logged = conn.execute(sa.select(log_t.c.sequence).distinct().where(log_t.c.sequence.is_not(None))).scalars()
    return {"event": events, "sequence": set(sequences) | set(logged)}


def funnel(conn: sa.Connection, sequence: str, touches: list[str]) -> dict[str, Any]:
    """Enrolled, per touch sent/delivered/failed/skipped, converted and conversion rate.

    The runs and messages are counted from ``sequence_counts`` (:mod:`.store.rollups`), not the tables."""
    runs = rollups.counts(conn, rollups.RUN, sequence)
    enrolled = sum(runs.values())
    converted = runs[sequence, "", EnrollmentStatus.CONVERTED.value]
    per_touch = {t: dict.fromkeys(TOUCH_COUNTS, 0) for t in touches}
    for (_, touch, state), count in rollups.counts(conn, rollups.MESSAGE, sequence).items():
        bucket = per_touch.setdefault(touch, {})
        if state in SENT_LIKE:
            bucket["sent"] = bucket.get("sent", 0) + count
        if state in FINAL_STATUSES and state != MessageStatus.SENT:
            bucket[state] = bucket.get(state, 0) + count
        if state == rollups.WAITING:
            bucket["waiting"] = bucket.get("waiting", 0) + count
    value, results = _touch_results(conn, sequence, per_touch)
    return {"sequence": sequence, "enrolled": enrolled, "converted": converted,
            "conversion_rate": round(converted / enrolled, 4) if enrolled else 0.0,
            "revenue": value, **results, "touches": per_touch}


def _touch_results(conn: sa.Connection, sequence: str, per_touch: dict[str, dict]) -> tuple[float, dict[str, Any]]:
    """The sequence's revenue, and per touch (in place) and for the sequence: unique human clicks, click rate,
    attributed conversions and revenue, revenue per message sent."""
    clicks = dict(conn.execute(
        sa.select(engagements_t.c.touch, sa.func.count(sa.distinct(engagements_t.c.message_id)))
        .where(engagements_t.c.sequence == sequence, engagements_t.c.kind == EngagementKind.CLICKED.value)
        .group_by(engagements_t.c.touch)).all())
    credited, value = {}, 0.0
    attributed = events_t.c.message_id.is_not(None)
    for touch, n, v, revenue in conn.execute(  # every conversion named for the sequence, in one pass
            sa.select(events_t.c.touch, sa.func.sum(sa.case((attributed, 1), else_=0)),
                      sa.func.sum(sa.case((attributed, events_t.c.value), else_=None)), sa.func.sum(events_t.c.value))
            .where(events_t.c.sequence == sequence, events_t.c.type == "converted").group_by(events_t.c.touch)):
        value += float(revenue or 0)
        if n:
            credited[touch] = (int(n), float(v or 0))
    totals = {"sent": 0, "clicks": 0, "attributed_conversions": 0, "attributed_revenue": 0.0}
    for touch, bucket in per_touch.items():
        sent = bucket.get("sent", 0)
        n, revenue = credited.get(touch, (0, 0.0))
        bucket.update(clicks=clicks.get(touch, 0), click_rate=round(clicks.get(touch, 0) / sent, 4) if sent else 0.0,
                      attributed_conversions=n, attributed_revenue=revenue,
                      revenue_per_sent=round(revenue / sent, 2) if sent else 0.0)
        for key in totals:
            totals[key] += bucket.get(key, 0)
    sent = totals.pop("sent")
    return value, {**totals, "click_rate": round(totals["clicks"] / sent, 4) if sent else 0.0,
                   "revenue_per_sent": round(totals["attributed_revenue"] / sent, 2) if sent else 0.0}


def unattributed(conn: sa.Connection) -> dict[str, Any]:
    """Conversions credited to no message ("converted, not attributed"): how many and their revenue."""
    n, value = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(events_t.c.value), 0))
                            .where(events_t.c.type == "converted", events_t.c.message_id.is_(None))).one()
    return {"conversions": n, "revenue": float(value or 0)}


def queue_state(conn: sa.Connection, at: datetime | None = None) -> dict[str, Any]:
    """Due now, deferred (moved past their due time) and the lag of the oldest due message."""
    at = at or now()
    scheduled = status_is(messages.c.status, MessageStatus.SCHEDULED.value)  # a literal: the partial due-index serves it
    due, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(messages.c.next_attempt_at))
                               .where(scheduled, messages.c.next_attempt_at <= at)).one()
    deferred = conn.execute(sa.select(sa.func.count()).where(
        scheduled, messages.c.next_attempt_at > at, messages.c.next_attempt_at > messages.c.due_at)).scalar_one()
    oldest = to_utc(oldest)
    return {"due": due, "deferred": deferred, "lag_seconds": max(0.0, (at - oldest).total_seconds()) if oldest else 0.0}
