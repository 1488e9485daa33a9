"""``make chaos``: N rounds of random SIGKILLs over 3 workers on PostgreSQL, then the history audited.

A killed worker's replacement starts at once or, a third of the time, a moment later (while the dead
worker's leases are still held); every fifth round also SIGTERMs a worker and times its exit. Prints
messages, duplicates at the provider, lost, unknown, the time to recover (from the last kill to the
last message final), the SIGTERMs honoured (exited within ``--drain`` seconds + 10) and the ticks the
watchdog reported slow. Uses FOLLOWUP_BENCH_POSTGRES_URL or FOLLOWUP_TEST_POSTGRES_URL; the
run happens in a database of its own beside that one (``<name>_chaos``), which it empties.
Run: ``.venv/bin/python -m bench.chaos [ROUNDS] [--contacts N] [--seed S] [--drain SECONDS]``. Exits 1 on a
duplicate, a lost message or a SIGTERM not honoured, 2 when it cannot run.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from .faults import chaos_run, kill_world, reset_postgres


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rounds", nargs="?", type=int, default=20, help="kills (default 20)")
    parser.add_argument("--contacts", type=int, default=200, help="contacts enrolled, 3 touches each (default 200)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--drain", type=int, default=5, help="the workers' worker.drain_seconds (default 5)")
    args = parser.parse_args()
    url = os.environ.get("FOLLOWUP_BENCH_POSTGRES_URL") or os.environ.get("FOLLOWUP_TEST_POSTGRES_URL")
    if not url:
        print("chaos: set FOLLOWUP_BENCH_POSTGRES_URL (or FOLLOWUP_TEST_POSTGRES_URL) to a PostgreSQL URL",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="followup-chaos-") as tmp:
        world = kill_world(Path(tmp), reset_postgres(url, "chaos"), worker={"drain_seconds": args.drain})
        waves = max(5, args.rounds)
        audit, t = chaos_run(world, workers=args.workers, contacts=args.contacts, waves=waves,
                             rounds=args.rounds, seed=args.seed, wave_gap=0.8)
        world.engine.dispose()
    ok = audit.duplicates == 0 and audit.lost == 0 and not audit.problems and t["sigterms_honoured"] == t["sigterms"]
    codes = ", ".join(f"exit {k}: {v}" for k, v in sorted(t["term_codes"].items()))
    print(f"chaos[postgresql, {args.workers} workers, seed {args.seed}]: {t['kills']} kills, "
          f"messages {audit.messages}, duplicates at the provider {audit.duplicates}, lost {audit.lost}, "
          f"unknown {audit.unknown}, taken over after a kill {sum(t['takeovers'].values())} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(t['takeovers'].items())) or 'none'}), "
          f"time to recover {t['recover_seconds']:.1f}s (last kill → last message final), "
          f"started a moment after a kill {t['started_late']}, SIGTERM honoured {t['sigterms_honoured']}/"
          f"{t['sigterms']} within {t['term_limit']:.0f}s ({codes or 'none'}), slow ticks logged {t['slow_ticks']}, "
          f"total {t['seconds']:.0f}s — {'met' if ok else 'NOT met'}")
    for problem in audit.problems[:20]:
        print("  " + problem)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
