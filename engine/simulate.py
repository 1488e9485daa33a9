"""``followup simulate``: the real decision code on a simulated clock, and nothing written to the database.

The contacts (by tag from the configured database, from a CSV, or the sample contact) are copied into a
throwaway SQLite database in a temporary folder, enrolled at ``start``, and the engine's own
:meth:`~engine.dispatch.Dispatcher.tick` runs on a :class:`~engine.clock.SimulatedClock` that jumps from
one due message to the next, sending to memory providers. What the delivery log of that database
records (sent, deferred and why, skipped and why) is the answer. The configured database is only read.

The frequency cap counts the simulated sequence's messages only: what the contacts were sent by other
sequences is not copied.
"""
from __future__ import annotations

import logging
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from providers.memory import MemoryProvider

from .assume import Behaviour
from .clock import SimulatedClock, to_utc
from .config import Config
from .contacts import ImportReport, import_csv, import_summary, parse_row, upsert_contacts
from .db import make_engine, reading, upgrade
from .enrollment import enroll
from .errors import InputError
from .models import Contact, DeliveryLog, Message, MessageStatus
from .preview import segment_price
from .reports import contact_labels

__all__ = ["SimEvent", "SimContact", "Simulation", "simulate", "contacts_by_tag"]

contacts_t = Contact.__table__
log_t = DeliveryLog.__table__
messages_t = Message.__table__
#: the delivery-log events a reader of the simulation needs (``sending`` and ``scheduled`` only restate them)
SHOWN = ("deferred", "sent", "skipped", "cancelled", "failed")
#: a bound on the ticks of one simulation, far above what 5 touches per contact need
MAX_TICKS = 100_000


@dataclass
class SimEvent:
    """One thing that happened to one touch: ``event`` is sent, deferred, skipped, cancelled or failed."""

    at: datetime  # in the contact's timezone
    touch: str
    channel: str
    event: str
    reason: str = ""
    segments: int | None = None


@dataclass
class SimContact:
    id: int  # the contact's id in the configured database (when read from it)
    label: str
    timezone: str
    events: list[SimEvent] = field(default_factory=list)
    #: touches still waiting when the simulated period ended: (touch, due at, in the contact's timezone)
    pending: list[tuple[str, datetime]] = field(default_factory=list)
    #: why the contact was not enrolled at all
    refused: str | None = None


@dataclass
class Simulation:
    sequence: str
    start: datetime
    end: datetime
    contacts: list[SimContact]
    messages: int = 0
    sms: int = 0
    emails: int = 0
    segments: int = 0
    #: SMS segments times the first SMS provider's price_per_segment (None: no price configured)
    cost: float | None = None
    skipped: int = 0


def contacts_by_tag(engine: sa.Engine, tag: str) -> list[dict]:
    """Every contact with ``tag`` in the configured database, read only."""
    pattern = "%;" + tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ";%"
    with reading(engine) as conn:
        return [dict(r) for r in conn.execute(sa.select(contacts_t).where(contacts_t.c.tags.like(pattern, escape="\\"))
                                              .order_by(contacts_t.c.id)).mappings()]


def _load_contacts(engine: sa.Engine, config: Config, rows: list[dict] | None, csv_file: Path | None,
                   sample: dict) -> list[int]:
    if csv_file is not None:
        report = import_csv(engine, csv_file, config.settings.default_region)
        if report.errors:
            raise InputError(f"{csv_file}: {import_summary(report)}")
        return report.contact_ids
    if rows:
        with engine.begin() as conn:
            conn.execute(sa.insert(contacts_t), rows)
        return [r["id"] for r in rows]
    report = ImportReport()
    with engine.begin() as conn:
        raw = {k: sample[k] for k in ("first_name", "last_name", "phone", "email", "timezone", "locale") if sample.get(k)}
        upsert_contacts(conn, [parse_row({**raw, **sample.get("attrs", {})}, config.settings.default_region)], report)
    return report.contact_ids


