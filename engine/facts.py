"""What the contacts of a claimed batch did, read in ONE query for the whole batch (never one per message).

The dispatcher reads facts only for a batch in which some touch has ``only_if`` or waits for an event
(:mod:`engine.conditions`, :mod:`engine.waits`). For each enrollment it learns, per touch, the first
moment a person clicked or opened it (``engagements``, bots left out), when it was delivered, and when the
contact first replied after enrolling.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa

from .clock import to_utc
from .store.journeys import engagement_facts

__all__ = ["Facts", "EnrollmentFacts", "read_facts"]


@dataclass
class EnrollmentFacts:
    """One enrollment's view for :func:`engine.conditions.holds`: what it did, and its contact's data."""

    first: dict[tuple[str, str], datetime] = field(default_factory=dict)
    contact: dict = field(default_factory=dict)
    enrollment: dict = field(default_factory=dict)

    def when(self, name: str, touch: str | None) -> datetime | None:
        """The first moment ``name`` (clicked, opened, delivered, replied) happened to ``touch`` (any: to any)."""
        if touch in (None, "any"):
            times = [at for (n, _t), at in self.first.items() if n == name]
            return min(times) if times else None
        return self.first.get((name, touch))

    def did(self, name: str, touch: str | None) -> bool:
        return self.when(name, touch) is not None

    def tags(self) -> set[str]:
        raw = self.contact.get("tags") or ""  # stored as ;a;b;
        return {t for t in raw.split(";") if t} if isinstance(raw, str) else set(raw)

    def attr(self, name: str) -> Any:
        return (self.contact.get("attrs") or {}).get(name)

    def event_data(self, name: str) -> Any:
        data = self.enrollment.get("event_data") or {}
        if isinstance(data, str):
            data = json.loads(data)
        return data.get(name)


@dataclass
class Facts:
    """Every enrollment of a batch: ``facts.of(enrollment, contact)``."""

    by_enrollment: dict[int, dict[tuple[str, str], datetime]] = field(default_factory=dict)

    def of(self, enrollment: dict, contact: dict) -> EnrollmentFacts:
        return EnrollmentFacts(self.by_enrollment.get(enrollment["id"], {}), contact, enrollment)


def read_facts(conn: sa.Connection, enrollment_ids: Iterable[int]) -> Facts:
    """The facts of ``enrollment_ids``, read in one statement (:func:`engine.store.journeys.engagement_facts`)."""
    facts = Facts()
    for enrollment_id, touch, kind, at in engagement_facts(conn, enrollment_ids):
        facts.by_enrollment.setdefault(enrollment_id, {})[(kind, touch)] = to_utc(at)
    return facts
