"""Event intake: ``POST /api/v1/events`` against ``/healthz`` of the same ``followup serve``, while a worker sends.

A real ``followup serve`` and a real ``followup worker`` on one database (SQLite, and PostgreSQL with
``--postgres``), the worker sending to the 50 ms fake panel throughout. A closed loop of C=50 clients (asyncio,
keep-alive, :mod:`bench.loadclient`, beside the server on this machine) asks ``/healthz`` for D seconds, then posts
one event a request for D seconds (a named event of a known contact, with its data and an idempotency key, as a
shop sends them). Then, at half the event rate offered at a steady pace, the latency of each event, and of
``/healthz`` at the same pace (the machine's own tail, for comparison). Then lists of 1,000 events, one request
each. At the end every answered event must be in the database.

Targets (issue 20): the event rate at least 80% of ``/healthz``'s; at half that rate, p99 under 100 ms; a list
of 1,000 events recorded in under 1 s; no event lost.

    python -m bench.events [--quick] [--postgres URL]
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from .common import (PG_URL, FakeSms, info, kavenegar, pct, phone, result, setup_world, start_serve, start_worker,
                     terminate)
from .loadclient import Connection, Pool

CLIENTS = 50
LISTS = 3
EVENT = "product_viewed"


class Events:
    """Event bodies, each with its own idempotency key (so each is recorded once, and counted)."""

    def __init__(self, contacts: int):
        self.contacts = contacts
        self.serial = itertools.count()
        self.run = secrets.token_hex(4)

    def one(self) -> dict:
        i = next(self.serial)
        return {"contact": phone(1 + i % self.contacts), "type": EVENT, "key": f"sku-{i % 997}",
                "data": {"sku": f"sku-{i % 997}", "price": 1_250_000}, "idempotency_key": f"{self.run}-{i}"}


RETRIES = {"count": 0}


async def send(conn: Connection, event: dict | None) -> int:
    """One request's status (``/healthz`` for None, else the event). The connection sends it again when the
    server closed it as it was reused (an idle keep-alive): an event's idempotency key makes that safe."""
    before = conn.retries
    try:
        if event is None:
            return (await conn.get("/healthz"))[0]
        return (await conn.post_json("/api/v1/events", event))[0]
    finally:
        RETRIES["count"] += conn.retries - before


async def closed_loop(base: str, key: str, make, seconds: float) -> tuple[int, int]:
    """C clients asking one after another for ``seconds``, each on its keep-alive connection: (answers,
    answers with status 200). ``make`` is None for ``/healthz``, else a function giving each request's event."""
    done = good = 0
    end = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal done, good
        async with Connection(base, {"Authorization": f"Bearer {key}"}) as conn:
            while time.perf_counter() < end:
                status = await send(conn, None if make is None else make())
                done += 1
                good += status == 200
    await asyncio.gather(*(one() for _ in range(CLIENTS)))
    return done, good


async def paced(base: str, key: str, make, rate: float, seconds: float) -> tuple[list[float], int]:
    """Requests offered at ``rate`` per second, evenly spaced, on a :class:`~bench.loadclient.Pool`: (each one's
    latency in ms, answers with 200)."""
    latencies: list[float] = []
    good = 0
    async with Pool(base, {"Authorization": f"Bearer {key}"}) as pool:
        async def one() -> None:
            nonlocal good
            started = time.perf_counter()
            status = await pool.use(lambda conn: send(conn, None if make is None else make()))
            latencies.append((time.perf_counter() - started) * 1000)
            good += status == 200

        tasks, start, n = [], time.perf_counter(), int(rate * seconds)
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies, good


def lists(base: str, key: str, events: Events) -> tuple[list[float], int]:
    """LISTS requests of 1,000 events each, one after another: (seconds each, events answered 200)."""
    times, good = [], 0
    with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
        for _ in range(LISTS):
            body = [events.one() for _ in range(1000)]
            started = time.perf_counter()
            response = client.post("/api/v1/events", json=body)
            times.append(time.perf_counter() - started)
            if response.status_code == 200:
                good += sum(r["recorded"] for r in response.json()["results"])
            else:
                info(f"a list was answered {response.status_code}: {response.text[:300]}")
    return times, good


