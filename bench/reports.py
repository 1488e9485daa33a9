"""Reports at scale (issue 20): ``followup kpi`` and every dashboard page over a large shop.

The database is filled straight in SQL-speed bulk writes (PostgreSQL: COPY; SQLite: executemany) with what
the engine would have written over half a year: contacts with sources and UTM sources, one run each of the
example sequences (winter-sale, abandoned-cart, welcome-en), three messages per run in their final states with
their delivery-log rows (scheduled, sent, delivered, retry, failed, skipped, cancelled), clicks, handoffs with
outcomes and objections, cart events and conversions with values (repeat purchases too). A marker row keeps a
filled database for the next run (filling 1M contacts takes minutes): delete it or pass ``--refill``.

Then the median of a few runs of: ``kpi_report`` in the process, ``followup kpi`` as a CLI process,
``GET /api/v1/kpi``, ``/dashboard/kpi``, ``/dashboard``, ``/dashboard/sequences``, the stats API,
``/metrics`` (the first scrape of a fresh app and the steady scrape after it), the log page and a contact page,
through the real app (TestClient, API key). Targets: kpi < 3 s on PostgreSQL at 1M contacts / 3M messages,
each dashboard page < 500 ms, /metrics as a share of a core at a 15 s scrape interval.

    python -m bench.reports [--quick] [--postgres URL] [--sqlite-only] [--runs 3] [--refill]

Full: PostgreSQL 1,000,000 contacts / 3,000,000 messages, SQLite 250,000 / ~750,000 (the issue's "today"
size); ``--quick``: 100,000 / 300,000 on both.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
import yaml

from .common import FOLLOWUP, PG_URL, ROOT, info, python_speed, result

FILL_VERSION = 1
SPAN = timedelta(days=180)
MARKER = "bench:reports"
SEQUENCES = {  # the example sequences' first three touches: (name, channel)
    "winter-sale": [("hello", "sms"), ("value", "email"), ("reminder", "sms")],
    "abandoned-cart": [("nudge", "sms"), ("reminder", "sms"), ("last-call", "sms")],
    "welcome-en": [("welcome", "email"), ("tips", "email"), ("check-in", "sms")],
}
SEQ_NAMES = list(SEQUENCES)
SOURCES = ["instagram", "google", "telegram", "website", "newsletter"]
REPS = ["reza", "mina", "sara", "ali", "neda"]
OBJECTIONS = ["price", "timing", "competitor", "no budget"]
SMS, EMAIL = "kavenegar-bench", "smtp-bench"
PAGE_TARGET = 0.5
KPI_TARGET = 3.0
SCRAPE_EVERY = 15.0


def mix(i: int) -> int:
    """A cheap deterministic scramble of i (the same data set on every fill)."""
    i = (i * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF
    i ^= i >> 15
    return (i * 2246822519) & 0xFFFFFFFF


# -- the fill ---------------------------------------------------------------------------------------------------
def rows(n: int, t: datetime):
    """Every table's rows for n contacts, as {table: iterator of tuples} produced contact by contact."""
    from engine.store.sources import source_of

    step = SPAN / n
    out = {k: [] for k in ("contacts", "enrollments", "messages", "log", "events", "engagements", "handoffs")}
    for i in range(1, n + 1):
        r = mix(i)
        seq = SEQ_NAMES[i % 3]
        enrolled = t - timedelta(days=3) - step * (n - i)
        kind = r % 10
        attrs = ({"source": SOURCES[r % 5]} if kind < 4 else {"utm_source": SOURCES[(r >> 3) % 5], "utm_medium": "cpc"}
                 if kind < 7 else {})
        source = source_of(attrs)
        out["contacts"].append((i, f"+98912{i:07d}", f"c{i}@example.com" if i % 3 == 2 else None, f"نام{i}", "",
                                ";bench;", json.dumps(attrs), enrolled, enrolled))
        fate = (r >> 7) % 100
        status = ("converted" if fate < 6 else "handed_off" if fate < 9 else "unsubscribed" if fate < 10
                  else "completed")
        ended = enrolled + timedelta(days=2, hours=1)
        key = f"cart-{i}" if seq == "abandoned-cart" else None
        out["enrollments"].append((i, i, seq, "bench", status, enrolled, ended, key, source))
        if key:
            out["events"].append((i, "cart_abandoned", key, json.dumps({"total": 1200000, "items": 2}), None, None,
                                  "api", enrolled - timedelta(minutes=1), None, None, None, None))
        for k, (touch, channel) in enumerate(SEQUENCES[seq]):
            mid = (i - 1) * 3 + k + 1
            m = mix(mid) % 100
            mstatus = ("delivered" if m < 70 else "sent" if m < 80 else "undelivered" if m < 83 else "failed"
                       if m < 86 else "skipped" if m < 93 else "cancelled")
            due = enrolled + timedelta(days=k)
            provider = SMS if channel == "sms" else EMAIL
            went = mstatus in ("delivered", "sent", "undelivered", "failed")
            sent_at = due + timedelta(minutes=5) if went else None
            segments = (1 + (m % 5 == 0)) if channel == "sms" and went else None
            reason = {"failed": "provider answered 503", "skipped": "frequency cap reached",
                      "cancelled": "the run ended"}.get(mstatus)
            out["messages"].append((mid, i, i, seq, k, touch, channel, mstatus, due, due, 1 if went else 0,
                                    provider if went else None, f"pm{mid}" if went else None, sent_at, reason,
                                    segments, due, False, 0, source))
            base = (mid, i, seq, touch, channel)
            if k == 0:
                out["log"].append((enrolled, *base, None, "scheduled", f"due {due:%Y-%m-%dT%H:%M:%SZ}", 0, None))
            if went and mstatus != "failed":
                out["log"].append((sent_at, *base, provider, "sent", None, 1, f"pm{mid}"))
                if mstatus != "sent":
                    out["log"].append((sent_at + timedelta(seconds=30), *base, provider, mstatus,
                                       "receipt" if mstatus == "delivered" else "not delivered", 1, f"pm{mid}"))
                if m % 100 < 9 or m == 69:
                    out["engagements"].append((sent_at + timedelta(minutes=10), "clicked" if m < 9 else "clicked_bot",
                                               mid, i, seq, touch, channel, "link"))
            elif mstatus == "failed":
                out["log"].append((sent_at, *base, provider, "retry", "provider answered 503", 1, None))
                out["log"].append((sent_at + timedelta(minutes=1), *base, provider, "failed", reason, 2, None))
            else:
                out["log"].append((due if mstatus == "skipped" else ended, *base, None, mstatus, reason, 0, None))
        if status == "converted":
            at = enrolled + timedelta(days=1, hours=2)
            credited = r % 2 == 0
            out["events"].append((i, "converted", f"order-{i}", None, seq, "sms", "api", at,
                                  (i - 1) * 3 + 1 if credited else None, SEQUENCES[seq][0][0] if credited else None,
                                  "click" if credited else None, 1_000_000 * (1 + r % 9)))
            again = enrolled + timedelta(days=20)
            if r % 5 == 0 and again < t:
                out["events"].append((i, "converted", f"order-{i}-2", None, None, None, "api", again, None, None,
                                      None, 500_000 * (1 + r % 4)))
        if status == "handed_off":
            at = enrolled + timedelta(days=1, hours=3)
            o = (r >> 11) % 10
            outcome = "won" if o < 4 else "lost" if o < 8 else None
            out["handoffs"].append((i, i, i, seq, REPS[r % 5], "replied", 30.0, at, "0" * 32, at + timedelta(days=7),
                                    outcome, 2_000_000 if outcome == "won" else None,
                                    OBJECTIONS[(r >> 5) % 4] if outcome == "lost" else None,
                                    at + timedelta(days=1) if outcome else None, "bench" if outcome else None))
            if outcome == "won":
                out["events"].append((i, "converted", f"won-{i}", None, seq, None, "sales", at + timedelta(days=1),
                                      None, None, None, 2_000_000))
        if i % 20000 == 0 or i == n:
            yield out
            out = {k: [] for k in out}


