"""Bench 9: our worker vs the usual alternative (one Celery task per touch with ``eta``, on Redis).

Same contacts (N), same 3-touch sequence (touch 0 due now, the others +1 d and +2 d), same template,
same fake API (50 ms), same concurrency (Celery ``--pool threads -c C``; our ``worker.concurrency`` C).
Throughput = touch-0 sends / seconds from the first to the last at the fake; peak RSS from wait4.
Then each worker is SIGKILLed mid-run (after N/3 sends) and restarted: localids the fake accepted
twice are duplicates, localids never accepted are lost. Celery uses Redis db 13 (only it is flushed).

    python -m bench.celery_vs [--quick] [-c 50] [-n 2000]
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .common import ROOT, FakeSms, info, kavenegar, phone, result, setup_world, start_worker, wait_for, wait_rss

REDIS_DB = 13
BROKER = f"redis://127.0.0.1:6379/{REDIS_DB}"
CELERY = str(Path(sys.executable).with_name("celery"))


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30) -> float:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return wait_rss(proc, timeout)[1]
    except TimeoutError:
        proc.kill()
        return wait_rss(proc, 30)[1]


# -- Celery ------------------------------------------------------------------------------------
def celery_env(fake: FakeSms) -> dict:
    env = dict(os.environ)
    env.update(BENCH_BROKER=BROKER, BENCH_SEND_URL=fake.send_url)
    return env


def celery_enqueue(fake: FakeSms, n: int) -> float:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()
    os.environ.update(BENCH_BROKER=BROKER, BENCH_SEND_URL=fake.send_url)
    from . import celery_app

    start = time.perf_counter()
    at = datetime.now(timezone.utc)
    with celery_app.app.producer_or_acquire() as producer:
        for i in range(1, n + 1):
            for t in range(3):
                celery_app.send_touch.apply_async(args=[f"c{i}-t{t}", phone(i), f"نام{i}", f"t{t}"],
                                                  eta=at + timedelta(days=t), producer=producer)
    return time.perf_counter() - start


def celery_start(fake: FakeSms, c: int, log: Path) -> subprocess.Popen:
    fh = log.open("a")
    return subprocess.Popen([CELERY, "-A", "bench.celery_app", "worker", "--pool", "threads", "-c", str(c), "--loglevel",
                             "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                            cwd=str(ROOT), env=celery_env(fake), stdout=fh, stderr=fh)


def t0_unique(fake: FakeSms) -> int:
    return fake.stats()["unique"]


# -- ours --------------------------------------------------------------------------------------
def ours_prepare(fake: FakeSms, root: Path, n: int, c: int) -> Path:
    config, engine = setup_world(root, f"sqlite:///{root}/ours.db", sms=[kavenegar(fake)], contacts=n, concurrency=c)
    engine.dispose()
    return root / "config"


def throughput(fake: FakeSms, start, n: int, timeout: float = 180) -> dict:
    fake.reset()
    proc = start()
    done = wait_for(lambda: t0_unique(fake) >= n, timeout, step=0.25)
    rss = stop(proc)
    stats = fake.stats(times=True)
    sent, span = fake.span(stats)
    return {"rate": (sent - 1) / span, "sent": sent, "span": span, "rss": rss, "done": done, "dup": stats["duplicates"]}


def kill_run(fake: FakeSms, start, n: int, settle: float) -> dict:
    fake.reset()
    proc = start()
    wait_for(lambda: t0_unique(fake) >= n // 3, 120, step=0.05)
    killed_at = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    wait_rss(proc, 30)
    at_kill = fake.stats()["unique"]
    proc = start()
    done = wait_for(lambda: t0_unique(fake) >= n and time.monotonic() - killed_at >= settle, 180, step=0.25)
    stop(proc)
    stats = fake.stats()
    return {"dup": stats["duplicates"], "lost": n - stats["unique"], "at_kill": at_kill, "done": done,
            "accepted": stats["accepted"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("-c", type=int, default=50)
    p.add_argument("-n", type=int, default=None)
    args = p.parse_args()
    n, c = args.n or (1000 if args.quick else 2000), args.c
    with tempfile.TemporaryDirectory() as tmp, FakeSms(delay=0.05) as fake:
        tmp = Path(tmp)
        # throughput and memory
        took = celery_enqueue(fake, n)
        info(f"celery: enqueued {3 * n} tasks ({n} due now, {2 * n} with eta +1d/+2d) in {took:.1f}s")
        cel = throughput(fake, lambda: celery_start(fake, c, tmp / "celery.log"), n)
        cfg = ours_prepare(fake, tmp / "ours", n, c)
        ours = throughput(fake, lambda: start_worker(cfg, tmp / "ours.log", interval=1), n)
        # a worker killed mid-run, then restarted
        celery_enqueue(fake, n)
        cel_k = kill_run(fake, lambda: celery_start(fake, c, tmp / "celery.log"), n, settle=45)
        cfg = ours_prepare(fake, tmp / "ours-kill", n, c)
        ours_k = kill_run(fake, lambda: start_worker(cfg, tmp / "ours-kill.log", interval=1), n, settle=5)
        import redis

        redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()
    for label, r, k in (("celery", cel, cel_k), ("ours", ours, ours_k)):
        info(f"{label}: {r['sent']} touch-0 sends in {r['span']:.1f}s = {r['rate']:.0f} msg/s, peak RSS "
             f"{r['rss']:.0f} MB; killed after {k['at_kill']} sends and restarted: {k['dup']} duplicates, "
             f"{k['lost']} lost, {k['accepted']} accepted (done: {k['done']})")
    ratio = ours["rate"] / cel["rate"]
    result(f"vs-celery[C={c}] throughput", f"{ratio:.2f}x Celery ({ours['rate']:.0f} vs {cel['rate']:.0f} msg/s)",
           ">= 1.5x", ratio >= 1.5)
    result(f"vs-celery[C={c}] peak RSS", f"ours {ours['rss']:.0f} MB vs Celery {cel['rss']:.0f} MB", "lower",
           ours["rss"] < cel["rss"])
    result(f"vs-celery[C={c}] duplicates after SIGKILL", f"ours {ours_k['dup']} vs Celery {cel_k['dup']} "
           f"(lost: ours {ours_k['lost']}, Celery {cel_k['lost']})", "0 where Celery has some",
           ours_k["dup"] == 0 and ours_k["lost"] == 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
