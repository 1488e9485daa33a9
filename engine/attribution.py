"""Which one message earned a conversion.

The last message the contact clicked (a person's click, :mod:`engine.engagement`) within
``attribution.click_window`` (default 5 days) before the sale; else the last message that reached the contact
(delivered, or sent when no receipt came) within ``attribution.send_window`` of its channel (default 1 day for
SMS, 3 days for email); else none: the conversion is recorded as not attributed. A sale named for a sequence
is credited only to that sequence's messages.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from .clock import to_utc
from .link_settings import AttributionSettings
from .models import Engagement, EngagementKind, Message, MessageStatus

__all__ = ["Credit", "credit", "REACHED"]

engagements_t = Engagement.__table__
messages = Message.__table__
#: statuses of a message that reached (or, without a receipt, presumably reached) its contact
REACHED = (MessageStatus.DELIVERED.value, MessageStatus.SENT.value)


@dataclass(frozen=True)
class Credit:
    """The credited message: its id, sequence, touch and A/B variant (None: the touch has none), and ``by``
    ``click`` or ``send``."""

    message_id: int
    sequence: str
    touch: str
    by: str
    variant: str | None = None


def credit(conn: sa.Connection, rules: AttributionSettings, contact_id: int, at: datetime,
           sequence: str | None = None) -> Credit | None:
    """The message a conversion of ``contact_id`` at ``at`` is credited to, or None (not attributed)."""
    clicked = (sa.select(engagements_t.c.message_id, engagements_t.c.sequence, engagements_t.c.touch,
                         messages.c.variant)
               .select_from(engagements_t.outerjoin(messages, messages.c.id == engagements_t.c.message_id))
               .where(engagements_t.c.contact_id == contact_id, engagements_t.c.kind == EngagementKind.CLICKED.value,
                      engagements_t.c.message_id.is_not(None),
                      engagements_t.c.at > at - rules.click_window, engagements_t.c.at <= at))
    if sequence:
        clicked = clicked.where(engagements_t.c.sequence == sequence)
    row = conn.execute(clicked.order_by(engagements_t.c.at.desc(), engagements_t.c.id.desc()).limit(1)).first()
    if row is not None:
        return Credit(row[0], row[1], row[2], "click", row[3])
    longest = max(rules.send_window.values())
    reached = (sa.select(messages.c.id, messages.c.sequence, messages.c.touch, messages.c.channel, messages.c.sent_at,
                         messages.c.variant)
               .where(messages.c.contact_id == contact_id, messages.c.status.in_(REACHED),
                      messages.c.sent_at > at - longest, messages.c.sent_at <= at))
    if sequence:
        reached = reached.where(messages.c.sequence == sequence)
    for mid, seq, touch, channel, sent_at, variant in conn.execute(reached.order_by(messages.c.sent_at.desc(),
                                                                           messages.c.id.desc())):
        window = rules.send_window.get(channel)
        if window is not None and at - to_utc(sent_at) < window:
            return Credit(mid, seq, touch, "send", variant)
    return None
