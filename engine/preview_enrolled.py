"""``followup preview SEQ --contact KEY`` for a contact already enrolled: its stored messages, not a new plan.

An open message (pending or scheduled) is rendered as the worker would render it for this contact: the
enrollment's own version of the sequence, its frozen offer deadline and the stored offer numbers. The
claim-time checks (:func:`engine.plan.decide`) are asked at its due time, so a suppression, a missing
address or an offer over by then is shown as "will be skipped: ...". A scheduled message is due at its
stored time; a pending one waits for the touch before it, so its time is counted from that touch's.
A message already done shows its status, time and reason.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from providers.base import OutgoingMessage

from .clock import now, to_utc
from .config import Config
from .durations import format_duration
from .enrollment import channel_kinds, refusal
from .models import Enrollment, Message, MessageStatus, OPEN_STATUSES, Offer, SequenceVersion
from .plan import decide, plan_from_json
from .preview import PreviewRow, preview, segment_price
from .render import NotSent, build_message
from .sequences import Sequence
from .sms import sms_info
from .templates import Rendered
from .window import next_allowed

__all__ = ["latest_enrollment", "enrolled_preview", "contact_preview"]

enrollments, messages = Enrollment.__table__, Message.__table__
offers, versions = Offer.__table__, SequenceVersion.__table__


def latest_enrollment(conn: sa.Connection, sequence: str, contact_id: int) -> dict | None:
    """The contact's newest enrollment in ``sequence`` (active or ended), or None."""
    row = conn.execute(sa.select(enrollments).where(enrollments.c.contact_id == contact_id,
                                                    enrollments.c.sequence == sequence)
                       .order_by(enrollments.c.id.desc()).limit(1)).mappings().first()
    return dict(row) if row else None


def enrolled_preview(config: Config, conn: sa.Connection, enrollment: dict, contact: dict) -> list[PreviewRow]:
    """The enrollment's messages from the database, open ones rendered for ``contact`` at their due time."""
    plan = plan_from_json(conn.execute(sa.select(versions.c.definition)
                                       .where(versions.c.hash == enrollment["sequence_hash"])).scalar_one(),
                          config.holidays)
    offer = conn.execute(sa.select(offers).where(offers.c.sequence == enrollment["sequence"],
                                                 offers.c.code == enrollment["offer_code"])).mappings().first()
    offer = dict(offer) if offer else None
    enrollment = {**enrollment, "offer_expires_at": to_utc(enrollment["offer_expires_at"])}
    tz = ZoneInfo(contact.get("timezone") or config.settings.timezone.key)
    window = plan.send_window or config.settings.send_window
    cap = plan.frequency_cap or config.settings.frequency_cap
    price = segment_price(config)
    at = now()
    previous: datetime | None = None
    rows = []
    for message in conn.execute(sa.select(messages).where(messages.c.enrollment_id == enrollment["id"])
                                .order_by(messages.c.touch_index)).mappings():
        message = dict(message)
        touch = plan.touches[message["touch_index"]]
        if message["status"] not in OPEN_STATUSES:
            previous = to_utc(message["sent_at"]) or to_utc(message["updated_at"])
            rows.append(PreviewRow(touch.name, touch.channel, previous.astimezone(tz), message["reason"] or "",
                                   None, status=message["status"]))
            continue
        notes = []
        if message["status"] == MessageStatus.SCHEDULED.value:
            when = max(to_utc(message["next_attempt_at"]) or at, at)
        else:
            when = next_allowed(max(previous or at, at) + touch.after, tz, window)
            notes.append(f"waits for the touch before it, then {format_duration(touch.after)}")
        decision = decide(now=when, message=message, enrollment=enrollment, contact=contact, offer=offer, tz=tz,
                          window=window, cap=cap, sent_times=[])
        if decision.action == "deferred":
            when = decision.until
            notes.append(decision.reason)
        elif decision.action != "send":
            notes.append(f"will be {decision.action}: {decision.reason}")
        previous = when
        built = build_message(config, message, touch, plan, enrollment, contact, offer, tz, when, 0)
        row = PreviewRow(touch.name, touch.channel, when.astimezone(tz), "", None, status=message["status"])
        if isinstance(built, NotSent):
            if built.status == "failed":
                row.error = built.reason
            else:
                notes.append(f"will be skipped: {built.reason}")
        elif isinstance(built, OutgoingMessage):
            row.rendered = Rendered(built.text, built.subject, built.html)
            if touch.channel == "sms":
                row.sms = sms_info(built.text)
                row.cost = price * row.sms.segments if price is not None else None
        row.note = "; ".join(notes)
        rows.append(row)
    return rows


def contact_preview(config: Config, conn: sa.Connection, seq: Sequence, contact: dict) -> tuple[str, list[PreviewRow]]:
    """What ``preview --contact`` shows: a line saying whether the contact is enrolled, and the rows.

    Enrolled (an active enrollment): its stored messages. Otherwise the plan as if it enrolled now.
    """
    who = f"contact {contact['id']}" + (f" ({contact['first_name']})" if contact.get("first_name") else "")
    enrollment = latest_enrollment(conn, seq.name, contact["id"])
    if enrollment is not None and enrollment["status"] == "active":
        since = to_utc(enrollment["enrolled_at"]).astimezone(config.settings.timezone)
        return (f"{who} is enrolled in {seq.name} since {since:%Y-%m-%d %H:%M %Z}: its messages as stored, "
                "open ones rendered for it at their due time", enrolled_preview(config, conn, enrollment, contact))
    ended = (f" (its enrollment ended: {enrollment['status']}"
             + (f", {enrollment['ended_reason']})" if enrollment.get("ended_reason") else ")")) if enrollment else ""
    head = f"{who} is not enrolled in {seq.name}{ended}; the plan if it were enrolled now"
    refused = refusal(contact, channel_kinds(seq))
    if refused:
        head += f" (enroll would refuse it: {refused})"
    return head, preview(config, seq, contact)
