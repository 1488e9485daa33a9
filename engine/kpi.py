"""The shared KPIs of marketing and sales: one report for ``followup kpi``, ``GET /api/v1/kpi`` and the dashboard.

Every figure is over a window (``since`` until now) and may be split ``by`` source, sequence, rep or month.
What each figure means is :data:`DEFINITIONS` (the README, the API and the dashboard's hover text say the same).

What sales records is read from the ``handoffs`` table (:mod:`engine.handoff`, :mod:`engine.leads`):

- a handoff: a ``handoffs`` row (its ``at`` is when);
- an outcome: that row's ``outcome`` (``won`` or ``lost``, ``objection`` on a loss; ``outcome_at`` is when);
- a lead's rep: the ``rep`` of the contact's latest handoff;
- a lead's source: the contact's ``source`` attribute, else its ``utm_source`` (from an import or the API); the
  runs and sends carry a copy of it (:mod:`engine.store.sources`), which the report groups them by: the leads by
  their runs' copies, the handoffs by their run's, the cost by the sends' (kept per quarter hour on PostgreSQL);
  the conversions by their contacts' attributes.

Leads leave out the sales reps' own enrollments in the built-in ``_sales`` sequence. Until sales records
any, those figures are 0.
"""
from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Callable

import sqlalchemy as sa

from .clock import now, to_utc
from .config import Config
from .durations import parse_duration
from .errors import InputError
from .store import buckets
from .store.reports import QUARTER, attr_json, utc_month
from .store.sources import source_of
from .kpi_leads import Leads, loyalty_starts, window_leads
from .models import COUNTS_AS_SENT, Contact, ContactEvent, Enrollment, Handoff, LeadOutcome, Message

__all__ = ["BY", "DEFINITIONS", "FIGURES", "Kpi", "kpi_report", "parse_window", "revenue_by_source",
           "sources_revenue", "top_objections"]

contacts_t = Contact.__table__
enrollments_t = Enrollment.__table__
events_t = ContactEvent.__table__
messages_t = Message.__table__
handoffs_t = Handoff.__table__

BY = ("source", "sequence", "rep", "month")
WON, LOST = LeadOutcome.WON.value, LeadOutcome.LOST.value
NONE = "(none)"
#: each figure and what it means
DEFINITIONS = {
    "leads": "contacts enrolled in a sequence within the window (sales reps' _sales enrollments left out)",
    "handoffs": "leads handed off to a sales rep within the window",
    "conversions": "converted events within the window",
    "conversion_rate": "share of the window's leads with a conversion after they enrolled",
    "handoff_win_rate": "share of the window's handoffs whose rep recorded them as won",
    "median_days_to_convert": "median days from a lead's enrollment to its first conversion after it",
    "revenue": "sum of the values of the window's conversions",
    "revenue_per_lead": "revenue divided by leads",
    "lead_quality": "share of handoffs won, by the lead's source (the contact's source or utm_source)",
    "customer_lifetime_value": "mean, over contacts converting within the window, of all their conversions' "
                               "values ever",
    "repeat_purchase_rate": "share of those contacts with two or more conversions",
    "repeat_customer_value": "mean lifetime value of contacts with two or more conversions",
    "repeat_after_loyalty": "conversions of a contact after it entered a post-purchase (on_converted) sequence, "
                            "within the window",
    "cost": "SMS segments × the provider's price_per_segment plus emails × its price_per_email, for messages "
            "sent within the window",
    "return_on_cost": "(revenue − cost) ÷ cost",
    "top_objections": "objections reps recorded for leads lost within the window: count and share",
}
FIGURES = tuple(k for k in DEFINITIONS if k != "top_objections")


@dataclass
class Kpi:
    """The figures of one group (``group`` is ``all`` without ``by``)."""

    group: str
    figures: dict[str, Any] = field(default_factory=dict)
    objections: list[dict] = field(default_factory=list)  # {objection, count, share}, most first

    def as_dict(self) -> dict:
        return {"group": self.group, **self.figures, "top_objections": self.objections}


