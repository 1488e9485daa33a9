"""Tick cost vs backlog: claiming 500 due messages with 10,000 and with 1,000,000 future ones.

A tick's queries that look at the whole table: recovery's search for expired leases, then the claim.
Prints the ratio (must stay under 1.5) and whether both plans use their partial index.
Run: ``make bench`` or ``.venv/bin/python -m bench.tick [--postgres URL]``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta

import sqlalchemy as sa

from engine.clock import now
from engine.db import make_engine
from engine.models import Message
from engine.store import claim_sql, in_flight_query
from engine.store.driver import execute

DUE = 500
messages = Message.__table__


def fill(engine: sa.Engine, future: int) -> None:
    """Insert ``future`` messages due next year and DUE due now, straight in SQL (no ORM)."""
    at = now()
    later = at + timedelta(days=365)
    total = future + DUE
    with engine.begin() as conn:
        for table in ("delivery_log", "messages", "enrollments", "contacts"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
        if engine.dialect.name == "postgresql":
            series = "SELECT g AS x FROM generate_series(1, :n) g"
        else:
            series = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT :n) SELECT x FROM c"
        conn.execute(sa.text("INSERT INTO contacts (id, first_name, last_name, tags, attrs, created_at, updated_at) "
                             "VALUES (1, 'bench', '', '', '{}', :at, :at)"), {"at": at})
        conn.execute(sa.text("INSERT INTO enrollments (id, contact_id, sequence, sequence_hash, status, enrolled_at) "
                             f"SELECT x, 1, 'bench', 'h', 'completed', :at FROM ({series}) s"), {"n": total, "at": at})
        conn.execute(sa.text(
            "INSERT INTO messages (enrollment_id, contact_id, sequence, touch_index, touch, channel, urgent, status, "
            "due_at, next_attempt_at, attempt, polls, updated_at) "
            "SELECT x, 1, 'bench', 0, 't0', 'sms', false, 'scheduled', "
            f"CASE WHEN x <= :due_n THEN :due ELSE :later END, CASE WHEN x <= :due_n THEN :due ELSE :later END, "
            f"0, 0, :at FROM ({series}) s"),
            {"n": total, "due_n": DUE, "due": at - timedelta(minutes=1), "later": later, "at": at})
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def claim_once(engine: sa.Engine) -> float:
    """Seconds to look for expired leases and claim DUE messages (select + lease update); undone afterwards."""
    start = time.perf_counter()
    with engine.begin() as conn:
        assert not conn.execute(in_flight_query(engine, now())).all()
        ids = [r[0] for r in execute(conn, claim_sql(engine), {"at": now(), "limit": DUE})]
        conn.execute(sa.update(messages).where(messages.c.id.in_(ids)).values(status="claimed", lease_owner="bench"))
    elapsed = time.perf_counter() - start
    assert len(ids) == DUE, f"claimed {len(ids)}, expected {DUE}"
    with engine.begin() as conn:
        conn.execute(sa.update(messages).where(messages.c.id.in_(ids)).values(status="scheduled", lease_owner=None))
    return elapsed


def plan(engine: sa.Engine) -> tuple[str, str]:
    """The query plans of recovery's search and of the claim."""
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    recovery = str(in_flight_query(engine, now()).compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.begin() as conn:
        plans = [conn.exec_driver_sql(prefix + recovery).all(),
                 execute(conn, prefix + claim_sql(engine), {"at": now(), "limit": DUE})]
    return tuple(" | ".join(str(r[-1]) for r in rows) for rows in plans)  # type: ignore[return-value]


def run(small_url: str, large_url: str, rounds: int = 9) -> dict:
    """Median claim time on a database with 10k future messages and on one with 1M, measured in turns.

    Two databases measured round by round: the machine's speed drifts by 2x within minutes here, and
    one measured after the other compared two different machines.
    """
    from engine.db import upgrade

    engines = []
    for url, future in ((small_url, 10_000), (large_url, 1_000_000)):
        upgrade(url)
        engine = make_engine(url)
        fill(engine, future)
        engines.append(engine)
    samples: list[list[float]] = [[], []]
    for _ in range(rounds):
        for i, engine in enumerate(engines):
            samples[i].append(claim_once(engine))
    small, large = (statistics.median(x) for x in samples)
    recovery, claim = plan(engines[1])
    for engine in engines:
        engine.dispose()
    return {"small": small, "large": large, "ratio": large / small, "plan": f"recovery: {recovery}; claim: {claim}",
            "indexed": "ix_messages_lease" in recovery and "ix_messages_due" in claim}


def second_postgres(url: str) -> str:
    """A second database beside ``url`` for the 1M case (created, or emptied by fill)."""
    base = sa.engine.make_url(url)
    name = f"{base.database}_tick1m"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def drop_postgres(url: str) -> None:
    base = sa.engine.make_url(url)
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{base.database}"')
    admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", help="also run on this PostgreSQL URL (it will be emptied; the 1M case "
                                           "uses a database beside it, <name>_tick1m, created if missing)")
    args = parser.parse_args()
    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        targets.append(("sqlite", f"sqlite:///{tmp}/bench.db", f"sqlite:///{tmp}/bench-1m.db"))
        if args.postgres:
            targets.append(("postgresql", args.postgres, second_postgres(args.postgres)))
        for name, small_url, large_url in targets:
            r = run(small_url, large_url)
            met = "met" if r["ratio"] < 1.5 and r["indexed"] else "NOT met"
            print(f"tick-cost-vs-backlog[{name}]: recovery's search and a claim of {DUE} with 10k future {r['small'] * 1000:.2f} ms, "
                  f"with 1M future {r['large'] * 1000:.2f} ms, ratio {r['ratio']:.2f} (target < 1.5, index used: "
                  f"{r['indexed']}) {met}")
            print(f"  plan: {r['plan']}")
        if args.postgres:  # not left behind: a million rows
            drop_postgres(targets[-1][2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
