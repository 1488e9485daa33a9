"""Scale-out (bench 8): two ``followup worker`` processes on PostgreSQL vs one, 50 ms fake, concurrency 20.

Throughput = accepted sends / seconds from the first to the last at the fake. Then the double-claim
checks: every message has exactly one ``sending`` delivery-log row per attempt, and the fake
accepted every localid once.

    python -m bench.scaleout [--quick] [--postgres URL]
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from .common import (FakeSms, count_status, info, kavenegar, postgres_bench_args, result,
                    setup_world, start_worker, terminate, wait_for)


def run(fake: FakeSms, url: str, root: Path, workers: int, n: int) -> dict:
    config, engine = setup_world(root, url, sms=[kavenegar(fake)], contacts=n, concurrency=20)
    engine.dispose()
    fake.reset()
    procs = [start_worker(root / "config", root / f"worker{i}.log", interval=1) for i in range(workers)]
    done = wait_for(lambda: fake.stats()["unique"] >= n, timeout=120, step=0.25)
    rss = [terminate(p)[1] for p in procs]
    stats = fake.stats(times=True)
    sent, span = fake.span(stats)
    with engine.connect() as conn:
        bad = conn.exec_driver_sql(
            "SELECT m.id, m.attempt, count(l.id) FROM messages m LEFT JOIN delivery_log l "
            "ON l.message_id = m.id AND l.event = 'sending' WHERE m.touch_index = 0 "
            "GROUP BY m.id, m.attempt HAVING count(l.id) <> m.attempt").all()
        by_worker = dict(conn.exec_driver_sql(
            "SELECT worker, count(*) FROM delivery_log WHERE event = 'sending' GROUP BY worker").all())
    statuses = count_status(engine)
    engine.dispose()
    return {"done": done, "rate": (sent - 1) / span, "sent": sent, "span": span, "dup": stats["duplicates"],
            "bad_log": len(bad), "by_worker": sorted(by_worker.values()), "statuses": statuses, "rss": rss}


def main() -> int:
    wanted = postgres_bench_args(__doc__, "scale-out", quick=1200, full=3000)
    if wanted is None:
        return 0
    postgres, n = wanted
    with tempfile.TemporaryDirectory() as tmp, FakeSms(delay=0.05) as fake:
        # one worker before and after the two: the machine's speed drifts, and the pair brackets it
        one = run(fake, postgres, Path(tmp) / "one", 1, n)
        two = run(fake, postgres, Path(tmp) / "two", 2, n)
        again = run(fake, postgres, Path(tmp) / "again", 1, n)
    single = (one["rate"] + again["rate"]) / 2
    ratio = two["rate"] / single
    for label, r in (("1 worker", one), ("2 workers", two), ("1 worker again", again)):
        info(f"{label}: {r['sent']} accepted in {r['span']:.1f}s = {r['rate']:.0f} msg/s; sending rows per worker "
             f"{r['by_worker']}; all sent: {r['done']}; peak RSS {', '.join(f'{x:.0f}' for x in r['rss'])} MB")
    result("scale-out[postgresql,2x C=20] throughput", f"{ratio:.2f}x one worker ({two['rate']:.0f} vs "
           f"{single:.0f} msg/s, the mean of the runs before and after; ceiling 2x{20 / 0.05:.0f})", ">= 1.7x",
           ratio >= 1.7)
    claimed_twice = sum(r["dup"] + r["bad_log"] for r in (one, two, again))
    result("scale-out[postgresql] claimed twice", f"{claimed_twice} (localids accepted twice: {two['dup']}; "
           f"messages whose 'sending' rows != attempts: {two['bad_log']})", "0", claimed_twice == 0 and two["done"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
