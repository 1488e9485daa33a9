"""What the KPI page draws besides the figures: each sequence's funnel and the daily sends, clicks and sales."""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from .engagement import HUMAN_KINDS
from .store.reports import QUARTER, quarter_hour
from .models import COUNTS_AS_SENT, ContactEvent, Engagement, EngagementKind, Enrollment, Message

__all__ = ["funnels", "daily"]

enrollments_t = Enrollment.__table__
messages_t = Message.__table__
engagements_t = Engagement.__table__
events_t = ContactEvent.__table__


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


def daily(conn: sa.Connection, start: datetime, until: datetime, tz: ZoneInfo) -> dict[str, list[tuple[date, int]]]:
    """Sends, clicks (a person's) and conversions per local day of the window, every day present.

    The database counts them by quarter hour (every zone's offset from UTC is a whole number of quarter hours,
    so a quarter hour lies within one local day); each quarter hour's count goes to its local day here."""
    series = {"sends": Counter(), "clicks": Counter(), "conversions": Counter()}
    queries = {
        "sends": (messages_t.c.sent_at, [messages_t.c.status.in_(COUNTS_AS_SENT),
                                         messages_t.c.sent_at.between(start, until)]),
        "clicks": (engagements_t.c.at, [engagements_t.c.kind.in_(HUMAN_KINDS[:1]),
                                        engagements_t.c.at.between(start, until)]),
        "conversions": (events_t.c.at, [events_t.c.type == "converted", events_t.c.at.between(start, until)]),
    }
    for name, (column, where) in queries.items():
        bucket = quarter_hour(conn, column)
        for quarter, count in conn.execute(sa.select(bucket, sa.func.count()).where(*where).group_by(bucket)):
            series[name][datetime.fromtimestamp(quarter * QUARTER, tz).date()] += count
    first, last = start.astimezone(tz).date(), until.astimezone(tz).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return {name: [(d, counts[d]) for d in days] for name, counts in series.items()}
