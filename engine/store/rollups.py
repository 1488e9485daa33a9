"""The sequences' counts: how many messages of each touch and runs of each sequence are in each counted state.

On PostgreSQL the database keeps them (``sequence_counts``), so a funnel never counts the tables: triggers
(migration ``0021_rollups``) append a row for each move of a message or a run between counted states, in the
transaction that moved it, and a count is the sum of the rows moving into a state minus those moving out.
:func:`fold` replaces the rows with their sums (one row per count), in one statement: the rows it deletes are the
rows it sums, so a row a concurrent transaction commits meanwhile still counts once after it.

On SQLite the counts are read from the tables, through the indexes on (sequence, touch, status) and (sequence,
status): a trigger on ``messages`` there makes each of the worker's batched updates about twice as slow.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..models import FINAL_STATUSES, Enrollment, EnrollmentStatus, Message, SequenceCount
from . import buckets
from .driver import is_sqlite
from .tally import advance_snapshot

__all__ = ["MESSAGE", "RUN", "WAITING", "message_state", "run_state", "counts", "fold", "FoldSchedule"]

counts_t = SequenceCount.__table__
messages_t = Message.__table__
enrollments_t = Enrollment.__table__
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
    if is_sqlite(conn):
        return _counted(conn, kind, sequence)
    c = counts_t.c
    moves = []
    for state, sign in ((c.to_status, 1), (c.from_status, -1)):  # in one statement: a fold between would lose rows
        query = (sa.select(c.sequence, c.touch, state, sign * sa.func.sum(c.n))
                 .where(c.kind == kind, state.is_not(None)).group_by(c.sequence, c.touch, state))
        moves.append(query if sequence is None else query.where(c.sequence == sequence))
    out: Counter[tuple[str, str, str]] = Counter()
    for seq, touch, st, n in conn.execute(sa.union_all(*moves)):
        out[seq, touch, st] += int(n)
    return +out


_MOVES = ("SELECT kind, sequence, touch, to_status AS status, n FROM gone WHERE to_status IS NOT NULL "
          "UNION ALL SELECT kind, sequence, touch, from_status, -n FROM gone WHERE from_status IS NOT NULL")
#: the rows deleted are the rows summed, whatever commits meanwhile
_FOLD = ("WITH gone AS (DELETE FROM sequence_counts RETURNING kind, sequence, touch, from_status, to_status, n) "
         "INSERT INTO sequence_counts (kind, sequence, touch, from_status, to_status, n) "
         f"SELECT kind, sequence, touch, NULL, status, sum(n) FROM ({_MOVES}) AS moves "
         "GROUP BY kind, sequence, touch, status HAVING sum(n) <> 0")


def _counted(conn: sa.Connection, kind: str, sequence: str | None) -> Counter[tuple[str, str, str]]:
    """:func:`counts` read from the tables (SQLite)."""
    table = messages_t if kind == MESSAGE else enrollments_t
    touch = table.c.touch if kind == MESSAGE else sa.literal("")
    state = message_state if kind == MESSAGE else run_state
    # grouped by the columns alone: a constant among them would stop SQLite from reading the index in its order
    query = (sa.select(table.c.sequence, touch, table.c.status, sa.func.count())
             .group_by(table.c.sequence, *([touch] if kind == MESSAGE else []), table.c.status))
    if sequence is not None:
        query = query.where(table.c.sequence == sequence)
    out: Counter[tuple[str, str, str]] = Counter()
    for seq, t, status, n in conn.execute(query):
        out[seq, t, state(status)] += n
    return out


def fold(conn: sa.Connection) -> int:
    """Replace the rows of ``sequence_counts`` with one per count, in the database, in the caller's (write)
    transaction; how many rows the table holds after it (SQLite: none, nothing to fold)."""
    if is_sqlite(conn):
        return 0
    conn.execute(sa.text(_FOLD))
    return conn.execute(sa.select(sa.func.count()).select_from(counts_t)).scalar_one()


class FoldSchedule:
    """A worker's folding of ``sequence_counts`` and ``bucket_moves`` (:func:`engine.store.buckets.fold`), and its
    moving on of the log's stored counts (:func:`engine.store.tally.advance_snapshot`): at most once every
    ``every``."""

    def __init__(self, every: timedelta = timedelta(minutes=1)) -> None:
        self.every = every
        self.at: datetime | None = None

    def run(self, conn: sa.Connection, at: datetime) -> None:
        """Fold and move the log's counts on, in the caller's transaction, if the last time is ``every`` ago."""
        if self.at is not None and at - self.at < self.every:
            return
        self.at = at
        fold(conn)
        buckets.fold(conn)
        advance_snapshot(conn, at)
