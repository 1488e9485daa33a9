"""The window's leads, counted in the database: per group, how many contacts enrolled, how many of them
converted after they enrolled and the days each took (:data:`engine.kpi.DEFINITIONS`: ``leads``,
``conversion_rate``, ``median_days_to_convert``), and when converting contacts entered a post-purchase sequence.

A lead is a (group, contact) pair of the window's enrollments, enrolled at its first enrollment in the group; the
database counts each group's contacts, and groups into leads only the runs of contacts converting within the
window: only the leads that converted come back as rows.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from .clock import to_utc
from .control import SALES_SEQUENCE
from .models import ContactEvent, Enrollment
from .store.reports import seconds_between

__all__ = ["Leads", "window_leads", "loyalty_starts"]

enrollments_t = Enrollment.__table__
events_t = ContactEvent.__table__


@dataclass
class Leads:
    """One group's leads: how many, how many converted after they enrolled, and the days each of those took."""

    count: int = 0
    converted: int = 0
    days: list[float] = field(default_factory=list)

    def add(self, other: "Leads") -> None:
        self.count += other.count
        self.converted += other.converted
        self.days += other.days


def _in_window(start: datetime, until: datetime) -> sa.ColumnElement:
    return sa.and_(enrollments_t.c.enrolled_at >= start, enrollments_t.c.enrolled_at <= until,
                   enrollments_t.c.sequence != SALES_SEQUENCE)


def window_leads(conn: sa.Connection, start: datetime, until: datetime,
                 keys: tuple[sa.ColumnElement, ...]) -> dict[tuple, Leads]:
    """The leads of the runs enrolled within the window, by the values of ``keys`` (what the database groups
    the runs by, of ``enrollments``' columns). Keys whose contacts fall in one group each (a contact's rep)
    may make one group of many keys: their counts add up (:meth:`Leads.add`)."""
    e = enrollments_t
    # a row per group with its count of contacts (sorted, not hashed: cheaper for the window's many runs)
    counts = (sa.select(*keys, sa.func.count(sa.distinct(e.c.contact_id)), sa.null(), sa.null())
              .where(_in_window(start, until)).group_by(*keys))
    # then a row per converted lead: only the runs of contacts converting within the window can lead to one
    buyers = sa.select(events_t.c.contact_id).where(events_t.c.type == "converted",
                                                    events_t.c.at.between(start, until))
    runs = (sa.select(*(k.label(f"k{i}") for i, k in enumerate(keys)), e.c.contact_id,
                      sa.func.min(e.c.enrolled_at).label("first"))
            .where(_in_window(start, until), e.c.contact_id.in_(buyers))
            .group_by(*keys, e.c.contact_id).subquery("runs"))
    key_columns = [runs.c[f"k{i}"] for i in range(len(keys))]
    # the days each took: the seconds counted in the database where it can (rows of one float, not two times)
    took = seconds_between(conn, runs.c.first, sa.func.min(events_t.c.at))
    converted = (sa.select(*key_columns, sa.null(), *((runs.c.first, sa.func.min(events_t.c.at)) if took is None
                                                      else (took, sa.null())))
                 .select_from(runs.join(events_t, sa.and_(events_t.c.contact_id == runs.c.contact_id,
                                                          events_t.c.type == "converted",
                                                          events_t.c.at >= runs.c.first, events_t.c.at >= start,
                                                          events_t.c.at <= until)))
                 .group_by(*key_columns, runs.c.contact_id, runs.c.first))
    out: dict[tuple, Leads] = defaultdict(Leads)
    for *key, n, took_or_first, at in conn.execute(sa.union_all(counts, converted)):
        leads = out[tuple(key)]
        if n is not None:
            leads.count += n
            continue
        leads.converted += 1
        seconds = took_or_first if took is not None else (to_utc(at) - to_utc(took_or_first)).total_seconds()
        leads.days.append(seconds / 86400)
    return dict(out)


def loyalty_starts(conn: sa.Connection, start: datetime, until: datetime, loyalty: set[str],
                   contacts: set[int]) -> dict[int, datetime]:
    """When each of ``contacts`` first entered one of the ``loyalty`` sequences within the window."""
    if not loyalty or not contacts:
        return {}
    e = enrollments_t
    rows = conn.execute(sa.select(e.c.contact_id, sa.func.min(e.c.enrolled_at))
                        .where(_in_window(start, until), e.c.sequence.in_(sorted(loyalty)))
                        .group_by(e.c.contact_id))
    return {cid: to_utc(at) for cid, at in rows if cid in contacts}
