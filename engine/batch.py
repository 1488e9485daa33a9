"""What one tick carries between its steps: the batch being sent, what its checks read, and the counts."""
from __future__ import annotations

import queue
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from providers.base import OutgoingMessage

import sqlalchemy as sa

from . import store
from .config import Config
from .control import HOLD, held_sequences
from .journey_checks import JourneyChecks
from .links import LinkBook
from .plan import Decision, SequencePlan, decide, plan_from_json
from .window import SendWindow, next_allowed

__all__ = ["TickReport", "BatchContext", "Batch", "Pipeline", "CAP_LOOKBACK"]

#: how far back the frequency cap looks
CAP_LOOKBACK = timedelta(days=2)


@dataclass
class TickReport:
    """Counts of what one tick did, by event."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, event: str, n: int = 1) -> None:  # only the tick's thread counts
        self.counts[event] = self.counts.get(event, 0) + n

    def add_events(self, changes: list) -> None:
        """Count each change stored by its log event."""
        for made in changes:
            self.add(made.event)

    @property
    def claimed(self) -> int:
        return self.counts.get("claimed", 0)


@dataclass
class BatchContext:
    """What the checks and the rendering of a batch read, in a few queries."""

    enrollments: dict[int, dict[str, Any]]
    contacts: dict[int, dict[str, Any]]
    offers: dict[tuple[str, str], dict[str, Any]]
    sent: dict[int, list[datetime]]  # each contact's recent sends, for the frequency cap
    paused: frozenset[str]  # providers paused for the whole cluster
    plans: dict[str, SequencePlan]  # by sequence version
    held: dict[str, str]  # sequences whose messages are held, with why
    links: LinkBook  # the short-link codes of the batch's messages: those given before, and those made now
    journey: JourneyChecks | None = None  # the event waits, only_if and A/B variants of the batch's touches
    opens: dict[tuple[str, SendWindow], datetime] = field(default_factory=dict)  # when each zone's window opens

    @classmethod
    def read(cls, conn: sa.Connection, rows: list[dict], config: Config, plans: dict[str, SequencePlan],
             at: datetime) -> "BatchContext":
        """Read what the claimed ``rows`` need at ``at``; ``plans`` caches the sequence versions across batches."""
        ens, cons = store.enrollments_with_contacts(conn, {r["enrollment_id"] for r in rows})
        for seq_hash in {e["sequence_hash"] for e in ens.values()} - set(plans):
            plans[seq_hash] = plan_from_json(store.definition(conn, seq_hash), config.holidays)
        ctx = cls(enrollments=ens, contacts=cons, offers=store.offers(conn),
                  sent=store.recent_sends(conn, cons, at - CAP_LOOKBACK),
                  paused=frozenset(store.active_pauses(conn, at)), plans=plans,
                  held=held_sequences(conn, config, {r["sequence"] for r in rows}),
                  links=LinkBook.load(conn, config.settings, [r["id"] for r in rows], at))
        ctx.journey = JourneyChecks(conn, rows, ctx)  # reads the facts and A/B winners only if a touch needs them
        return ctx

    def decide(self, row: dict, plan: SequencePlan, enrollment: dict, contact: dict, offer: dict | None,
               tz: ZoneInfo, at: datetime, settings: Any) -> Decision:
        """What becomes of a claimed message now: :func:`engine.plan.decide`, then its journey checks."""
        window = plan.send_window or settings.send_window
        opens = self.opens.get((tz.key, window)) or self.opens.setdefault((tz.key, window),
                                                                          next_allowed(at, tz, window))
        touch, held = plan.touches[row["touch_index"]], self.held.get(row["sequence"])
        decision = decide(now=at, message=row, enrollment=enrollment, contact=contact, offer=offer, tz=tz,
                          window=window, cap=plan.frequency_cap or settings.frequency_cap,
                          sent_times=self.sent.setdefault(row["contact_id"], []), opens=opens, held=held, hold=HOLD,
                          kind=touch.kind)
        return self.journey.check(decision, touch, row, enrollment, contact, at, held)  # waits and only_if

    def hash_of(self) -> dict[int, str]:
        """The sequence version of each enrollment."""
        return {i: e["sequence_hash"] for i, e in self.enrollments.items()}


@dataclass
class Batch:
    """A batch between its ``sending`` commit and its last record."""

    to_send: list[tuple[dict, OutgoingMessage]]
    token: str
    ctx: BatchContext
    lease_until: datetime
    freed: bool = False  # its sends are done or only waiting between tries: its pipeline slot is free


@dataclass
class Pipeline:
    """The batches of one tick that are not recorded yet, and their outcomes as the send threads hand them back."""

    results: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    busy: int = 0  # batches whose sends are under way
    open: int = 0  # batches not yet recorded to the end
    writes: deque = field(default_factory=deque)  # the futures of records not read yet (Store.behind), oldest first

    def written(self, report: TickReport, *, wait: bool = False) -> None:
        """Count the records that are done, oldest first (with ``wait``, all of them); raise where one failed."""
        while self.writes and (wait or self.writes[0].done()):
            report.add_events(self.writes.popleft().result())
