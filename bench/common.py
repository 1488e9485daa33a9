"""What the benches share: the fake SMS API process, a config + database built in code, result lines."""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parents[1]

PY = sys.executable
FOLLOWUP = str(Path(sys.executable).with_name("followup"))
PG_URL = (os.environ.get("FOLLOWUP_BENCH_POSTGRES_URL") or os.environ.get("FOLLOWUP_TEST_POSTGRES_URL"))
API_KEY = "BENCHKEY1234567890"
SEQ = "bench"
TEMPLATE = "{{ contact.first_name }} عزیز، پیام {{ touch.name }} از فروشگاه: کد تخفیف شما آماده است."


# -- output --------------------------------------------------------------------------------
def result(name: str, figure: str, target: str, met: bool | None) -> None:
    """One line: name, figure, target, met / NOT met (None: informational)."""
    verdict = "" if met is None else (" met" if met else " NOT met")
    print(f"{name}: {figure} (target {target}){verdict}", flush=True)


def postgres_bench_args(doc: str, name: str, quick: int, full: int) -> tuple[str, int] | None:
    """A PostgreSQL bench's command line (``--quick``, ``--postgres URL``, ``-n``): (URL, message count),
    or None, after saying the bench is skipped, when no PostgreSQL URL is set."""
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--postgres", default=PG_URL)
    p.add_argument("-n", type=int, default=None)
    args = p.parse_args()
    if not args.postgres:
        print(f"{name}: skipped (set FOLLOWUP_BENCH_POSTGRES_URL)")
        return None
    return args.postgres, args.n or (quick if args.quick else full)