def simulate(config: Config, sequence: str, start: datetime, days: int, *, rows: list[dict] | None = None,
             csv_file: Path | None = None, sample: dict | None = None, assume: dict[str, float] | None = None,
             copies: int = 1) -> Simulation:
    """Run ``sequence`` for ``days`` from ``start`` for the given contacts (``rows`` read from the database,
    a ``csv_file``, else the ``sample`` contact) in a throwaway database; return what happened.

    ``assume`` samples what contacts do with each message sent (:mod:`engine.assume`); ``copies`` enrolls that
    many copies of the sample contact, so the paths are counted over a crowd."""
    from .dispatch import Dispatcher

    config.sequence(sequence)
    end = start + timedelta(days=days)
    with tempfile.TemporaryDirectory(prefix="followup-simulate-") as folder:
        url = f"sqlite:///{Path(folder) / 'simulate.db'}"
        sim_config = replace(config, settings=replace(config.settings, database_url=url))
        upgrade(url)
        engine = make_engine(url)
        try:
            ids = _load_contacts(engine, sim_config, rows, csv_file, sample or {})
            if copies > 1 and not rows and not csv_file:
                ids += _copies(engine, ids[0], copies - 1)
            behaviour = Behaviour(assume or {})
            providers = {channel: [MemoryProvider(f"simulated-{channel}", {"type": "memory"})]
                         for channel in ("sms", "email")}
            with SimulatedClock(start) as clock, _quiet("followup.delivery"):
                dispatcher = Dispatcher(sim_config, providers, engine=engine, worker_id="simulate")
                try:
                    with engine.begin() as conn:
                        report = enroll(conn, sim_config, sequence, ids)
                    _run(dispatcher, engine, clock, end, behaviour, sim_config)
                finally:
                    dispatcher.close()
            return _collect(config, engine, sequence, start, end, dict(report.refused + report.finished))
        finally:
            engine.dispose()


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """The simulated delivery log is the answer, not the worker's log: its JSON lines are not echoed."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _copies(engine: sa.Engine, contact_id: int, n: int) -> list[int]:
    """``n`` copies of the sample contact, each with its own phone and email (a crowd for ``--assume``)."""
    with engine.begin() as conn:
        base = dict(conn.execute(sa.select(contacts_t).where(contacts_t.c.id == contact_id)).mappings().one())
        base.pop("id")
        rows = [{**base, "phone": f"+98912{i:07d}" if base.get("phone") else None,
                 "email": f"sample{i}@example.com" if base.get("email") else None} for i in range(1, n + 1)]
        conn.execute(sa.insert(contacts_t), rows)
        return [r[0] for r in conn.execute(sa.select(contacts_t.c.id).where(contacts_t.c.id != contact_id))]


def _run(dispatcher, engine: sa.Engine, clock: SimulatedClock, end: datetime, behaviour: Behaviour,
         config: Config) -> None:
    """Tick, then jump the clock to the next due message, until none is due before ``end``."""
    for _ in range(MAX_TICKS):
        dispatcher.tick()
        behaviour.after_tick(engine, config)
        with reading(engine) as conn:
            due = to_utc(conn.execute(sa.select(sa.func.min(messages_t.c.next_attempt_at))
                                      .where(messages_t.c.status == MessageStatus.SCHEDULED.value)).scalar())
        if due is None or due >= end:
            return
        clock.move_to(max(due, clock.at))
    raise RuntimeError(f"the simulation did not settle in {MAX_TICKS:,} ticks")


def _collect(config: Config, engine: sa.Engine, sequence: str, start: datetime, end: datetime,
             refused: dict[int, str]) -> Simulation:
    sim = Simulation(sequence, start, end, [])
    price = segment_price(config)
    with reading(engine) as conn:
        people = {r["id"]: dict(r) for r in conn.execute(sa.select(contacts_t.c.id, contacts_t.c.timezone)).mappings()}
        labels = contact_labels(conn, set(people))
        segments = {r.id: r.segments for r in conn.execute(sa.select(messages_t.c.id, messages_t.c.segments))}
        by_contact: dict[int, SimContact] = {}
        for cid, person in people.items():
            tz = person["timezone"] or config.settings.timezone.key
            by_contact[cid] = SimContact(cid, labels[cid]["text"], tz, refused=refused.get(cid))
        for row in conn.execute(sa.select(log_t).where(log_t.c.event.in_(SHOWN)).order_by(log_t.c.id)).mappings():
            person = by_contact[row["contact_id"]]
            tz = ZoneInfo(person.timezone)
            seg = segments.get(row["message_id"]) if row["event"] == "sent" and row["channel"] == "sms" else None
            person.events.append(SimEvent(to_utc(row["at"]).astimezone(tz), row["touch"], row["channel"],
                                          row["event"], row["reason"] or "", seg))
            if row["event"] == "sent":
                sim.messages += 1
                sim.sms += row["channel"] == "sms"
                sim.emails += row["channel"] == "email"
                sim.segments += seg or 0
            elif row["event"] == "skipped":
                sim.skipped += 1
        for row in conn.execute(sa.select(messages_t.c.contact_id, messages_t.c.touch, messages_t.c.next_attempt_at)
                                .where(messages_t.c.status == MessageStatus.SCHEDULED.value)
                                .order_by(messages_t.c.id)).mappings():
            person = by_contact[row["contact_id"]]
            person.pending.append((row["touch"], to_utc(row["next_attempt_at"]).astimezone(ZoneInfo(person.timezone))))
    sim.cost = price * sim.segments if price is not None else None
    sim.contacts = [by_contact[cid] for cid in sorted(by_contact)]
    return sim
