"""Handing a lead from a sequence to a sales rep.

Each time a contact does something that scores (a click or open, a reply, a conversion), its score is
kept again (:mod:`engine.scoring`) and every active enrollment of it in a sequence with a ``handoff:`` rule
(:mod:`engine.handoff_rules`) is checked. When a condition holds:

1. the enrollment ends as ``handed_off`` and its pending marketing touches are cancelled with the reason;
2. a rep of ``sales.team`` is chosen: by the contact attribute the rule names (the reps whose ``match``
   has the lead's value; none matching: the reps without a ``match``, else all), by weighted round robin
   among those (the rep with the fewest handoffs for their weight; ties go to the first listed);
3. a ``handoffs`` row is written (one per enrollment: a handoff never fires twice), the rep is told
   through the engine's own providers (:mod:`engine.sales_notify`), and a ``handed_off`` webhook event
   (sequence, rep, score, fired_by) is queued (:func:`engine.outbox.emit`).

All of it in the caller's transaction, with the fact that caused it.
"""
from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .clock import now
from .config import Config
from .ending import end_enrollments
from .handoff_rules import Condition, HandoffRule
from .models import Contact, Enrollment, EnrollmentStatus, Handoff
from .outbox import emit
from .sales_settings import Rep, SalesSettings
from .scoring import add_facts

__all__ = ["HandedOff", "on_facts", "choose_rep", "fired"]

contacts = Contact.__table__
enrollments = Enrollment.__table__
handoffs = Handoff.__table__


@dataclass(frozen=True)
class HandedOff:
    handoff_id: int
    sequence: str
    rep: str
    fired_by: str


def fired(rule: HandoffRule, sequence: str, kind: str, fact_sequence: str | None, touch: str | None,
          score: float) -> Condition | None:
    """The first condition of ``rule`` that this fact (and the score after it) meets, or None."""
    for condition in rule.conditions:
        if condition.kind == "score":
            if score >= condition.score:
                return condition
        elif condition.kind == kind:
            if kind == "replied" and fact_sequence in (None, sequence):
                return condition
            if fact_sequence == sequence and condition.touch in (None, touch):
                return condition
    return None


def choose_rep(conn: sa.Connection, sales: SalesSettings, rule: HandoffRule, contact: dict) -> Rep:
    """The rep a lead goes to (see the module's docstring)."""
    team = list(sales.team)
    if rule.assign_by:
        value = (contact.get("attrs") or {}).get(rule.assign_by)
        matching = [r for r in team if value is not None and r.match.get(rule.assign_by) == str(value)]
        team = matching or [r for r in team if not r.match] or team
    counts = dict(conn.execute(sa.select(handoffs.c.rep, sa.func.count()).where(
        handoffs.c.rep.in_([r.name for r in team])).group_by(handoffs.c.rep)).all())
    return min(team, key=lambda r: (counts.get(r.name, 0) / r.weight, team.index(r)))


def on_facts(conn: sa.Connection, config: Config, found: Iterable[Mapping[str, Any]]) -> list[HandedOff]:
    """Keep the scores after facts and hand leads off where a rule says so; what was handed off.

    Each fact is a mapping of its ``contact_id`` (None: not a contact's, skipped), ``kind``, ``at`` (when it
    happened) and the ``sequence`` and ``touch`` it was about (may be absent), in the order recorded."""
    found = [f for f in found if f["contact_id"] is not None]
    if not found:
        return []
    scores = add_facts(conn, config.settings.scoring, [(f["contact_id"], f["kind"], f["at"]) for f in found])
    ruled = {name for name, seq in config.sequences.items() if seq.handoff is not None}
    if not ruled or not config.settings.sales.team:
        return []
    active: dict[int, list[dict]] = defaultdict(list)  # each contact's runs in a sequence with a rule
    for run in conn.execute(sa.select(enrollments).where(
            enrollments.c.contact_id.in_({f["contact_id"] for f in found}),
            enrollments.c.status == EnrollmentStatus.ACTIVE.value, enrollments.c.sequence.in_(ruled))
            .order_by(enrollments.c.id)).mappings():
        active[run["contact_id"]].append(dict(run))
    done, ended = [], set()  # a later fact of the batch finds a run it handed off ended
    for fact, score in zip(found, scores):
        for enrollment in active[fact["contact_id"]]:
            if enrollment["id"] in ended:
                continue
            rule = config.sequences[enrollment["sequence"]].handoff
            condition = fired(rule, enrollment["sequence"], fact["kind"], fact.get("sequence"), fact.get("touch"),
                              score)
            if condition is not None and (handed := _hand_off(conn, config, enrollment, rule, condition, score)):
                ended.add(enrollment["id"])
                done.append(handed)
    return done


def _hand_off(conn: sa.Connection, config: Config, enrollment: dict, rule: HandoffRule, condition: Condition,
              score: float) -> HandedOff | None:
    from .sales_notify import notify

    contact = dict(conn.execute(sa.select(contacts).where(contacts.c.id == enrollment["contact_id"])).mappings().one())
    rep = choose_rep(conn, config.settings.sales, rule, contact)
    why = condition.describe()
    reason = f"handed off to {rep.name}: {why}"
    stamp = now()
    # taken here first: of two facts racing, only the one that ends the enrollment hands it off
    if not conn.execute(sa.update(enrollments).where(
            enrollments.c.id == enrollment["id"], enrollments.c.status == EnrollmentStatus.ACTIVE.value).values(
            status=EnrollmentStatus.HANDED_OFF.value, ended_reason=reason, ended_at=stamp)).rowcount:
        return None
    end_enrollments(conn, [enrollment], EnrollmentStatus.HANDED_OFF.value, reason)
    handoff_id = conn.execute(sa.insert(handoffs).values(
        contact_id=contact["id"], enrollment_id=enrollment["id"], sequence=enrollment["sequence"], rep=rep.name,
        fired_by=why, score=score, at=stamp, token_nonce=secrets.token_hex(16),
        token_expires_at=stamp + config.settings.sales.page_expires_after).returning(handoffs.c.id)).scalar_one()
    handoff = dict(conn.execute(sa.select(handoffs).where(handoffs.c.id == handoff_id)).mappings().one())
    notify(conn, config, handoff, rep, contact)
    emit(conn, config, "handed_off", contact["id"],
         {"sequence": enrollment["sequence"], "rep": rep.name, "score": score, "fired_by": why})
    return HandedOff(handoff_id, enrollment["sequence"], rep.name, why)