def info(text: str) -> None:
    print(f"  {text}", flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def wait_rss(proc: subprocess.Popen, timeout: float | None = None) -> tuple[int, float]:
    """Wait for a child; return (exit status, its peak RSS in MB).

    The peak is the child's own ``VmHWM`` (read while it runs; exec starts it afresh), not wait4's
    ``ru_maxrss``: that one also counts the moments between fork and exec, when the child is a copy of
    this (large) bench process, so every child would seem at least as big as the bench itself.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    peak = 0.0
    while True:
        peak = max(peak, _hwm_mb(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, peak or usage.ru_maxrss / 1024
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"pid {proc.pid} still running")
        time.sleep(0.02)


def _hwm_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0  # gone, or a zombie (no memory left to report)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


median = statistics.median


def python_speed() -> float:
    """Millions of steps a second of a plain Python loop (best of 3): how fast this machine runs Python now.

    Absolute figures (messages per second) follow it; on the shared machines these benches run on it
    has been seen to vary by 2x from one hour to the next.
    """
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return 1 / best


# -- the fake SMS API ------------------------------------------------------------------------
class FakeSms:
    """The fake Kavenegar in its own process (``bench.fakesms``)."""

    def __init__(self, delay: float = 0.05, fail5xx: float = 0.0, fail429: float = 0.0, limit: float = 0.0,
                 burst: float = 1.0):
        self.proc = subprocess.Popen([PY, "-m", "bench.fakesms", "--port", "0", "--delay", str(delay),
                                      "--fail5xx", str(fail5xx), "--fail429", str(fail429),
                                      "--limit", str(limit), "--burst", str(burst)],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"fake SMS API did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        self.send_url = f"{self.base_url}/{API_KEY}/sms/send.json"
        self.http = requests.Session()

    def reset(self, **behaviour: float) -> None:
        self.http.post(f"{self.url}/_reset", params=behaviour, timeout=10).raise_for_status()

    def stats(self, times: bool = False) -> dict[str, Any]:
        r = self.http.get(f"{self.url}/_stats" + ("?times=1" if times else ""), timeout=30)
        r.raise_for_status()
        return r.json()

    def span(self, stats: dict | None = None) -> tuple[int, float]:
        """(accepted sends, seconds from the first to the last accepted send)."""
        stats = stats or self.stats(times=True)
        times = sorted(t for v in stats["times"].values() for t in v)
        if len(times) < 2:
            return len(times), float("nan")
        return len(times), times[-1] - times[0]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- config and database -----------------------------------------------------------------------
def reset_database(url: str) -> None:
    from engine.db import make_engine, upgrade

    make_engine(url).dispose()
    if url.startswith("sqlite:///"):
        path = Path(url.split("sqlite:///", 1)[1])
        for suffix in ("", "-wal", "-shm", ".worker.lock"):
            p = Path(str(path) + suffix)
            if p.exists():
                p.unlink()
    else:
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        engine.dispose()
    upgrade(url)
    make_engine(url).dispose()


def write_config(root: Path, db_url: str, *, sms: list[dict], concurrency: int = 16, batch_size: int = 200,
                 extra_worker: dict | None = None, after: str = "1d") -> Path:
    """A config folder: one 3-touch SMS sequence, a send window open all day every day, a loose cap."""
    cfg = root / "config"
    (cfg / "sequences").mkdir(parents=True, exist_ok=True)
    (root / "templates").mkdir(parents=True, exist_ok=True)
    (root / "templates" / "bench.sms.j2").write_text(TEMPLATE, encoding="utf-8")
    settings = {
        "database_url": db_url, "templates_dir": "../templates", "timezone": "Asia/Tehran", "default_region": "IR",
        "send_window": {"start": "00:00", "end": "23:59", "days": "all"},
        "frequency_cap": {"per_day": 10}, "sms_opt_out_footer": "لغو11",
        "providers": {"sms": sms, "email": [{"name": "mem-email", "type": "memory"}]},
        "worker": {"concurrency": concurrency, "batch_size": batch_size, **(extra_worker or {})},
    }
    (cfg / "settings.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    seq = {"name": SEQ, "touches": [
        {"name": f"t{i}", "after": "0s" if i == 0 else after, "channel": "sms", "template": "bench.sms.j2"}
        for i in range(3)]}
    (cfg / "sequences" / f"{SEQ}.yaml").write_text(yaml.safe_dump(seq, allow_unicode=True), encoding="utf-8")
    return cfg


def kavenegar(fake: FakeSms, name: str = "kavenegar", **extra) -> dict:
    return {"name": name, "type": "kavenegar", "api_key": API_KEY, "sender": "10004346",
            "base_url": fake.base_url, "timeout": 10, **extra}


MEMORY = [{"name": "mem-sms", "type": "memory"}]


def phone(i: int) -> str:
    return f"+98912{i:07d}"


def add_contacts(engine: sa.Engine, n: int, start: int = 1) -> list[int]:
    """n contacts with Iranian mobiles, straight in SQL (the import path has its own bench)."""
    from engine.clock import now
    from engine.models import Contact

    table = Contact.__table__
    at = now()
    ids = []
    with engine.begin() as conn:
        for lo in range(start, start + n, 5000):
            rows = [dict(phone=phone(i), first_name=f"نام{i}", last_name="", tags=";bench;", attrs={},
                         created_at=at, updated_at=at) for i in range(lo, min(lo + 5000, start + n))]
            ids.extend(conn.execute(sa.insert(table).returning(table.c.id), rows).scalars())
    return ids


def enroll_all(engine: sa.Engine, config, ids: list[int]) -> None:
    from engine.enrollment import enroll

    with engine.begin() as conn:
        report = enroll(conn, config, SEQ, ids)
    assert len(report.enrolled) == len(ids), (len(report.enrolled), report.refused[:3])


def count_status(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.exec_driver_sql("SELECT status, count(*) FROM messages GROUP BY status").all())


def setup_world(root: Path, db_url: str, *, sms: list[dict], contacts: int, concurrency: int = 16,
                batch_size: int = 200, extra_worker: dict | None = None):
    """Fresh database, config, contacts enrolled (touch 0 due now). Returns (config, engine)."""
    from engine.config import load_config
    from engine.db import make_engine

    reset_database(db_url)
    cfg = write_config(root, db_url, sms=sms, concurrency=concurrency, batch_size=batch_size,
                       extra_worker=extra_worker)
    config = load_config(cfg)
    engine = make_engine(db_url)
    ids = add_contacts(engine, contacts)
    enroll_all(engine, config, ids)
    return config, engine


_DEVNULL = None


def make_dispatcher(config, engine):
    """A Dispatcher as `followup worker` makes one: its providers built, the heap settled after start, and
    its logging as the CLI sets it up (the delivery log's JSON lines, one per row, here to /dev/null)."""
    from engine import heap
    from engine.cli import configure_logging
    from engine.dispatch import Dispatcher
    from engine.provider_setup import build_providers

    global _DEVNULL
    if _DEVNULL is None:
        _DEVNULL = open(os.devnull, "w", encoding="utf-8")
        configure_logging(stream=_DEVNULL)
    dispatcher = Dispatcher(config, build_providers(config), engine=engine)
    heap.settle()
    return dispatcher


def drain(dispatcher, engine, expected: int, timeout: float = 300) -> tuple[int, float]:
    """Tick until ``expected`` messages are sent (retries may need later ticks). Returns (sent, seconds)."""
    start = time.perf_counter()
    sent = 0
    while time.perf_counter() - start < timeout:
        dispatcher.tick()
        sent = count_status(engine).get("sent", 0)
        if sent >= expected:
            break
        time.sleep(0.05)
    return sent, time.perf_counter() - start


def terminate(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30) -> tuple[int, float]:
    if proc.poll() is None:
        proc.send_signal(sig)
    return wait_rss(proc, timeout)


def env_for(cfg: Path) -> dict:
    env = dict(os.environ)
    env["FOLLOWUP_CONFIG"] = str(cfg)
    env.pop("FOLLOWUP_DATABASE_URL", None)
    return env


def dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def start_worker(cfg: Path, log: Path, interval: float = 1.0, extra_env: dict | None = None) -> subprocess.Popen:
    """A real ``followup worker`` process; its output goes to a file (never a pipe nobody reads)."""
    fh = log.open("a")
    env = env_for(cfg)
    env.update(extra_env or {})
    return subprocess.Popen([FOLLOWUP, "worker", "--interval", str(interval)], env=env, stdout=fh, stderr=fh)


def start_serve(cfg: Path, tmp: Path) -> tuple[subprocess.Popen, str]:
    """A real ``followup serve`` on a random port (its output to ``tmp/serve.log``), once it answers /healthz:
    (the process, its base URL)."""
    import secrets

    import httpx

    port = 18000 + secrets.randbelow(2000)
    log = (tmp / "serve.log").open("a")
    serve = subprocess.Popen([FOLLOWUP, "serve", "--port", str(port)], env=env_for(cfg), stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code in (200, 503):
                break
        except httpx.TransportError:
            time.sleep(0.1)
    return serve, base


def wait_for(predicate, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def message_ids(engine: sa.Engine, touch_index: int = 0) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT id FROM messages WHERE touch_index = :t ORDER BY id"),
                                 {"t": touch_index}).scalars())