def parse_window(since: str) -> timedelta:
    """A report's window (``30d``): a duration longer than 0, else ValueError saying why."""
    span = parse_duration(since)
    if not span:
        raise ValueError("must be longer than 0s")
    return span


def _month(at: datetime) -> str:
    return f"{at.astimezone(timezone.utc):%Y-%m}"


def _quarter_start(quarter: int) -> datetime:
    return datetime.fromtimestamp(quarter * QUARTER, timezone.utc)


def _aware(at: datetime) -> datetime:
    """A stored time as an aware datetime (SQLite's are naive UTC); the same instant, in any zone."""
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def _ratio(a: float, b: float, digits: int = 4) -> float | None:
    return round(a / b, digits) if b else None


class _Rows:
    """Rows the report reads of one table, as dicts of ``keys`` (times in UTC); by source, each row's contact's
    source too, named by ``name`` from the ``source`` columns read in the same query."""

    def __init__(self, conn: sa.Connection, keys: tuple[str, ...], query: sa.Select,
                 source: tuple[sa.ColumnElement, ...] = (), name: Callable[..., str] | None = None):
        #: a contact's source, noted when the report is by source
        self.sources: dict[int, str] = {}
        found = conn.execute(query.add_columns(*source)).all()  # at once: row by row costs more than the database
        if source:
            width = len(keys)
            for row in found:
                if row[0] not in self.sources:
                    self.sources[row[0]] = name(*row[width:])
        self.rows = [dict(zip(keys, r)) for r in found]
        for row in self.rows:
            for key in ("at", "outcome_at"):
                if row.get(key) is not None:
                    row[key] = to_utc(row[key])


def _handoffs(conn: sa.Connection, since: datetime, until: datetime, by: str | None) -> _Rows:
    """The handoffs the report reads: every one until the window's end by rep (a rep's latest, and outcomes of
    earlier handoffs, count), else those of the window and those lost within it; ordered by time. By source, a
    handoff's contact's source is its run's copy (:mod:`engine.store.sources`), found by the run's key."""
    query = sa.select(*(handoffs_t.c[k] for k in HANDOFF_KEYS)).where(handoffs_t.c.at <= until)
    if by != "rep":
        query = query.where(sa.or_(handoffs_t.c.at >= since, sa.and_(
            handoffs_t.c.outcome == LOST, handoffs_t.c.outcome_at.between(since, until))))
    query = query.order_by(handoffs_t.c.at, handoffs_t.c.id)
    if by != "source":
        return _Rows(conn, HANDOFF_KEYS, query)
    query = query.select_from(handoffs_t.outerjoin(enrollments_t, enrollments_t.c.id == handoffs_t.c.enrollment_id))
    return _Rows(conn, HANDOFF_KEYS, query, (enrollments_t.c.source,), lambda source: source or NONE)


def _conversions(conn: sa.Connection, since: datetime, until: datetime, by: str | None) -> _Rows:
    """The conversions of the window, and every earlier one of the contacts converting within it (their
    lifetime), ordered by time; a lead's conversion after it enrolled is within the window too. By source, each
    with its contact's source attributes (:func:`_source_of`)."""
    buyers = sa.select(events_t.c.contact_id).where(events_t.c.type == "converted",
                                                    events_t.c.at.between(since, until))
    query = (sa.select(*(events_t.c[k] for k in EVENT_KEYS))
             .where(events_t.c.type == "converted", events_t.c.at <= until, events_t.c.contact_id.in_(buyers))
             .order_by(events_t.c.at, events_t.c.id))
    if by != "source":
        return _Rows(conn, EVENT_KEYS, query)
    query = query.select_from(events_t.outerjoin(contacts_t, contacts_t.c.id == events_t.c.contact_id))
    return _Rows(conn, EVENT_KEYS, query, _source_columns(), _source_of)


