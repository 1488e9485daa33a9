"""Shared rate: three ``followup worker`` processes on PostgreSQL against a panel that allows 100 sends/s.

The provider's ``rate: 100/s`` is the panel's limit, and the workers share it through ``rate_buckets``:
three together stay at it (target <= 1.05x the limit, no 429 from the panel), and one alone still
reaches it (target >= 0.95x). Rate = accepted sends / seconds from the first to the last at the fake;
the peak is the most accepted in any one second. The fake panel (``bench.fakesms --limit``) is a
token bucket of 100 a second holding 20, answering 429 when empty; 50 ms a send, concurrency 20, so
one worker could send 400/s without the limit.

    python -m bench.ratelimit [--quick] [--postgres URL]
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from .common import (FakeSms, info, kavenegar, postgres_bench_args, result, setup_world,
                    start_worker, terminate, wait_for)
from .faults import own_database

LIMIT = 100  # sends a second, the panel's and the provider's ``rate``
BURST = 20  # what the panel's bucket holds


def peak_second(times: list[float]) -> int:
    """The most sends in any one-second window."""
    best, lo = 0, 0
    for hi, at in enumerate(times):
        while at - times[lo] >= 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def run(fake: FakeSms, url: str, root: Path, workers: int, n: int) -> dict:
    _, engine = setup_world(root, url, sms=[kavenegar(fake, rate=f"{LIMIT}/s")], contacts=n, concurrency=20)
    engine.dispose()
    fake.reset()
    procs = [start_worker(root / "config", root / f"worker{i}.log", interval=1) for i in range(workers)]
    done = wait_for(lambda: fake.stats()["unique"] >= n, timeout=3 * n / LIMIT + 60, step=0.25)
    for proc in procs:
        terminate(proc)
    stats = fake.stats(times=True)
    sent, span = fake.span(stats)
    times = sorted(t for v in stats["times"].values() for t in v)
    return {"done": done, "rate": (sent - 1) / span, "sent": sent, "span": span, "f429": stats["f429"],
            "peak": peak_second(times)}


def main() -> int:
    wanted = postgres_bench_args(__doc__, "ratelimit", quick=1000, full=2000)
    if wanted is None:
        return 0
    postgres, n = wanted
    url = own_database(postgres, "bench_ratelimit")  # its schema is dropped for every run
    with tempfile.TemporaryDirectory() as tmp, FakeSms(delay=0.05, limit=LIMIT, burst=BURST) as fake:
        three = run(fake, url, Path(tmp) / "three", 3, n)
        one = run(fake, url, Path(tmp) / "one", 1, n)
    for label, r in (("3 workers", three), ("1 worker", one)):
        info(f"{label}: {r['sent']} accepted in {r['span']:.1f}s = {r['rate']:.1f} msg/s, at most {r['peak']} in "
             f"one second; {r['f429']} answered 429; all sent: {r['done']}")
    shared = three["rate"] / LIMIT
    result("ratelimit[postgresql,3 workers] rate", f"{shared:.3f}x the panel's {LIMIT}/s ({three['rate']:.1f} msg/s, "
           f"peak second {three['peak']}), {three['f429']} answered 429", "<= 1.05x, no 429",
           shared <= 1.05 and three["f429"] == 0 and three["done"])
    alone = one["rate"] / LIMIT
    result("ratelimit[postgresql,1 worker] rate", f"{alone:.3f}x the panel's {LIMIT}/s ({one['rate']:.1f} msg/s), "
           f"{one['f429']} answered 429", ">= 0.95x, no 429", alone >= 0.95 and one["f429"] == 0 and one["done"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