def run(url: str, label: str, seconds: float, contacts: int) -> None:
    from engine.apikeys import create_key
    from engine.models import ContactEvent, Message

    with tempfile.TemporaryDirectory() as tmp, FakeSms(delay=0.05) as fake:
        tmp = Path(tmp)
        if url == "sqlite":
            url = f"sqlite:///{tmp}/events.db"
        config, engine = setup_world(tmp, url, sms=[kavenegar(fake)], contacts=contacts)
        with engine.begin() as conn:
            key = create_key(conn, "bench")
        cfg = config.dir
        worker = start_worker(cfg, tmp / "worker.log")
        serve, base = start_serve(cfg, tmp)
        events = Events(contacts)
        try:
            health, _ = asyncio.run(closed_loop(base, key, None, seconds))
            posted, ok = asyncio.run(closed_loop(base, key, events.one, seconds))
            health_rate, event_rate = health / seconds, posted / seconds
            latencies, ok_paced = asyncio.run(paced(base, key, events.one, event_rate / 2, seconds))
            # the control: /healthz at the same pace, for how much of the tail is the machine's
            control, _ = asyncio.run(paced(base, key, None, event_rate / 2, seconds))
            list_times, ok_lists = lists(base, key, events)
        finally:
            terminate(serve)
            terminate(worker)
        with engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(ContactEvent.__table__)
                                  .where(ContactEvent.__table__.c.type == EVENT)).scalar_one()
            sent = conn.execute(sa.select(sa.func.count()).select_from(Message.__table__)
                                .where(Message.__table__.c.status == "sent")).scalar_one()
        engine.dispose()
        info(f"[{label}] the worker sent {sent:,} messages meanwhile")
        asked = next(events.serial)
        failed = (posted - ok) + (len(latencies) - ok_paced)
        if failed:
            info(f"[{label}] {failed:,} single events were not answered 200")
        if RETRIES["count"]:
            info(f"[{label}] {RETRIES['count']:,} requests sent again after their connection dropped")
        answered = ok + ok_paced + ok_lists
        result(f"events[{label}] rate", f"{event_rate:,.0f}/s vs /healthz {health_rate:,.0f}/s "
                                        f"({event_rate / health_rate:.0%}), C={CLIENTS}, worker sending",
               "≥ 80% of /healthz", event_rate >= 0.8 * health_rate and not failed)
        result(f"events[{label}] p99 at half rate", f"{pct(latencies, 0.99):.0f} ms (p50 {pct(latencies, 0.5):.0f} ms)"
                                                    f" at {event_rate / 2:,.0f}/s", "< 100 ms",
               pct(latencies, 0.99) < 100)
        result(f"events[{label}] /healthz p99 at the same pace",
               f"{pct(control, 0.99):.0f} ms (p50 {pct(control, 0.5):.0f} ms), the machine's share of the tail",
               "informational", None)
        result(f"events[{label}] list of 1,000", f"{max(list_times):.2f} s the slowest of {LISTS} "
                                                 f"({', '.join(f'{t:.2f}' for t in list_times)})",
               "< 1 s", max(list_times) < 1.0 and ok_lists == 1000 * LISTS)
        result(f"events[{label}] kept", f"{stored:,} stored for {answered:,} answered 200 ({asked:,} sent)",
               "0 lost", stored == answered == asked)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--postgres", default=PG_URL, help="also on this PostgreSQL database (its schema is recreated)")
    p.add_argument("--only", choices=["sqlite", "postgresql"], help="one database only")
    args = p.parse_args()
    seconds, contacts = (5.0, 10_000) if args.quick else (15.0, 30_000)
    if args.only != "postgresql":
        run("sqlite", "sqlite", seconds, contacts)
    if args.only != "sqlite":
        if args.postgres:
            run(args.postgres, "postgresql", seconds, contacts)
        else:
            print("events[postgresql]: skipped (set FOLLOWUP_BENCH_POSTGRES_URL)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
