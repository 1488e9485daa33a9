"""What the KPI page draws besides the figures: each sequence's funnel, its funnel per touch and the daily sends,
clicks and sales. What each funnel step counts is :data:`STEPS` (the README and the page's hover text say the same).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from .models import COUNTS_AS_SENT, ContactEvent, Engagement, EngagementKind, Enrollment, Message, MessageStatus
from .store import buckets
from .store.reports import QUARTER

__all__ = ["STEPS", "SEQUENCE_STEPS", "TOUCH_STEPS", "funnels", "touch_funnels", "daily"]

enrollments_t = Enrollment.__table__
messages_t = Message.__table__
engagements_t = Engagement.__table__
events_t = ContactEvent.__table__

#: each step of the funnels and what it counts (a sequence's steps count contacts, a touch's count messages)
STEPS = {
    "enrolled": "contacts enrolled in the sequence within the window",
    "sent": "of those contacts, the ones sent a message of the sequence within the window",
    "clicked": "of those contacts, the ones who clicked a message of the sequence within the window (a person's "
               "click, not a bot's)",
    "converted": "of those contacts, the ones with a conversion counted for the sequence within the window "
                 "(credited to one of its messages, a sale named for it, or a won lead it handed off)",
    "touch_sent": "messages of the touch sent within the window",
    "touch_delivered": "of those messages, the ones a delivery receipt confirmed",
    "touch_clicked": "of those messages, the ones a person clicked",
    "touch_converted": "conversions credited to those messages (the last message clicked within the click window, "
                       "else the last one that reached the contact within the send window)",
}
SEQUENCE_STEPS = ("enrolled", "sent", "clicked", "converted")
TOUCH_STEPS = ("touch_sent", "touch_delivered", "touch_clicked", "touch_converted")


def funnels(conn: sa.Connection, start: datetime, until: datetime) -> dict[str, list[tuple[str, int]]]:
    """Per sequence, its funnel for runs enrolled in the window: enrolled, sent, clicked, converted (contacts).

    Counted in the database: each (sequence, contact) enrolled in the window, and whether the same pair has a
    send, a person's click and a conversion within the window."""
    def pairs(table: sa.Table, *where) -> sa.Subquery:
        return sa.select(table.c.sequence, table.c.contact_id).where(*where).distinct().subquery()

    enrolled = pairs(enrollments_t, enrollments_t.c.enrolled_at.between(start, until))
    steps = {
        "sent": pairs(messages_t, messages_t.c.status.in_(COUNTS_AS_SENT), messages_t.c.sent_at.between(start, until)),
        "clicked": pairs(engagements_t, engagements_t.c.kind == EngagementKind.CLICKED.value,
                         engagements_t.c.at.between(start, until)),
        "converted": pairs(events_t, events_t.c.type == "converted", events_t.c.at.between(start, until)),
    }
    joined = enrolled
    for step in steps.values():
        joined = joined.outerjoin(step, sa.and_(step.c.sequence == enrolled.c.sequence,
                                                step.c.contact_id == enrolled.c.contact_id))
    query = (sa.select(enrolled.c.sequence, sa.func.count(), *(sa.func.count(s.c.contact_id) for s in steps.values()))
             .select_from(joined).group_by(enrolled.c.sequence))
    return {seq: [("enrolled", n), *zip(steps, counts)] for seq, n, *counts in sorted(conn.execute(query))}


def touch_funnels(conn: sa.Connection, start: datetime, until: datetime,
                  order: dict[str, list[str]]) -> dict[str, list[tuple[str, list[tuple[str, int]]]]]:
    """Per sequence, per touch (in ``order``, each sequence's touch names; others after them by name), the
    :data:`TOUCH_STEPS` of the messages sent within the window. A conversion is credited to a message by
    :mod:`engine.attribution` when it is recorded (the event's ``message_id``).

    The sent and delivered counts are :func:`engine.store.buckets.counts`; the clicked and credited ones join
    the window's sends to their clicks and conversions by message id."""
    sent_in_window = sa.and_(messages_t.c.status.in_(COUNTS_AS_SENT), messages_t.c.sent_at.between(start, until))
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(TOUCH_STEPS, 0))
    sends = buckets.counts(conn, buckets.SENDS, start, until, ("sequence", "touch", "state"))
    for (seq, touch, state), n in sends.items():
        counts[seq, touch]["touch_sent"] += n
        if state == MessageStatus.DELIVERED.value:
            counts[seq, touch]["touch_delivered"] += n
    clicked = (sa.select(messages_t.c.sequence, messages_t.c.touch, sa.func.count(sa.distinct(messages_t.c.id)))
               .select_from(engagements_t.join(messages_t, messages_t.c.id == engagements_t.c.message_id))
               .where(sent_in_window, engagements_t.c.kind == EngagementKind.CLICKED.value,
                      engagements_t.c.at <= until)
               .group_by(messages_t.c.sequence, messages_t.c.touch))
    credited = (sa.select(messages_t.c.sequence, messages_t.c.touch, sa.func.count())
                .select_from(events_t.join(messages_t, messages_t.c.id == events_t.c.message_id))
                .where(sent_in_window, events_t.c.type == "converted", events_t.c.at <= until)
                .group_by(messages_t.c.sequence, messages_t.c.touch))
    for step, query in (("touch_clicked", clicked), ("touch_converted", credited)):
        for seq, touch, n in conn.execute(query):
            counts[seq, touch][step] = n
    out: dict[str, list[tuple[str, list[tuple[str, int]]]]] = defaultdict(list)
    for seq, touch in sorted(counts, key=lambda k: (k[0], _rank(order.get(k[0], []), k[1]), k[1])):
        out[seq].append((touch, [(step, counts[seq, touch][step]) for step in TOUCH_STEPS]))
    return dict(out)


def _rank(names: list[str], name: str) -> int:
    return names.index(name) if name in names else len(names)


def daily(conn: sa.Connection, start: datetime, until: datetime, tz: ZoneInfo) -> dict[str, list[tuple[date, int]]]:
    """Sends, clicks (a person's) and conversions per local day of the window, every day present.

    They are counted by quarter hour (:func:`engine.store.buckets.counts`; every zone's offset from UTC is a whole
    number of quarter hours, so a quarter hour lies within one local day); each quarter hour's count goes to its
    local day here."""
    series = {"sends": Counter(), "clicks": Counter(), "conversions": Counter()}
    for name, kind in (("sends", buckets.SENDS), ("clicks", buckets.CLICKS), ("conversions", buckets.SALES)):
        for (quarter,), count in buckets.counts(conn, kind, start, until, ("quarter",)).items():
            series[name][datetime.fromtimestamp(quarter * QUARTER, tz).date()] += count
    first, last = start.astimezone(tz).date(), until.astimezone(tz).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return {name: [(d, counts[d]) for d in days] for name, counts in series.items()}
