"""The journey checks of a claimed batch: event waits, ``only_if`` and the A/B variant, after :func:`engine.plan.decide`.

The dispatcher makes one :class:`JourneyChecks` per claimed batch, in the claim's transaction. It reads the
batch's facts in one query (:func:`engine.facts.read_facts`) and the A/B winners in another, and only when a
touch of the batch needs them; a batch of plain touches reads nothing more.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .clock import to_utc
from .conditions import failed_fact, holds
from .facts import Facts, read_facts
from .store.journeys import ab_winners
from .plan import Decision, TouchPlan
from .variants import assign
from .waits import wait_decision

if TYPE_CHECKING:
    from .batch import BatchContext

__all__ = ["JourneyChecks"]


class JourneyChecks:
    """What the batch's journey touches need, read once; :meth:`check` and :meth:`variant` per message."""

    def __init__(self, conn: sa.Connection, rows: list[dict], ctx: "BatchContext"):
        touches = [ctx.plans[ctx.enrollments[r["enrollment_id"]]["sequence_hash"]].touches[r["touch_index"]]
                   for r in rows]
        self.facts: Facts | None = None
        if any(t.only_if is not None or t.wait is not None for t in touches):
            self.facts = read_facts(conn, {r["enrollment_id"] for r in rows})
        self._rendered: dict[tuple[int, str], TouchPlan] = {}  # each touch with each variant's template, made once
        self.winners: dict[tuple[str, str], str] = {}
        if any(t.variants for t in touches):
            self.winners = ab_winners(conn)

    def check(self, decision: Decision, touch: TouchPlan, row: dict, enrollment: dict, contact: dict,
              at: datetime, held: str | None = None) -> Decision:
        """``decision`` (send or deferred by the window) as the touch's wait and ``only_if`` leave it;
        ``held``: why the sequence holds its messages (paused), if it does."""
        if self.facts is None or decision.action not in ("send", "deferred") or held:
            return decision  # a held sequence's messages wait for it, not for an event
        facts = self.facts.of(enrollment, contact)
        if touch.wait is not None:
            waited = wait_decision(touch.wait, to_utc(row["due_at"]) or at, at, facts)
            if waited.action == "wait":
                return Decision("deferred", waited.reason, waited.until)
            if waited.action == "skipped":
                return Decision("skipped", waited.reason)
        if decision.action == "send" and touch.only_if is not None and not holds(touch.only_if, facts):
            return Decision("skipped", f"not sent: {failed_fact(touch.only_if, facts)}")
        return decision

    def variant(self, touch: TouchPlan, row: dict) -> tuple[Any, str | None]:
        """The touch to render (with its variant's template) and the variant's name (None: no variants)."""
        if not touch.variants:
            return touch, None
        by_name = {v.name: v for v in touch.variants}
        chosen = by_name.get(row.get("variant") or "") or by_name.get(self.winners.get((row["sequence"], touch.name), ""))
        chosen = chosen or assign(touch.variants, row["contact_id"], row["sequence"], touch.name)
        key = (id(touch), chosen.name)
        if key not in self._rendered:
            self._rendered[key] = replace(touch, template=chosen.template)
        return self._rendered[key], chosen.name
