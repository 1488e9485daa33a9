"""The lead score: points per fact a contact did, each halving every ``scoring.half_life``.

The facts are a person's clicks and opens (:mod:`engine.engagement`; a bot's are not counted) and the
contact's ``replied`` and ``converted`` events (:mod:`engine.events`). A fact of ``p`` points that happened
``age`` ago counts ``p * 0.5 ** (age / half_life)``. Facts after ``at`` are not counted.

The score is kept on the contact (``score`` as of ``score_at``). As every fact decays at the same rate, the
kept score at a later time is ``score * 0.5 ** (elapsed / half_life)``, and a new fact adds its own decayed
points to that (:func:`add_facts`): a batch of facts reads and writes each of its contacts once, however many
facts came before.
A change of ``scoring:`` in the settings counts from the next fact on; earlier facts keep the points they
earned, decaying at the current half-life.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from .clock import now, to_utc
from .models import Contact, ContactEvent, Engagement
from .sales_settings import ScoringSettings

__all__ = ["Fact", "facts", "score_of", "decayed", "add_facts", "kept_score"]

contacts = Contact.__table__
engagements_t = Engagement.__table__
events_t = ContactEvent.__table__
EVENT_FACTS = ("replied", "converted")
ENGAGEMENT_FACTS = ("clicked", "opened")


@dataclass(frozen=True)
class Fact:
    """One thing a contact did that scores: its kind, when, and the sequence and touch it was about."""

    kind: str
    at: datetime
    sequence: str | None = None
    touch: str | None = None


def facts(conn: sa.Connection, contact_id: int, at: datetime | None = None) -> list[Fact]:
    """The scoring facts of one contact up to ``at`` (default now), oldest first."""
    at = at or now()
    found = [Fact(k, to_utc(t), s, tc) for k, t, s, tc in conn.execute(
        sa.select(engagements_t.c.kind, engagements_t.c.at, engagements_t.c.sequence, engagements_t.c.touch)
        .where(engagements_t.c.contact_id == contact_id, engagements_t.c.kind.in_(ENGAGEMENT_FACTS),
               engagements_t.c.at <= at))]
    found += [Fact(k, to_utc(t), s, tc) for k, t, s, tc in conn.execute(
        sa.select(events_t.c.type, events_t.c.at, events_t.c.sequence, events_t.c.touch)
        .where(events_t.c.contact_id == contact_id, events_t.c.type.in_(EVENT_FACTS), events_t.c.at <= at))]
    return sorted(found, key=lambda f: f.at)


def decayed(points: float, since: datetime, at: datetime, rules: ScoringSettings) -> float:
    """``points`` earned at ``since``, as they count at ``at``."""
    age = max((at - since).total_seconds(), 0.0)
    return points * 0.5 ** (age / rules.half_life.total_seconds())


def score_of(found: list[Fact], rules: ScoringSettings, at: datetime) -> float:
    """The score of these facts at ``at``, rounded to 0.01."""
    return round(sum(decayed(rules.points.get(f.kind, 0.0), f.at, at, rules) for f in found if f.at <= at), 2)


def add_facts(conn: sa.Connection, rules: ScoringSettings, found: Sequence[tuple[int, str, datetime]],
              at: datetime | None = None) -> list[float]:
    """Keep the scores of the contacts of ``found``: (contact_id, kind, when it happened) of each fact, in the
    order they were recorded. Return each fact's contact's score right after it, as of ``at`` (default now),
    rounded to 0.01 (0 for a contact that is gone).

    The contacts' rows are read once, locked in id order (two writers of the same contacts never deadlock;
    two facts of one contact recorded at once both count), and each written once."""
    at = at or now()
    ids = sorted({contact_id for contact_id, _, _ in found})
    if not ids:
        return []
    kept = {row["id"]: kept_score(row, rules, at, rounded=False) for row in conn.execute(
        sa.select(contacts.c.id, contacts.c.score, contacts.c.score_at).where(contacts.c.id.in_(ids))
        .order_by(contacts.c.id).with_for_update()).mappings()}
    after = []
    for contact_id, kind, fact_at in found:
        if contact_id not in kept:
            after.append(0.0)
            continue
        kept[contact_id] += decayed(rules.points.get(kind, 0.0), to_utc(fact_at), at, rules)
        after.append(round(kept[contact_id], 2))
    if kept:
        conn.execute(sa.update(contacts).where(contacts.c.id == sa.bindparam("contact_id"))
                     .values(score=sa.bindparam("kept"), score_at=at),
                     [{"contact_id": contact_id, "kept": score} for contact_id, score in kept.items()])
    return after


def kept_score(contact: Mapping, rules: ScoringSettings, at: datetime | None = None, *, rounded: bool = True) -> float:
    """The score kept on a contact row, decayed to ``at`` (0 when none was ever kept), rounded to 0.01."""
    if contact.get("score") is None or contact.get("score_at") is None:
        return 0.0
    score = decayed(contact["score"], to_utc(contact["score_at"]), at or now(), rules)
    return round(score, 2) if rounded else score
