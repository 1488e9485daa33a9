"""``followup simulate --assume clicked=0.15,replied=0.02,converted=0.04``: sampled behaviour for a simulation.

After each simulated tick, every message sent since the last look is given, with a seeded random draw per
message, a click (an ``engagements`` row, so ``only_if`` and event waits see it), a reply and a conversion
(recorded as events, so ``exit_on`` ends the run as it would). The same seed gives the same simulation.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa

from .clock import now
from .errors import InputError
from .events import record_event
from .models import Contact, Engagement, Message

__all__ = ["Behaviour", "parse_assume", "paths"]

KINDS = ("clicked", "opened", "replied", "converted")
SEED = 19


def parse_assume(text: str | None) -> dict[str, float]:
    """``clicked=0.15,replied=0.02``: a probability per message for each kind named."""
    if not text:
        return {}
    found = {}
    for part in text.split(","):
        name, _, value = part.strip().partition("=")
        try:
            p = float(value)
        except ValueError:
            p = -1.0
        if name not in KINDS or not 0 <= p <= 1:
            raise InputError(f"--assume {part.strip()!r}: write KIND=P with KIND one of {', '.join(KINDS)} and P "
                             "a probability from 0 to 1, e.g. --assume clicked=0.15,converted=0.04")
        found[name] = p
    return found


@dataclass
class Behaviour:
    """Draws what each newly sent message leads to; :meth:`after_tick` writes it to the simulation's database."""

    odds: dict[str, float]
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    seen: set[int] = field(default_factory=set)

    def after_tick(self, engine: sa.Engine, config) -> None:
        if not self.odds:
            return
        m = Message.__table__
        with engine.begin() as conn:
            sent = conn.execute(sa.select(m.c.id, m.c.contact_id, m.c.sequence, m.c.touch, m.c.channel)
                                .where(m.c.status.in_(("sent", "delivered"))).order_by(m.c.id)).all()
            for row in sent:
                if row.id in self.seen:
                    continue
                self.seen.add(row.id)
                for kind in ("clicked", "opened"):
                    if kind in self.odds and self.rng.random() < self.odds[kind] \
                            and (kind == "clicked" or row.channel == "email"):
                        conn.execute(sa.insert(Engagement.__table__).values(
                            at=now(), kind=kind, message_id=row.id, contact_id=row.contact_id,
                            sequence=row.sequence, touch=row.touch, channel=row.channel, source="simulate"))
                for kind in ("replied", "converted"):
                    if kind in self.odds and self.rng.random() < self.odds[kind]:
                        contact = dict(conn.execute(sa.select(Contact.__table__)
                                                    .where(Contact.__table__.c.id == row.contact_id)).mappings().one())
                        record_event(conn, config, contact, kind, source="simulate")
                        break


def paths(sent_by_contact: dict[int, list[str]]) -> list[tuple[tuple[str, ...], int]]:
    """Each path (the touches a contact was sent, in order) with how many contacts took it, most first."""
    return Counter(tuple(touches) for touches in sent_by_contact.values()).most_common()
