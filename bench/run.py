"""``make bench``: every benchmark, one line each (name, figure, target, met or not).

Benchmarks are not tests: this exits non-zero only when a bench could not run.
PostgreSQL runs too when FOLLOWUP_BENCH_POSTGRES_URL (or FOLLOWUP_TEST_POSTGRES_URL) is set.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    cores = os.cpu_count()
    mem = ""
    try:
        kb = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    import sqlalchemy

    return (f"machine: {cores} cores{mem}, {platform.machine()}, Python {platform.python_version()}, "
            f"SQLAlchemy {sqlalchemy.__version__}, SQLite {__import__('sqlite3').sqlite_version}")


def main() -> int:
    print(machine(), flush=True)
    pg = os.environ.get("FOLLOWUP_BENCH_POSTGRES_URL") or os.environ.get("FOLLOWUP_TEST_POSTGRES_URL")
    failed = 0
    for script, extra in (("tick.py", ["--postgres", pg] if pg else []),):
        code = subprocess.call([sys.executable, str(HERE / script), *extra])
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
