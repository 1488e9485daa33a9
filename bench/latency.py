"""Latency (bench 6): delay from a message's due time to its arrival at the (fake) provider.

A real ``followup worker --interval 1`` process on SQLite against the 50 ms fake; N contacts enrolled
with first touches due at staggered times (every 50 ms over ~N/20 s), far below the rate limit.
Delay = the fake's receipt time − the message's due time. Target: p50 and p99 ≤ interval + 1 s.

    python -m bench.latency [--quick] [-n 300]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from .common import (FakeSms, info, kavenegar, message_ids, pct, result, setup_world, start_worker,
                    terminate, wait_for)

INTERVAL = 1.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("-n", type=int, default=None)
    args = p.parse_args()
    n = args.n or (200 if args.quick else 400)
    spacing = 0.05
    from engine.clock import now
    from engine.installation import client_reference, reference_prefix

    with tempfile.TemporaryDirectory() as tmp, FakeSms(delay=0.05) as fake:
        tmp = Path(tmp)
        url = f"sqlite:///{tmp}/lat.db"
        config, engine = setup_world(tmp, url, sms=[kavenegar(fake)], contacts=n)
        ids = message_ids(engine)
        first = now() + timedelta(seconds=4)  # after the worker has started
        due = {mid: first + timedelta(seconds=i * spacing) for i, mid in enumerate(ids)}
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE messages SET due_at = :d, next_attempt_at = :d WHERE id = :i"),
                         [{"d": d, "i": mid} for mid, d in due.items()])
            prefix = reference_prefix(conn)
        engine.dispose()
        fake.reset()
        worker = start_worker(tmp / "config", tmp / "worker.log", interval=INTERVAL)
        done = wait_for(lambda: fake.stats()["unique"] >= n, timeout=n * spacing + 60, step=0.5)
        terminate(worker)
        stats = fake.stats(times=True)
    received = {mid: stats["times"].get(client_reference(prefix, mid)) for mid in due}  # the fake sees references
    delays = [min(received[mid]) - d.timestamp() for mid, d in due.items() if received[mid]]
    p50, p99 = pct(delays, 0.5), pct(delays, 0.99)
    limit = INTERVAL + 1.0
    info(f"{len(delays)}/{n} messages due every {spacing * 1000:.0f} ms over {n * spacing:.0f}s; worker --interval "
         f"{INTERVAL:g}; delay min {min(delays):.2f}s max {max(delays):.2f}s; all sent: {done}")
    result("latency[sqlite] p50", f"{p50:.2f}s from due to send", f"<= {limit:g}s", p50 <= limit)
    result("latency[sqlite] p99", f"{p99:.2f}s from due to send", f"<= {limit:g}s", p99 <= limit and done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