HANDOFF_KEYS = ("contact_id", "sequence", "rep", "at", "outcome", "objection", "outcome_at")
EVENT_KEYS = ("contact_id", "sequence", "value", "at")


def _source_columns() -> tuple[sa.ColumnElement, sa.ColumnElement]:
    return attr_json(contacts_t.c.attrs, "source"), attr_json(contacts_t.c.attrs, "utm_source")


@lru_cache(maxsize=4096)
def _source_of(source: str | None, utm_source: str | None) -> str:
    """:func:`_source` of the attributes whose ``source`` and ``utm_source`` are these JSON texts."""
    return _source({"source": None if source is None else json.loads(source),
                    "utm_source": None if utm_source is None else json.loads(utm_source)})


def _costs(conn: sa.Connection, since: datetime, until: datetime, by: str | None,
           prices: dict[str, tuple[float, float]]) -> list[tuple[tuple, float]]:
    """(key, cost) of the messages sent within the window (:func:`_group_of` names a key's group; a key may come
    more than once), counted and their segments summed in the database by key, provider and channel: by no
    group, sequence, month or source from the counts kept per quarter hour (:data:`engine.store.buckets.SPEND`,
    :data:`~engine.store.buckets.SOURCED`), by rep from the messages."""
    units: Counter[tuple[tuple, str, str]] = Counter()
    if by != "rep":
        kind = buckets.SOURCED if by == "source" else buckets.SPEND
        keys = {None: ("touch", "state"), "sequence": ("sequence", "touch", "state"),
                "source": ("sequence", "touch", "state"),  # a source is kept where a sequence is
                "month": ("quarter", "touch", "state")}[by]
        for (*key, provider, channel), n in buckets.counts(conn, kind, since, until, keys).items():
            units[(_month(_quarter_start(key[0])),) if by == "month" else tuple(key), provider, channel] += n
        return [(key, n * _price(prices, provider, channel)) for (key, provider, channel), n in units.items()]
    m = messages_t.c
    keys = _keys(conn, by, messages_t, m.sent_at, until)
    segments = sa.func.sum(sa.case((sa.func.coalesce(m.segments, 0) == 0, 1), else_=m.segments))
    query = (sa.select(*keys, m.provider, m.channel, sa.func.count(), segments)
             .where(m.status.in_(COUNTS_AS_SENT), m.sent_at >= since, m.sent_at <= until)
             .group_by(*keys, m.provider, m.channel))
    return [(tuple(key), (segment_count if channel == "sms" else count) * _price(prices, provider, channel))
            for *key, provider, channel, count, segment_count in conn.execute(query)]


def _price(prices: dict[str, tuple[float, float]], provider: str, channel: str) -> float:
    """What one SMS segment (``channel`` sms) or one email of ``provider`` costs."""
    per_segment, per_email = prices.get(provider, (0.0, 0.0))
    return per_segment if channel == "sms" else per_email


def _keys(conn: sa.Connection, by: str | None, table: sa.Table, at: sa.Column,
          until: datetime) -> tuple[sa.ColumnElement, ...]:
    """What the database groups ``table``'s rows by for ``by`` (``table`` has the contact's source and time column
    ``at``); :func:`_group_of` names the group of their values."""
    if by == "source":
        return (table.c.source,)
    if by == "sequence":
        return (table.c.sequence,)
    if by == "month":
        return (utc_month(conn, at),)
    if by == "rep":  # a rep's leads: the contacts with a handoff until the window's end; the rest have none
        contact_id = table.c.contact_id
        return (sa.case((contact_id.in_(sa.select(handoffs_t.c.contact_id).where(handoffs_t.c.at <= until)),
                         contact_id), else_=sa.null()),)
    return ()


def _group_of(by: str | None, rep_of: dict[int, str]) -> Callable[[tuple], str]:
    """The group a row of :func:`_keys`' values falls in."""
    if by == "rep":
        return lambda key: rep_of.get(key[0], NONE)
    if by in ("source", "sequence", "month"):
        return lambda key: key[0] or NONE
    return lambda key: "all"


