"""Memory vs backlog (bench 4): peak RSS of a worker process with 10,000 and 1,000,000 enrollments.

The database (SQLite) gets N active enrollments, each with its first touch scheduled next year, plus
DUE enrollments whose first touch is due now (with their follow-up touches pending). A real
``followup worker --once`` process (memory provider) then recovers, ticks through the due ones and
exits; its peak RSS comes from ``wait4``.

    python -m bench.memory [--quick] [--large 1000000]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from .common import FOLLOWUP, MEMORY, SEQ, count_status, env_for, info, reset_database, result, wait_rss, write_config

DUE = 1000
SERIES = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT :n) SELECT x FROM c"


def fill(url: str, cfg: Path, future: int) -> None:
    from engine.catalog import sync_catalog
    from engine.clock import now
    from engine.config import load_config
    from engine.db import make_engine

    reset_database(url)
    config = load_config(cfg)
    engine = make_engine(url)
    seq = config.sequence(SEQ)
    at = now()
    total = future + DUE
    params = {"n": total, "due_n": DUE, "at": at, "due": at - timedelta(seconds=5), "later": at + timedelta(days=365),
              "seq": SEQ, "hash": seq.hash}
    with engine.begin() as conn:
        sync_catalog(conn, config)
        conn.execute(sa.text(
            "INSERT INTO contacts (id, phone, first_name, last_name, tags, attrs, created_at, updated_at) "
            "SELECT x, '+98912' || printf('%07d', x), 'نام' || x, '', ';bench;', '{}', :at, :at "
            f"FROM ({SERIES}) s"), params)
        conn.execute(sa.text(
            "INSERT INTO enrollments (id, contact_id, sequence, sequence_hash, status, enrolled_at) "
            f"SELECT x, x, :seq, :hash, 'active', :at FROM ({SERIES}) s"), params)
        conn.execute(sa.text(
            "INSERT INTO messages (enrollment_id, contact_id, sequence, touch_index, touch, channel, urgent, status, "
            "due_at, next_attempt_at, attempt, polls, updated_at) "
            "SELECT x, x, :seq, 0, 't0', 'sms', false, 'scheduled', "
            "CASE WHEN x <= :due_n THEN :due ELSE :later END, CASE WHEN x <= :due_n THEN :due ELSE :later END, "
            f"0, 0, :at FROM ({SERIES}) s"), params)
        for index in (1, 2):
            conn.execute(sa.text(
                "INSERT INTO messages (enrollment_id, contact_id, sequence, touch_index, touch, channel, urgent, "
                "status, attempt, polls, updated_at) "
                f"SELECT x, x, :seq, {index}, 't{index}', 'sms', false, 'pending', 0, 0, :at FROM ({SERIES}) s"),
                {**params, "n": DUE})
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    engine.dispose()


def worker_rss(url: str, cfg: Path) -> tuple[float, float, dict]:
    from engine.db import make_engine

    start = time.perf_counter()
    log = cfg.parent / "worker.log"
    with log.open("w") as fh:  # the worker echoes every log row: never a pipe nobody reads
        proc = subprocess.Popen([FOLLOWUP, "worker", "--once"], env=env_for(cfg), stdout=fh, stderr=fh)
        code, rss = wait_rss(proc, timeout=600)
    if code != 0:
        raise RuntimeError(f"worker exited {code}: {log.read_text()[-2000:]}")
    engine = make_engine(url)
    statuses = count_status(engine)
    engine.dispose()
    return rss, time.perf_counter() - start, statuses


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="100,000 instead of 1,000,000 for the large backlog")
    p.add_argument("--large", type=int, default=None)
    p.add_argument("--small", type=int, default=10_000)
    args = p.parse_args()
    large = args.large or (100_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/mem.db"
        cfg = write_config(Path(tmp), url, sms=MEMORY)
        out = {}
        for n in (args.small, large):
            t0 = time.perf_counter()
            fill(url, cfg, n)
            filled = time.perf_counter() - t0
            rss, took, statuses = worker_rss(url, cfg)
            out[n] = rss
            info(f"{n:,} future enrollments + {DUE} due (filled in {filled:.0f}s): worker --once peak RSS "
                 f"{rss:.1f} MB, {took:.1f}s, messages now {statuses}")
        small, big = out[args.small], out[large]
        ratio = big / small
        label = f"{large // 1000}k" if large < 1_000_000 else f"{large / 1e6:g}M"
        result("memory-vs-backlog[sqlite] peak RSS", f"{small:.1f} MB with {args.small // 1000}k, {big:.1f} MB with "
               f"{label} enrollments", "< 150 MB", max(small, big) < 150)
        result("memory-vs-backlog[sqlite] ratio", f"{ratio:.2f}x ({label} vs {args.small // 1000}k)", "<= 1.3x",
               ratio <= 1.3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
