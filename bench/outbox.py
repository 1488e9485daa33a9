"""Webhook delivery (issue 20): N outbox events to a local receiver answering in 20 ms, across a ``kill -9``.

N events (5 for each of N/5 contacts, their kinds in a fixed order, the contacts interleaved) are written
straight into the outbox for one webhook URL: the receiver (:mod:`bench.hookreceiver`, its own process)
checks each signature and records event id, contact and arrival. A real ``followup worker`` delivers them;
once a third has arrived it is killed with SIGKILL, a new one is started, and the bench waits until every
event has arrived and every row is recorded as delivered.

Figures: deliveries/s = distinct events / seconds from the first arrival to the last first arrival (the
restart included); lost = events never received; out of order = events whose first arrival came before the
first arrival of an earlier event of their contact; repeats (at least once allows them after the kill).

Targets: at least 500 deliveries/s on SQLite, 0 lost, 0 out of order.

    python -m bench.outbox [--quick] [--postgres URL] [-n N]
"""
from __future__ import annotations

import argparse
import base64
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
import sqlalchemy as sa
import yaml

from .common import (MEMORY, PG_URL, PY, ROOT, add_contacts, info, phone, reset_database, result, start_worker,
                     terminate, wait_for, write_config)

SECRET = "whsec_" + base64.b64encode(b"bench-outbox-secret-32-bytes-key").decode()
KINDS = ("replied", "clicked", "converted", "handed_off", "lead_outcome")
TARGET = 500.0


class HookReceiver:
    """The receiver process (:mod:`bench.hookreceiver`)."""

    def __init__(self, delay: float = 0.02):
        self.proc = subprocess.Popen([PY, "-m", "bench.hookreceiver", "--port", "0", "--delay", str(delay),
                                      "--secret", SECRET], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"webhook receiver did not start: {line!r}")
        self.base = f"http://127.0.0.1:{int(line.split()[1])}"
        self.url = f"{self.base}/hooks/followup"
        self.http = requests.Session()

    def stats(self) -> dict:
        return self.http.get(f"{self.base}/_stats", timeout=30).json()

    def receipts(self) -> list[list]:
        return self.http.get(f"{self.base}/_dump", timeout=120).json()["receipts"]

    def reset(self) -> None:
        self.http.post(f"{self.base}/_reset", timeout=30).raise_for_status()

    def __enter__(self) -> "HookReceiver":
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def fill(engine: sa.Engine, url: str, contacts: list[int], per_contact: int) -> None:
    """``per_contact`` events for each contact, one pass of all contacts (shuffled) per kind."""
    from engine.clock import now
    from engine.models import OutboxStatus, WebhookOutbox
    from engine.outbox import event_body

    table = WebhookOutbox.__table__
    at = now()
    rng = random.Random(20)
    rows = []
    for k in range(per_contact):
        kind = KINDS[k % len(KINDS)]
        order = contacts[:]
        rng.shuffle(order)
        for i, cid in enumerate(order):
            event_id = f"evt_{uuid.uuid4().hex}"
            contact = {"id": cid, "external_id": None, "phone": phone(cid), "email": None,
                       "first_name": f"نام{cid}", "last_name": ""}
            rows.append({"event_id": event_id, "url": url, "kind": kind, "contact_id": cid,
                         "body": event_body(event_id, kind, at, contact, {"sequence": "bench", "step": k}),
                         "status": OutboxStatus.PENDING.value, "attempts": 0, "created_at": at,
                         "next_attempt_at": at})
    with engine.begin() as conn:
        for lo in range(0, len(rows), 5000):
            conn.execute(sa.insert(table), rows[lo:lo + 5000])


def outbox_state(engine: sa.Engine) -> tuple[list[tuple[str, int]], int]:
    """(event id and contact of every row, in outbox order; rows still pending)."""
    from engine.models import WebhookOutbox

    table = WebhookOutbox.__table__
    with engine.connect() as conn:
        rows = [(e, c) for e, c in conn.execute(sa.select(table.c.event_id, table.c.contact_id)
                                               .order_by(table.c.id))]
        pending = conn.execute(sa.select(sa.func.count()).select_from(table)
                               .where(table.c.status == "pending")).scalar_one()
    return rows, pending