def _source(attrs: dict) -> str:
    return source_of(attrs) or NONE


#: reads of the database, each a function of a connection
Reads = list[Callable[[sa.Connection], Any]]


def kpi_report(conn: sa.Connection, config: Config, *, since: timedelta = timedelta(days=30),
               by: str | None = None, until: datetime | None = None,
               run: Callable[[Reads], list[Any]] | None = None) -> list[Kpi]:
    """The KPIs of the last ``since``, one :class:`Kpi` per group of ``by`` (one ``all`` group without).

    The report's four reads (the handoffs, the conversions, the leads, the cost) do not depend on each other:
    ``run`` runs such reads and returns their results in order. By default they run one after the other on
    ``conn``; the dashboard runs them at once, each on a connection of its own."""
    if by is not None and by not in BY:
        raise InputError(f"--by {by!r}: use one of {', '.join(BY)}")
    until = until or now()
    start = until - since
    prices = _prices(config)
    reads: Reads = [
        lambda c: _handoffs(c, start, until, by),
        lambda c: _conversions(c, start, until, by),
        lambda c: window_leads(c, start, until, _keys(c, by, enrollments_t, enrollments_t.c.enrolled_at, until)),
        lambda c: _costs(c, start, until, by, prices)]
    handoffs, events, leads_by_key, costs = run(reads) if run is not None else [read(conn) for read in reads]
    sources = {**events.sources, **handoffs.sources}
    loyalty = {target for s in config.sequences.values() if (target := getattr(s, "on_converted", None))}
    rep_of = {h["contact_id"]: h["rep"] for h in handoffs.rows}  # ordered by time: the latest wins
    group_of = _group_of(by, rep_of)

    def key(contact_id: int, sequence: str | None, at: datetime) -> str:
        if by == "source":
            return sources.get(contact_id, NONE)
        if by == "sequence":
            return sequence or NONE
        if by == "rep":
            return rep_of.get(contact_id, NONE)
        if by == "month":
            return _month(at)
        return "all"

    groups: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(list))
    leads: dict[str, Leads] = defaultdict(Leads)
    for k, found in leads_by_key.items():
        leads[group_of(k)].add(found)
    for k, found in leads.items():
        groups[k].update(leads=found.count, converted=found.converted, days=found.days)
    entered = loyalty_starts(conn, start, until, loyalty, {e["contact_id"] for e in events.rows})
    purchases: Counter[int] = Counter()  # each converting contact's conversions ever, and their values' sum
    lifetime: dict[int, float] = defaultdict(float)
    for e in events.rows:
        purchases[e["contact_id"]] += 1
        lifetime[e["contact_id"]] += e["value"] or 0
        if e["at"] >= start:
            groups[key(e["contact_id"], e["sequence"], e["at"])]["conversions"].append(e)
    for h in handoffs.rows:
        if h["outcome"] == LOST and h["outcome_at"] is not None and start <= h["outcome_at"] <= until:
            groups[key(h["contact_id"], h["sequence"], h["outcome_at"])]["objections"].append(h["objection"] or NONE)
    for h in handoffs.rows:
        if h["at"] >= start:
            groups[key(h["contact_id"], h["sequence"], h["at"])]["handoffs"].append(h)
    for k, cost in costs:
        groups[group_of(k)]["costs"].append(cost)
    if not groups:
        groups["all"] = defaultdict(list)
    return [_figures(k, g, purchases, lifetime, entered) for k, g in sorted(groups.items())]


