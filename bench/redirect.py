"""Short-link redirects: ``GET /l/{code}`` against ``/healthz`` of the same ``followup serve``, while a worker sends.

A real ``followup serve`` and a real ``followup worker`` on one SQLite database (the worker sending to the 50 ms
fake panel throughout). A closed loop of C=50 clients (asyncio, keep-alive, :mod:`bench.loadclient`, beside the
server on this machine) asks ``/healthz`` for D seconds, then follows stored short links for D seconds. Then, at
half the redirect rate offered at a steady pace, the latency of each redirect, and of ``/healthz`` at the same pace
(the machine's own tail, for comparison). At the end every redirect's click must be in the database.

Targets (issue 18): the redirect rate at least 80% of ``/healthz``'s; at half that rate, p99 under 50 ms; no
click lost.

    python -m bench.redirect [--quick]
"""
from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from .common import (FakeSms, info, kavenegar, pct, result, setup_world, start_serve, start_worker,  # noqa: E402
                    terminate)
from .loadclient import Connection, Pool

CLIENTS = 50
BROWSER = {"User-Agent": "Mozilla/5.0 bench"}


async def closed_loop(base: str, paths: list[str], seconds: float) -> tuple[int, int]:
    """C clients asking one after another for ``seconds``, each on its keep-alive connection: (answers, answers
    with the expected status)."""
    done = good = 0
    end = time.perf_counter() + seconds

    async def one(k: int) -> None:
        nonlocal done, good
        i = k
        async with Connection(base, BROWSER) as conn:
            while time.perf_counter() < end:
                status, _ = await conn.get(paths[i % len(paths)])
                done += 1
                good += status in (200, 302)
                i += CLIENTS
    await asyncio.gather(*(one(k) for k in range(CLIENTS)))
    return done, good


async def paced(base: str, paths: list[str], rate: float, seconds: float) -> list[float]:
    """Redirects offered at ``rate`` per second, evenly spaced, on a :class:`~bench.loadclient.Pool`: each one's
    latency in ms."""
    latencies: list[float] = []
    async with Pool(base, BROWSER) as pool:
        async def one(path: str) -> None:
            started = time.perf_counter()
            await pool.use(lambda conn: conn.get(path))
            latencies.append((time.perf_counter() - started) * 1000)

        tasks, start, n = [], time.perf_counter(), int(rate * seconds)
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(paths[i % len(paths)])))
        await asyncio.gather(*tasks)
    return latencies


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    seconds = 5.0 if args.quick else 15.0
    from engine.clock import now
    from engine.models import Engagement, Link, Message

    with tempfile.TemporaryDirectory() as tmp, FakeSms(delay=0.05) as fake:
        tmp = Path(tmp)
        url = f"sqlite:///{tmp}/redirect.db"
        config, engine = setup_world(tmp, url, sms=[kavenegar(fake)], contacts=20_000)
        with engine.begin() as conn:
            # one link per message, each clicked by its own contact, as a campaign's clicks come
            ids = conn.execute(sa.select(Message.__table__.c.id, Message.__table__.c.contact_id).limit(5000)).all()
            at = now()
            conn.execute(sa.insert(Link.__table__), [
                {"code": secrets.token_urlsafe(7), "message_id": i, "contact_id": c, "sequence": "bench",
                 "touch": "t0", "channel": "sms", "url": "https://shop.example/coats",
                 "target": "https://shop.example/coats?utm_source=followup", "created_at": at - timedelta(hours=1),
                 "expires_at": at + timedelta(days=90)} for i, c in ids])
            codes = [r[0] for r in conn.execute(sa.select(Link.__table__.c.code))]
        cfg = config.dir
        worker = start_worker(cfg, tmp / "worker.log")
        serve, base = start_serve(cfg, tmp)
        try:
            health, _ = asyncio.run(closed_loop(base, ["/healthz"], seconds))
            redirects, ok = asyncio.run(closed_loop(base, [f"/l/{c}" for c in codes], seconds))
            health_rate, redirect_rate = health / seconds, redirects / seconds
            latencies = asyncio.run(paced(base, [f"/l/{c}" for c in codes], redirect_rate / 2, seconds))
            # the control: /healthz at the same pace, for how much of the tail is the machine's
            control = asyncio.run(paced(base, ["/healthz"], redirect_rate / 2, seconds))
        finally:
            terminate(serve)
            terminate(worker)
        with engine.connect() as conn:
            clicks = conn.execute(sa.select(sa.func.count()).select_from(Engagement.__table__)).scalar_one()
            sent = conn.execute(sa.select(sa.func.count()).select_from(Message.__table__)
                                .where(Message.__table__.c.status == "sent")).scalar_one()
        info(f"the worker sent {sent:,} messages meanwhile")
        answered = ok + len(latencies)
        result("redirect rate", f"{redirect_rate:,.0f}/s vs /healthz {health_rate:,.0f}/s "
                                f"({redirect_rate / health_rate:.0%}), C={CLIENTS}, SQLite, worker sending",
               "≥ 80% of /healthz", redirect_rate >= 0.8 * health_rate)
        result("redirect p99 at half rate", f"{pct(latencies, 0.99):.0f} ms (p50 {pct(latencies, 0.5):.0f} ms) "
                                            f"at {redirect_rate / 2:,.0f}/s", "< 50 ms", pct(latencies, 0.99) < 50)
        result("/healthz p99 at the same pace", f"{pct(control, 0.99):.0f} ms (p50 {pct(control, 0.5):.0f} ms), "
                                                "the machine's share of the tail", "informational", None)
        result("redirect clicks kept", f"{clicks:,} clicks for {answered:,} redirects", "0 lost", clicks == answered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