def check(rows: list[tuple[str, int]], receipts: list[list]) -> dict:
    """Lost, out of order, repeats and the rate, from the outbox and the receiver's record."""
    first: dict[str, float] = {}
    arrival: dict[str, int] = {}
    for i, (event_id, _, at) in enumerate(receipts):
        if event_id not in arrival:
            arrival[event_id] = i
            first[event_id] = at
    lost = [e for e, _ in rows if e not in arrival]
    last_seen: dict[int, int] = {}
    out_of_order = 0
    for event_id, contact in rows:  # outbox order: each event must arrive after the one before of its contact
        pos = arrival.get(event_id)
        if pos is None:
            continue
        if pos < last_seen.get(contact, -1):
            out_of_order += 1
        last_seen[contact] = max(pos, last_seen.get(contact, -1))
    times = sorted(first.values())
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    gap = max((b - a for a, b in zip(times, times[1:])), default=0.0)  # the kill and restart
    return {"lost": len(lost), "out_of_order": out_of_order, "repeats": len(receipts) - len(arrival),
            "unique": len(arrival), "span": span, "rate": (len(arrival) - 1) / span if span else 0.0,
            "gap": gap, "rate_running": (len(arrival) - 1) / (span - gap) if span > gap else 0.0}


def run(hooks: HookReceiver, db_url: str, root: Path, n: int) -> dict:
    from engine.db import make_engine

    per_contact = len(KINDS)
    reset_database(db_url)
    cfg = write_config(root, db_url, sms=MEMORY)
    settings = yaml.safe_load((cfg / "settings.yaml").read_text(encoding="utf-8"))
    settings["webhooks"] = [{"url": hooks.url, "events": list(KINDS), "secret": "${BENCH_WEBHOOK_SECRET}"}]
    (cfg / "settings.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    engine = make_engine(db_url)
    started = time.perf_counter()
    contacts = add_contacts(engine, n // per_contact)
    fill(engine, hooks.url, contacts, per_contact)
    info(f"{n} events for {len(contacts)} contacts written in {time.perf_counter() - started:.1f}s")
    hooks.reset()
    env = {"BENCH_WEBHOOK_SECRET": SECRET}
    log = root / "worker.log"
    timeout = max(600.0, n / 50)
    first = start_worker(cfg, log, interval=1.0, extra_env=env)
    wait_for(lambda: hooks.stats()["unique"] >= n // 3, timeout=timeout, step=0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    at_kill = hooks.stats()
    second = start_worker(cfg, log, interval=1.0, extra_env=env)
    done = wait_for(lambda: hooks.stats()["unique"] >= n and outbox_state(engine)[1] == 0, timeout=timeout,
                    step=0.5)
    terminate(second)
    rows, pending = outbox_state(engine)
    engine.dispose()
    figures = check(rows, hooks.receipts())
    figures.update(done=done, pending=pending, at_kill=at_kill["unique"], bad=hooks.stats()["bad"])
    return figures


def report(label: str, n: int, r: dict) -> None:
    info(f"{label}: {r['unique']} of {n} events arrived in {r['span']:.1f}s (killed at {r['at_kill']}, none arrived "
         f"for {r['gap']:.1f}s around the restart; {r['rate_running']:.0f}/s while a worker ran); rows still pending "
         f"{r['pending']}; bad signatures {r['bad']}; all done: {r['done']}")
    result(f"outbox[{label}] deliveries/s", f"{r['rate']:.0f}/s (20 ms receiver, kill -9 and restart included)",
           f">= {TARGET:.0f}/s" if label == "sqlite" else "none, for comparison",
           r["rate"] >= TARGET if label == "sqlite" else None)
    result(f"outbox[{label}] lost", f"{r['lost']}", "0", r["lost"] == 0 and r["done"])
    result(f"outbox[{label}] out of order per contact", f"{r['out_of_order']} events", "0", r["out_of_order"] == 0)
    result(f"outbox[{label}] repeats after kill -9", f"{r['repeats']}", "information (at least once)", None)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--postgres", default=PG_URL)
    p.add_argument("-n", type=int, default=None)
    args = p.parse_args()
    n = args.n or (10_000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory() as tmp, HookReceiver() as hooks:
        tmp = Path(tmp)
        report("sqlite", n, run(hooks, f"sqlite:///{tmp}/followup.db", tmp / "sqlite", n))
        if args.postgres:
            report("postgresql", n, run(hooks, args.postgres, tmp / "postgresql", n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
