"""What the KPI page draws besides the figures: each sequence's funnel, its funnel per touch and the daily sends,
clicks and sales. What each funnel step counts is :data:`STEPS` (the README and the page's hover text say the same).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from .models import ContactEvent, Enrollment, MessageStatus
from .store import buckets, marks
from .store.reports import QUARTER, grouped

__all__ = ["STEPS", "SEQUENCE_STEPS", "TOUCH_STEPS", "funnels", "touch_funnels", "daily"]

enrollments_t = Enrollment.__table__
events_t = ContactEvent.__table__

#: each step of the funnels and what it counts (a sequence's steps count runs, a touch's count messages)
STEPS = {
    "enrolled": "runs of the sequence enrolled within the window (a contact enrolled twice counts twice)",
    "sent": "of those runs, the ones that had sent a message by the window's end",
    "clicked": "of those runs, the ones with a message a person had clicked by the window's end (not a bot)",
    "converted": "of those runs, the ones whose contact has a conversion counted for the sequence within the window "
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
    """Per sequence, its funnel for runs enrolled in the window: enrolled, sent, clicked, converted (runs).

    Counted in the database in one pass over the window's runs: whether each run had sent and had a click by the
    window's end (:mod:`engine.store.marks`), and whether its (sequence, contact) has a conversion within the window."""
    e, v = enrollments_t.c, events_t.c
    converted = (sa.select(v.sequence, v.contact_id)
                 .where(v.type == "converted", v.at.between(start, until), v.sequence.is_not(None))
                 .distinct().subquery())
    runs = sa.func.count()
    sequence = grouped(e.sequence)  # the window's runs through the index on their time
    query = (sa.select(sequence, runs, runs.filter(marks.sent_by(conn, until)),
                       runs.filter(marks.clicked_by(conn, until)), runs.filter(converted.c.contact_id.is_not(None)))
             .select_from(enrollments_t.outerjoin(converted, sa.and_(converted.c.sequence == e.sequence,
                                                                     converted.c.contact_id == e.contact_id)))
             .where(e.enrolled_at.between(start, until)).group_by(sequence))
    return {seq: list(zip(SEQUENCE_STEPS, counts)) for seq, *counts in sorted(conn.execute(query))}


def touch_funnels(conn: sa.Connection, start: datetime, until: datetime,
                  order: dict[str, list[str]]) -> dict[str, list[tuple[str, list[tuple[str, int]]]]]:
    """Per sequence, per touch (in ``order``, each sequence's touch names; others after them by name), the
    :data:`TOUCH_STEPS` of the messages sent within the window. A conversion is credited to a message by
    :mod:`engine.attribution` when it is recorded (the event's ``message_id``).

    Each step is :func:`engine.store.buckets.counts` by the messages' send time: sent and delivered, clicked by a
    person, conversions credited."""
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(TOUCH_STEPS, 0))
    for kind in (buckets.SENDS, buckets.CLICKED, buckets.CREDITED):
        for (seq, touch, state), n in buckets.counts(conn, kind, start, until, ("sequence", "touch", "state")).items():
            step = {"delivered": "touch_sent", "sent": "touch_sent", "clicked": "touch_clicked",
                    "converted": "touch_converted"}[state]
            counts[seq, touch][step] += n
            if state == MessageStatus.DELIVERED.value:
                counts[seq, touch]["touch_delivered"] += n
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