COLUMNS = {
    "contacts": "id, phone, email, first_name, last_name, tags, attrs, created_at, updated_at",
    "enrollments": "id, contact_id, sequence, sequence_hash, status, enrolled_at, ended_at, event_key, source",
    "messages": "id, enrollment_id, contact_id, sequence, touch_index, touch, channel, status, due_at, "
                "next_attempt_at, attempt, provider, provider_message_id, sent_at, reason, segments, updated_at, urgent, "
                "polls, source",
    "bench_log": "at, message_id, contact_id, sequence, touch, channel, provider, event, reason, attempt, "
                 "provider_message_id",
    "contact_events": "contact_id, type, key, data, sequence, channel, source, at, message_id, touch, "
                      "attributed_by, value",
    "engagements": "at, kind, message_id, contact_id, sequence, touch, channel, source",
    "handoffs": "id, contact_id, enrollment_id, sequence, rep, fired_by, score, at, token_nonce, token_expires_at, "
                "outcome, value, objection, outcome_at, outcome_by",
}
TABLE_OF = {"contacts": "contacts", "enrollments": "enrollments", "messages": "messages", "log": "bench_log",
            "events": "contact_events", "engagements": "engagements", "handoffs": "handoffs"}
LOG_COLUMNS = COLUMNS["bench_log"]


