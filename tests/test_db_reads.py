"""Reads run at once (``engine.db.read_at_once``, the KPI page's and ``followup kpi``'s reads): on SQLite and on
PostgreSQL each read has a connection of its own and they run together."""
from __future__ import annotations

import threading

import sqlalchemy as sa

from engine.db import make_engine, read_at_once
from engine.models import Contact


def test_the_reads_run_together_each_on_a_connection_of_its_own(db_url):
    engine = make_engine(db_url)
    together = threading.Barrier(3, timeout=30)  # passed only while all three reads are under way at once

    def read(conn: sa.Connection) -> tuple[int, int]:
        count = conn.execute(sa.select(sa.func.count()).select_from(Contact.__table__)).scalar_one()
        together.wait()
        return count, id(conn.connection.dbapi_connection)

    results = read_at_once(engine, [read, read, read])
    assert [count for count, _ in results] == [0, 0, 0]
    assert len({connection for _, connection in results}) == 3

