"""The sequences' counts kept by the database (``sequence_counts``): how many messages of each touch and runs
of each sequence are in each counted state, read without counting the tables.

Triggers (migration ``0021_rollups``) append a row for each move of a message or a run between counted states,
in the transaction that moved it: a count is the sum of the rows moving into a state minus those moving out.
:func:`fold` replaces the rows with their sums (one row per count), in one transaction: rows a concurrent
transaction has not committed yet are neither deleted nor summed, so they still count once after it.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..models import FINAL_STATUSES, EnrollmentStatus, SequenceCount

__all__ = ["MESSAGE", "RUN", "WAITING", "message_state", "run_state", "counts", "fold", "FoldSchedule"]

counts_t = SequenceCount.__table__
MESSAGE, RUN = "message", "run"
#: the counted state of a message not final yet (pending, scheduled, claimed, sending)
WAITING = "waiting"
OTHER = "other"


def message_state(status: str) -> str:
    """A message's counted state (the triggers' CASE): its status once final, else ``waiting``."""
    return status if status in FINAL_STATUSES else WAITING


def run_state(status: str) -> str:
    """A run's counted state: ``converted`` or ``other``."""
    return status if status == EnrollmentStatus.CONVERTED.value else OTHER


def counts(conn: sa.Connection, kind: str, sequence: str | None = None) -> Counter[tuple[str, str, str]]:
    """``{(sequence, touch, state): how many}`` of ``kind`` (:data:`MESSAGE` or :data:`RUN`, whose touch is
    ""), of one sequence or all; states with none left out."""
    c = counts_t.c
    out: Counter[tuple[str, str, str]] = Counter()
    for state, sign in ((c.to_status, 1), (c.from_status, -1)):
        query = (sa.select(c.sequence, c.touch, state, sa.func.sum(c.n)).where(c.kind == kind, state.is_not(None))
                 .group_by(c.sequence, c.touch, state))
        if sequence is not None:
            query = query.where(c.sequence == sequence)
        for seq, touch, st, n in conn.execute(query):
            out[seq, touch, st] += sign * int(n)
    return +out


def fold(conn: sa.Connection) -> int:
    """Replace the rows of ``sequence_counts`` with one per count (in the caller's transaction); how many rows
    were folded."""
    c = counts_t.c
    rows = conn.execute(sa.delete(counts_t).returning(c.kind, c.sequence, c.touch, c.from_status, c.to_status,
                                                      c.n)).all()
    net: Counter[tuple[str, str, str, str]] = Counter()
    for kind, sequence, touch, was, state, n in rows:
        if state is not None:
            net[kind, sequence, touch, state] += n
        if was is not None:
            net[kind, sequence, touch, was] -= n
    folded = [{"kind": kind, "sequence": sequence, "touch": touch, "from_status": None, "to_status": state, "n": n}
              for (kind, sequence, touch, state), n in net.items() if n]
    if folded:
        conn.execute(sa.insert(counts_t), folded)
    return len(rows)


class FoldSchedule:
    """A worker's folding of ``sequence_counts``: at most once every ``every``."""

    def __init__(self, every: timedelta = timedelta(minutes=1)) -> None:
        self.every = every
        self.at: datetime | None = None

    def run(self, conn: sa.Connection, at: datetime) -> None:
        """Fold in the caller's transaction if the last fold is ``every`` ago."""
        if self.at is not None and at - self.at < self.every:
            return
        self.at = at
        fold(conn)
