"""``make bench``: every benchmark, one line each (name, figure, target, met or not).

Benchmarks are not tests: this exits non-zero only when a bench could not run.
PostgreSQL runs too when FOLLOWUP_BENCH_POSTGRES_URL (or FOLLOWUP_TEST_POSTGRES_URL) is set.

    .venv/bin/python -m bench [--quick] [--only NAME ...] [--profile DIR]

``--profile DIR`` writes pyinstrument profiles of the throughput, faults and bookkeeping runs
(profiling slows them: figures from a profiled run are not the benchmark's figures).
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from .common import python_speed

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    cores = os.cpu_count()
    mem = ""
    try:
        kb = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    import sqlalchemy

    versions = [f"SQLAlchemy {sqlalchemy.__version__}", f"SQLite {__import__('sqlite3').sqlite_version}"]
    for mod, label in (("requests", "requests"), ("celery", "Celery"), ("redis", "redis-py"), ("psycopg", "psycopg")):
        try:
            versions.append(f"{label} {__import__(mod).__version__}")
        except ImportError:
            pass
    try:
        load = open("/proc/loadavg").read().split()[0]
        versions.append(f"load avg {load}")
    except OSError:
        pass
    versions.append(f"speed {python_speed():.0f}M loop steps/s")
    return f"machine: {cores} cores{mem}, {platform.machine()}, Python {platform.python_version()}, " + ", ".join(versions)


def benches(pg: str | None, quick: bool, profile: str | None) -> list[tuple[str, list[str]]]:
    q = ["--quick"] if quick else []
    pgargs = ["--postgres", pg] if pg else ["--postgres", ""]
    prof = ["--profile", profile] if profile else []
    return [
        ("throughput", ["throughput", *q, *pgargs, *prof]),
        ("bookkeeping", ["bookkeeping", *q, *pgargs, *prof]),
        ("tick", ["tick", *(["--postgres", pg] if pg else [])]),
        ("memory", ["memory", *q]),
        # 1M rows take ~5 min at ~3,700 rows/s on this machine: make bench measures 200k (say so)
        ("import", ["importer", "--rows", "50000" if quick else "200000"]),
        ("latency", ["latency", *q]),
        ("faults", ["throughput", "--faults", *q, *prof]),
        ("scaleout", ["scaleout", *q, *pgargs]),
        ("ratelimit", ["ratelimit", *q, *pgargs]),
        ("redirect", ["redirect", *q]),
        ("events", ["events", *q, *pgargs]),
        ("celery", ["celery_vs", *q]),
        ("outbox", ["outbox", *q, *pgargs]),
        ("reports", ["reports", *q, *pgargs]),
        ("plain_ab", ["plain_ab", *(["-n", "2000", "--rounds", "3"] if quick else [])]),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, one run each (about 5 minutes)")
    parser.add_argument("--only", nargs="*", help="run only these benches (throughput, bookkeeping, tick, memory, "
                                                  "import, latency, faults, scaleout, ratelimit, redirect, events, "
                                                  "celery, outbox, reports, plain_ab)")
    parser.add_argument("--profile", help="write pyinstrument profiles into this folder")
    args = parser.parse_args()
    print(machine(), flush=True)
    pg = os.environ.get("FOLLOWUP_BENCH_POSTGRES_URL") or os.environ.get("FOLLOWUP_TEST_POSTGRES_URL")
    failed = []
    start = time.monotonic()
    for name, argv in benches(pg, args.quick, args.profile):
        if args.only and name not in args.only:
            continue
        code = subprocess.call([sys.executable, "-m", f"bench.{argv[0]}", *argv[1:]], cwd=ROOT)
        if code != 0:
            failed.append(name)
            print(f"{name}: could not run (exit {code})", flush=True)
    print(f"total: {time.monotonic() - start:.0f}s" + (f"; could not run: {', '.join(failed)}" if failed else ""),
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