def revenue_by_source(conn: sa.Connection, *, since: timedelta, until: datetime) -> list[tuple[str, float]]:
    """The ``revenue`` of :func:`kpi_report` by source, for the sources with conversions within the window,
    summed in the database by the converting contacts' source attributes."""
    start = until - since
    e = events_t.c
    keys = _source_columns()
    revenue: dict[str, float] = defaultdict(float)
    for source, utm_source, value in conn.execute(
            sa.select(*keys, sa.func.sum(sa.func.coalesce(e.value, 0)))
            .select_from(events_t.outerjoin(contacts_t, contacts_t.c.id == e.contact_id))
            .where(e.type == "converted", e.at.between(start, until)).group_by(*keys)):
        revenue[_source_of(source, utm_source)] += value or 0
    return [(source, round(value, 2)) for source, value in sorted(revenue.items())]


def sources_revenue(groups: list[Kpi]) -> list[tuple[str, float]]:
    """:func:`revenue_by_source` from a report by source: the revenue of each group with conversions."""
    return [(g.group, g.figures["revenue"]) for g in groups if g.figures["conversions"]]


def top_objections(conn: sa.Connection, *, since: timedelta, until: datetime) -> list[dict]:
    """The ``top_objections`` of :func:`kpi_report` without ``by``, read from the handoffs lost within the window
    alone (in the report's order: by handoff time), for a page that shows them beside a report by group."""
    start = until - since
    h = handoffs_t.c
    lost = conn.execute(sa.select(h.objection).where(h.outcome == LOST, h.outcome_at.between(start, until),
                                                     h.at <= until).order_by(h.at, h.id)).scalars()
    return _shares([objection or NONE for objection in lost])


def _shares(objections: list[str]) -> list[dict]:
    """Each objection's count and share of them all, most first (ties in the order they came)."""
    counts = Counter(objections)
    total = sum(counts.values())
    return [{"objection": o, "count": n, "share": _ratio(n, total)} for o, n in counts.most_common()]


def _prices(config: Config) -> dict[str, tuple[float, float]]:
    """Each provider's (price_per_segment, price_per_email), 0 where not set."""
    out = {}
    for entries in config.settings.providers.values():
        for entry in entries:
            out[entry.get("name")] = (float(entry.get("price_per_segment") or 0), float(entry.get("price_per_email") or 0))
    return out


def _figures(group: str, g: dict[str, list], purchases: Counter[int], lifetime: dict[int, float],
             loyalty_starts: dict[int, datetime]) -> Kpi:
    """One group's figures; ``purchases`` and ``lifetime`` are each converting contact's conversions ever and
    the sum of their values."""
    leads, converted_leads, days = g["leads"] or 0, g["converted"] or 0, g["days"]
    handoffs = g["handoffs"]
    won = sum(1 for h in handoffs if h["outcome"] == WON)
    revenue = sum(e["value"] or 0 for e in g["conversions"])
    buyers = {e["contact_id"] for e in g["conversions"]}
    repeaters = [cid for cid in buyers if purchases[cid] >= 2]
    after_loyalty = sum(1 for e in g["conversions"]
                        if e["contact_id"] in loyalty_starts and e["at"] > loyalty_starts[e["contact_id"]])
    cost = 0.0
    for part in g["costs"]:
        cost += part
    kpi = Kpi(group)
    kpi.figures = {
        "leads": leads, "handoffs": len(handoffs), "conversions": len(g["conversions"]),
        "conversion_rate": _ratio(converted_leads, leads),
        "handoff_win_rate": _ratio(won, len(handoffs)),
        "median_days_to_convert": round(statistics.median(days), 2) if days else None,
        "revenue": round(revenue, 2), "revenue_per_lead": _ratio(revenue, leads, 2),
        "lead_quality": _ratio(won, len(handoffs)),
        "customer_lifetime_value": _ratio(sum(lifetime[c] for c in buyers), len(buyers), 2),
        "repeat_purchase_rate": _ratio(len(repeaters), len(buyers)),
        "repeat_customer_value": _ratio(sum(lifetime[c] for c in repeaters), len(repeaters), 2),
        "repeat_after_loyalty": after_loyalty,
        "cost": round(cost, 2), "return_on_cost": _ratio(revenue - cost, cost),
    }
    kpi.objections = _shares(g["objections"])
    return kpi