def marker_of(n: int) -> str:
    return f"contacts={n} messages={3 * n} v{FILL_VERSION}"


def filled(engine: sa.Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT detail FROM worker_status WHERE name = :n"), {"n": MARKER}).scalar()
    except sa.exc.DBAPIError:
        return None


def fill(url: str, n: int) -> float:
    """A fresh database at the head revision, filled for n contacts; returns the seconds it took."""
    from engine.db import make_engine
    from engine.store.rollups import FoldSchedule

    from .common import reset_database

    start = time.perf_counter()
    reset_database(url)
    engine = make_engine(url)
    t = datetime.now(timezone.utc).replace(microsecond=0)
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE {'UNLOGGED' if pg else 'TEMP'} TABLE bench_log (at TIMESTAMP"
                             f"{' WITH TIME ZONE' if pg else ''}, message_id INTEGER, contact_id INTEGER, "
                             "sequence TEXT, touch TEXT, channel TEXT, provider TEXT, event TEXT, reason TEXT, "
                             "attempt INTEGER, provider_message_id TEXT)")
        raw = conn.connection.driver_connection
        for chunk in rows(n, t):
            for key, table in TABLE_OF.items():
                if chunk[key]:
                    if pg:
                        if table == "engagements":  # its row triggers join them: planned with their real sizes
                            conn.exec_driver_sql("ANALYZE enrollments, messages")
                        _copy(raw, table, chunk[key])
                    else:
                        _sqlite_insert(raw, table, chunk[key])
        conn.exec_driver_sql(f"INSERT INTO delivery_log ({LOG_COLUMNS}) SELECT {LOG_COLUMNS} FROM bench_log "
                             "ORDER BY at, message_id")
        conn.exec_driver_sql("DROP TABLE bench_log")
        FoldSchedule().run(conn, t)  # what a worker folds within a minute: the kept counts and the log's
        conn.exec_driver_sql("INSERT INTO offers (sequence, code, title, stock, redeemed) "
                             "VALUES ('winter-sale', 'WINTER20', '', 500, 120)")
        conn.execute(sa.text("INSERT INTO worker_status (name, last_tick_at, detail) VALUES (:n, :t, :d)"),
                     [{"n": "worker:bench", "t": t, "d": json.dumps({"duration_seconds": 0.2})},
                      {"n": MARKER, "t": t, "d": marker_of(n)}])
        if pg:
            for table in ("contacts", "enrollments", "messages", "handoffs", "contact_events", "engagements",
                          "delivery_log"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT max(id) FROM {table}))")
    if pg:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # the fill's millions of moves, folded in one go, left the kept counts' files that big; a worker
            # folding once a minute under autovacuum keeps them a few pages
            conn.exec_driver_sql("VACUUM FULL sequence_counts, bucket_moves")
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    return time.perf_counter() - start


def _copy(raw, table: str, data: list[tuple]) -> None:
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as copy:
        for row in data:
            copy.write_row(row)


