"""Contacts as ops see them: list by tag or sequence, one contact in full, and erasure (``contacts forget``).

An erased contact keeps its row and id, so every count stays (enrollments, messages, conversions and
their value, stats); what named a person is gone: phone, email, external id, names, tags, attributes,
timezone and locale, and any phone or email written in its messages' and log rows' reasons. Its active
enrollments end as ``unenrolled`` and their pending messages are cancelled with the reason, and a log
row (event ``erased``) records when.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .clock import now, to_utc
from .ending import end_enrollments
from .store import append_log
from .store.sources import follow
from .models import Contact, DeliveryLog, Enrollment, EnrollmentStatus, Message

__all__ = ["ERASED", "ERASED_REASON", "contact_rows", "contact_detail", "forget", "has_tag", "is_erased", "not_erased",
           "tags_of"]

contacts = Contact.__table__
enrollments = Enrollment.__table__
messages = Message.__table__
log_t = DeliveryLog.__table__

#: what an erased contact's suppression columns say (nothing is ever sent to it again)
ERASED = "erased"
ERASED_REASON = "contact erased (followup contacts forget)"


def tags_of(row: dict) -> list[str]:
    """A contact's tags, from the stored ``;a;b;`` form."""
    return [t for t in (row.get("tags") or "").split(";") if t]


def has_tag(tag: str) -> sa.ColumnElement[bool]:
    """The contacts with ``tag`` (matched whole, as written)."""
    pattern = "%;" + tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ";%"
    return contacts.c.tags.like(pattern, escape="\\")


def is_erased(row: dict) -> bool:
    return (row.get("sms_suppressed") or "").startswith(ERASED)


def not_erased(column: sa.ColumnElement) -> sa.ColumnElement[bool]:
    """The contacts whose suppression ``column`` is not an erasure's: an erased contact's marker is never
    replaced (by an old unsubscribe link, a resubscribe or a provider's receipt)."""
    return sa.func.coalesce(column, "").not_like(f"{ERASED}%")


def contact_rows(conn: sa.Connection, *, tag: str | None = None, sequence: str | None = None,
                 limit: int | None = None) -> list[dict[str, Any]]:
    """Contacts (oldest first) with this tag and/or an active enrollment in this sequence."""
    query = sa.select(contacts).order_by(contacts.c.id)
    if tag:
        query = query.where(has_tag(tag))
    if sequence:
        query = query.where(contacts.c.id.in_(sa.select(enrollments.c.contact_id).where(
            enrollments.c.sequence == sequence, enrollments.c.status == EnrollmentStatus.ACTIVE.value)))
    if limit:
        query = query.limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


def contact_detail(conn: sa.Connection, contact: dict) -> dict[str, Any]:
    """One contact in full: its fields, attributes, consents per channel and every enrollment with its messages."""
    rows = conn.execute(sa.select(enrollments).where(enrollments.c.contact_id == contact["id"])
                        .order_by(enrollments.c.id)).mappings().all()
    counts: dict[int, dict[str, int]] = {}
    for enrollment_id, status, n in conn.execute(
            sa.select(messages.c.enrollment_id, messages.c.status, sa.func.count())
            .where(messages.c.contact_id == contact["id"]).group_by(messages.c.enrollment_id, messages.c.status)):
        counts.setdefault(enrollment_id, {})[status] = n
    return {
        "id": contact["id"], "external_id": contact["external_id"], "phone": contact["phone"],
        "email": contact["email"], "first_name": contact["first_name"], "last_name": contact["last_name"],
        "timezone": contact["timezone"], "locale": contact["locale"], "tags": tags_of(contact),
        "attrs": dict(contact["attrs"] or {}), "erased": is_erased(contact),
        "consents": {channel: contact[f"{channel}_suppressed"] or "allowed" for channel in ("sms", "email")},
        "enrollments": [{"sequence": e["sequence"], "version": e["sequence_hash"], "status": e["status"],
                         "enrolled_at": _iso(e["enrolled_at"]), "ended_at": _iso(e["ended_at"]),
                         "ended_reason": e["ended_reason"], "offer_code": e["offer_code"],
                         "offer_expires_at": _iso(e["offer_expires_at"]), "messages": counts.get(e["id"], {})}
                        for e in rows],
    }


def _iso(value: datetime | None) -> str | None:
    return to_utc(value).isoformat() if value is not None else None


def forget(conn: sa.Connection, contact: dict) -> dict[str, int]:
    """Erase one contact's personal data, in the caller's transaction; return what was done."""
    stamp = now()
    active = [dict(r) for r in conn.execute(sa.select(enrollments).where(
        enrollments.c.contact_id == contact["id"], enrollments.c.status == EnrollmentStatus.ACTIVE.value)).mappings()]
    cancelled = end_enrollments(conn, active, EnrollmentStatus.UNENROLLED.value, ERASED_REASON)
    scrubbed = 0
    for value in {contact["phone"], contact["email"], contact["external_id"]} - {None, ""}:
        for table in (messages, log_t):
            scrubbed += conn.execute(sa.update(table).where(
                table.c.contact_id == contact["id"], table.c.reason.contains(value, autoescape=True))
                .values(reason=sa.func.replace(table.c.reason, value, "[erased]"))).rowcount
    mark = f"{ERASED} {stamp:%Y-%m-%d}"
    conn.execute(sa.update(contacts).where(contacts.c.id == contact["id"]).values(
        external_id=None, phone=None, email=None, first_name="", last_name="", timezone=None, locale=None,
        tags="", attrs={}, sms_suppressed=mark, email_suppressed=mark, updated_at=stamp))
    follow(conn, {contact["id"]: None})
    append_log(conn, [dict(at=stamp, message_id=None, contact_id=contact["id"], sequence=None, touch=None,
                           channel=None, provider=None, event="erased", attempt=0, provider_message_id=None,
                           worker=None, reason=f"personal data erased; {len(active)} enrollment(s) ended, "
                                               f"{cancelled} pending message(s) cancelled")])
    return {"enrollments": len(active), "cancelled": cancelled, "scrubbed": scrubbed}

