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
from .driver import is_sqlite

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


_MOVES = ("SELECT kind, sequence, touch, to_status AS status, n FROM {rows} WHERE to_status IS NOT NULL{upto} "
          "UNION ALL SELECT kind, sequence, touch, from_status, -n FROM {rows} WHERE from_status IS NOT NULL{upto}")
_SUMS = ("INSERT INTO sequence_counts (kind, sequence, touch, from_status, to_status, n) "
         "SELECT kind, sequence, touch, NULL, status, sum(n) FROM ({moves}) AS moves "
         "GROUP BY kind, sequence, touch, status HAVING sum(n) <> 0")
#: PostgreSQL: the rows deleted are the rows summed, whatever commits meanwhile
_FOLD_PG = ("WITH gone AS (DELETE FROM sequence_counts RETURNING kind, sequence, touch, from_status, to_status, n) "
            + _SUMS.format(moves=_MOVES.format(rows="gone", upto="")))
#: SQLite: the caller's write transaction holds the database's write lock, so the rows up to an id stay put
_FOLD_SQLITE = _SUMS.format(moves=_MOVES.format(rows="sequence_counts", upto=" AND id <= :upto"))


def fold(conn: sa.Connection) -> int:
    """Replace the rows of ``sequence_counts`` with one per count, in the database, in the caller's (write)
    transaction; how many rows the table holds after it."""
    if is_sqlite(conn):
        upto = conn.execute(sa.select(sa.func.max(counts_t.c.id))).scalar()
        if upto is not None:
            conn.execute(sa.text(_FOLD_SQLITE), {"upto": upto})
            conn.execute(sa.delete(counts_t).where(counts_t.c.id <= upto))
    else:
        conn.execute(sa.text(_FOLD_PG))
    return conn.execute(sa.select(sa.func.count()).select_from(counts_t)).scalar_one()


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