def _sqlite_insert(raw, table: str, data: list[tuple]) -> None:
    from engine.store.driver import sqlite_text

    def text(v):
        return sqlite_text(v) if isinstance(v, datetime) else v

    marks = ", ".join("?" * len(data[0]))
    raw.executemany(f"INSERT INTO {table} ({COLUMNS[table]}) VALUES ({marks})",
                    [tuple(text(v) for v in row) for row in data])


# -- the config -------------------------------------------------------------------------------------------------
def write_config(root: Path, url: str) -> Path:
    cfg = root / "config"
    shutil.copytree(ROOT / "config" / "sequences", cfg / "sequences")
    settings = {
        "database_url": url, "templates_dir": str(ROOT / "templates"), "timezone": "Asia/Tehran",
        "default_region": "IR", "locale": "fa", "send_window": {"start": "09:00", "end": "21:00", "days": "all"},
        "frequency_cap": {"per_day": 2}, "sms_opt_out_footer": "لغو11",
        # the failover provider has never sent (nor failed): the dashboard's "last error" finds none for it
        "providers": {"sms": [{"name": SMS, "type": "memory", "price_per_segment": 250},
                              {"name": "backup-sms", "type": "memory", "price_per_segment": 300}],
                      "email": [{"name": EMAIL, "type": "memory", "price_per_email": 20}]},
    }
    (cfg / "settings.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return cfg


# -- the timings ------------------------------------------------------------------------------------------------
def timed(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def measure(label: str, url: str, n: int, runs: int, kpi_target: bool, pages_only: bool = False) -> None:
    """Every timing line of one database (``pages_only``: the app's pages and APIs, once each)."""
    from engine.apikeys import create_key
    from engine.config import load_config
    from engine.db import make_engine

    name = f"reports[{label}]"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(Path(tmp), url)
        config = load_config(cfg)
        engine = make_engine(url)
        with engine.begin() as conn:
            key = create_key(conn, f"bench-{os.urandom(3).hex()}")
        if not pages_only:
            measure_kpi(name, cfg, config, engine, runs, kpi_target)
        measure_pages(name, config, engine, {"Authorization": f"Bearer {key}"}, n, 1 if pages_only else runs)
        engine.dispose()


def measure_kpi(name: str, cfg: Path, config, engine: sa.Engine, runs: int, kpi_target: bool) -> None:
    """``kpi_report`` in this process (30 days, by source, by month) and ``followup kpi --json`` as a process."""
    from engine.kpi import kpi_report

    def in_process(by=None):
        with engine.connect() as conn:
            return kpi_report(conn, config, by=by)

    secs, groups = timed(in_process, runs)
    figures = groups[0].figures
    info(f"30-day window: {figures['leads']:,} leads, {figures['conversions']:,} conversions, "
         f"{figures['handoffs']:,} handoffs, cost {figures['cost']:,.0f}")
    result(f"{name} kpi_report (in process, 30d)", f"{secs:.2f}s", f"< {KPI_TARGET:g}s on PostgreSQL at 1M/3M",
           secs < KPI_TARGET if kpi_target else None)
    env = {**os.environ, "FOLLOWUP_CONFIG": str(cfg)}
    env.pop("FOLLOWUP_DATABASE_URL", None)

    def cli():
        done = subprocess.run([FOLLOWUP, "kpi", "--json"], env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        return done.stdout

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    secs, _ = timed(cli, runs)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / runs
    result(f"{name} followup kpi (CLI process)", f"{secs:.2f}s wall, {cpu:.2f}s CPU of the process",
           f"< {KPI_TARGET:g}s", secs < KPI_TARGET if kpi_target else None)
    for by in ("source", "month"):
        secs, _ = timed(lambda: in_process(by), max(1, runs - 1))
        result(f"{name} kpi_report --by {by}", f"{secs:.2f}s", f"< {KPI_TARGET:g}s",
               secs < KPI_TARGET if kpi_target else None)


def measure_pages(name: str, config, engine: sa.Engine, headers: dict, n: int, runs: int) -> None:
    """The real app's pages and APIs (an API key in the Authorization header)."""
    from fastapi.testclient import TestClient

    from engine import heap
    from engine.service import create_app
    from engine.service.options import ServiceOptions

    app = create_app(config, engine=engine, options=ServiceOptions(dashboard_password=None, public_url=None))
    heap.settle()  # as `followup serve` does once its app is loaded
    with TestClient(app) as client:
        def get(path, **params):
            def call():
                r = client.get(path, params=params, headers=headers)
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
                return r
            return call

        start = time.perf_counter()
        get("/metrics")()
        first = time.perf_counter() - start
        steady, _ = timed(get("/metrics"), runs + 2)
        result(f"{name} /metrics first scrape of a fresh app", f"{first * 1000:.0f} ms", "informational", None)
        result(f"{name} /metrics per scrape", f"{steady * 1000:.0f} ms = {steady / SCRAPE_EVERY:.1%} of a core "
               f"at a {SCRAPE_EVERY:g}s scrape interval", f"< {PAGE_TARGET * 1000:.0f} ms", steady < PAGE_TARGET)
        secs, _ = timed(get("/api/v1/kpi"), runs)
        result(f"{name} GET /api/v1/kpi", f"{secs:.2f}s", f"< {KPI_TARGET:g}s", None)
        contact = f"+98912{n - 3:07d}"  # a recent converter of winter-sale
        pages = [("/dashboard/kpi", {}), ("/dashboard/kpi", {"by": "source"}), ("/dashboard", {}), ("/dashboard/sequences", {}),
                 ("/api/v1/sequences/winter-sale/stats", {}), ("/dashboard/log", {}),
                 ("/dashboard/log", {"sequence": "welcome-en", "event": "failed"}),
                 (f"/dashboard/contacts/{contact}", {})]
        for path, params in pages:
            secs, _ = timed(get(path, **params), runs)
            shown = path + (("?" + "&".join(f"{k}={v}" for k, v in params.items())) if params else "")
            result(f"{name} {shown}", f"{secs * 1000:.0f} ms", f"< {PAGE_TARGET * 1000:.0f} ms", secs < PAGE_TARGET)


def run(label: str, url: str, n: int, runs: int, refill: bool, kpi_target: bool, pages_only: bool) -> None:
    from engine.db import make_engine, upgrade

    engine = make_engine(url)
    have = filled(engine)
    engine.dispose()
    if refill or have != marker_of(n):
        info(f"{label}: filling {n:,} contacts, {3 * n:,} messages ...")
        secs = fill(url, n)
        info(f"{label}: filled in {secs:.0f}s")
    else:
        upgrade(url)  # a filled database made before a migration gets it (its indexes) here
        info(f"{label}: reusing the filled database ({have})")
    engine = make_engine(url)
    with engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
                  for t in ("contacts", "messages", "delivery_log", "contact_events", "engagements", "handoffs")}
    engine.dispose()
    info(f"{label}: " + ", ".join(f"{t} {c:,}" for t, c in counts.items()))
    measure(label, url, n, runs, kpi_target, pages_only)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--postgres", default=PG_URL)
    p.add_argument("--sqlite-only", action="store_true")
    p.add_argument("--postgres-only", action="store_true")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--refill", action="store_true")
    p.add_argument("--pages-only", action="store_true", help="only the app's pages and APIs, once each")
    p.add_argument("-n", type=int, default=None, help="contacts (both databases; messages are 3 per contact)")
    p.add_argument("--sqlite-dir", default=os.path.join(tempfile.gettempdir(), "followup-bench-reports"))
    args = p.parse_args()
    info(f"machine speed {python_speed():.0f}M loop steps/s, load avg {open('/proc/loadavg').read().split()[0]}")
    if args.postgres and not args.sqlite_only:
        n = args.n or (100_000 if args.quick else 1_000_000)
        run(f"postgres {n // 1000}k", args.postgres, n, args.runs, args.refill, not args.quick,
            args.pages_only)
    elif not args.sqlite_only:
        print("reports[postgres]: skipped (set FOLLOWUP_BENCH_POSTGRES_URL)")
    if not args.postgres_only:
        n = args.n or (100_000 if args.quick else 250_000)
        Path(args.sqlite_dir).mkdir(parents=True, exist_ok=True)
        run(f"sqlite {n // 1000}k", f"sqlite:///{args.sqlite_dir}/reports-{n}.db", n, args.runs, args.refill, False,
            args.pages_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
