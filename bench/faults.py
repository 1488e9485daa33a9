"""What the fault tests and ``python -m bench.chaos`` share: real worker processes, kills, and a history audit.

    world = kill_world(tmp_path, db_url)          # file provider, 3-touch 0s/1s/1s sequence, lease 2 s
    with Fleet(world, size=3) as fleet:           # `followup worker --interval 0.2` processes, all ended on exit
        fleet.start_all(); fleet.kill(0); fleet.restart(0); fleet.term(1)
    audit = audit_history(world)                  # outbox file vs messages vs delivery_log
    assert not audit.problems, audit.problems
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from engine.db import make_engine
from engine.installation import SPAN
from engine.transitions import Event, log_next

from .world import World

FOLLOWUP = str(Path(sys.executable).parent / "followup")
ANYTIME = {"start": "00:00", "end": "24:00", "days": "all"}
FINAL = {"sent", "delivered", "undelivered", "failed", "skipped", "cancelled", "unknown"}

#: which log event may follow which in a message's log (``None``: its first row); anything else goes backwards.
#: Derived from the engine's one state machine (engine/transitions.py), not a copy of it
ALLOWED_NEXT: dict[str | None, frozenset[str]] = {e: log_next(e) for e in (None, *(event.value for event in Event))}


def own_database(url: str, suffix: str = "faults") -> str:
    """The URL of a database of our own beside ``url`` (``test`` → ``test_faults``), created if missing.

    Other test files drop and recreate the schema of the shared test database; the fault tests run
    real worker processes for many seconds and must not have their tables dropped under them.
    """
    base = sa.engine.make_url(url)
    name = f"{base.database}_{suffix}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def reset_postgres(url: str, suffix: str = "faults") -> str:
    """An emptied database of our own (see :func:`own_database`); returns its URL."""
    url = own_database(url, suffix)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    return url


def three_touch(name: str = "k", channel: str = "sms") -> dict:
    return {"name": name, "touches": [
        {"name": f"t{i}", "after": after, "channel": channel, "template": "plain.sms.j2"}
        for i, after in enumerate(("0s", "1s", "1s"))]}


def kill_world(root: Path, db_url: str, *, worker: dict | None = None, sequences: list[dict] | None = None,
               settings: dict | None = None, rate: str = "100/s") -> World:
    """A world whose providers append to ``root/outbox.jsonl`` (lookup by our id works), any hour, lease 2 s."""
    outbox = root / "outbox.jsonl"
    world = World(root, db_url, sequences or [three_touch()], settings={
        "send_window": ANYTIME, "frequency_cap": {"per_day": 100},
        # a rate keeps a batch in flight for a while, so random kills land mid-send too
        "providers": {"sms": [{"name": "sandbox", "type": "file", "path": str(outbox), "rate": rate}],
                      "email": [{"name": "sandbox-mail", "type": "file", "path": str(outbox), "rate": rate}]},
        "worker": {"lease_seconds": 2, "batch_size": 20, **(worker or {})},
        **(settings or {}),
    })
    world.dispatcher.close()  # this process only enrolls and watches; worker processes do the work
    world.outbox = outbox
    return world


def add_and_enroll(world: World, start: int, count: int, sequence: str = "k") -> list[int]:
    ids = world.add_contacts(*({"phone": f"0912{start + i:07d}", "first_name": f"n{start + i}"}
                               for i in range(count)))
    world.enroll(sequence, *ids)
    return ids


def outbox_ids(path: Path) -> list[str]:
    """Our message ids in a file provider's outbox (which holds their client references)."""
    if not path.exists():
        return []
    return [str(int(json.loads(line)["message_id"]) % SPAN) for line in path.read_text(encoding="utf-8").splitlines()
            if line]


def worker_env(world: World, pause_at: str | None = None, marker: Path | None = None, **extra: str) -> dict:
    env = {**os.environ, "FOLLOWUP_CONFIG": str(world.root / "config"), **extra}
    env.pop("FOLLOWUP_PAUSE_AT", None)
    if pause_at:
        env["FOLLOWUP_PAUSE_AT"] = f"{pause_at}:{marker}"
    return env


def start_worker(world: World, *, once: bool = False, interval: float = 0.2, pause_at: str | None = None,
                 marker: Path | None = None, log: Path | None = None, extra_env: dict | None = None,
                 ) -> subprocess.Popen:
    """A real ``followup worker`` process; its output goes to ``log`` (a file: a pipe nobody reads would block)."""
    args = [FOLLOWUP, "worker"] + (["--once"] if once else ["--interval", str(interval)])
    log = log or world.root / f"worker-{time.monotonic_ns()}.log"
    out = open(log, "ab")
    try:
        proc = subprocess.Popen(args, env=worker_env(world, pause_at, marker, **(extra_env or {})),
                                stdout=out, stderr=subprocess.STDOUT)
    finally:
        out.close()
    proc.log_path = log  # type: ignore[attr-defined]
    return proc


def end(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def wait_for_file(path: Path, procs: list[subprocess.Popen], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"a worker exited early ({proc.returncode}): "
                                     f"{Path(proc.log_path).read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)


def statuses(engine: sa.Engine) -> Counter:
    with engine.connect() as conn:
        return Counter(dict(conn.execute(sa.text("SELECT status, count(*) FROM messages GROUP BY status")).all()))


#: how long a wait on workers goes on without any progress before it is taken for a hang
HANG = 300.0


def wait_until_final(engine: sa.Engine, stall: float, *, expected: int | None = None) -> bool:
    """Poll until every message is final (and at least ``expected`` exist). False once the messages' statuses
    have not changed for ``stall`` seconds (on a loaded machine the workers are slow, not stuck), or after
    ten times that in all."""
    start = changed = time.monotonic()
    last = None
    while time.monotonic() - changed < stall and time.monotonic() - start < 10 * stall:
        counts = statuses(engine)
        total = sum(counts.values())
        if total and all(s in FINAL for s in counts) and (expected is None or total >= expected):
            return True
        if counts != last:
            last, changed = counts, time.monotonic()
        time.sleep(0.2)
    return False


class Fleet:
    """``size`` worker processes on one world; SIGKILL any of them and start a fresh one in its place.

    Use it as a context manager: on exit, whatever happened, every process it started is ended, and no
    worker starts after :meth:`stop_all` or the exit (a killer thread restarting one would leave it behind).
    """

    def __init__(self, world: World, size: int, *, interval: float = 0.2):
        self.world, self.size, self.interval = world, size, interval
        self.procs: list[subprocess.Popen | None] = [None] * size
        self.all: list[subprocess.Popen] = []
        self.kills = 0
        self.last_kill: float | None = None
        self.lock = threading.Lock()
        #: the longest a worker may take to exit after SIGTERM: its drain_seconds and a margin for Python's exit
        self.term_limit = world.config.settings.worker.drain_seconds + 10.0
        self.sigterms = 0
        self.honoured = 0  # workers that exited within term_limit of their SIGTERM
        self.term_codes: Counter = Counter()
        self.stopped = False

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Start nothing more; SIGKILL every worker this fleet started that still runs, and reap it."""
        with self.lock:
            self.stopped = True
        for proc in self.all:
            end(proc)

    def start(self, i: int, **kw) -> subprocess.Popen:
        with self.lock:
            if self.stopped:
                raise RuntimeError("the fleet is stopped: no worker starts any more")
            # one log per process: a restarted worker must not look "up" from its predecessor's start line
            log = self.world.root / f"worker{i}-{len(self.all)}.log"
            proc = start_worker(self.world, interval=self.interval, log=log, **kw)
            self.procs[i] = proc
            self.all.append(proc)
        return proc

    def start_all(self, **kw) -> None:
        for i in range(self.size):
            self.start(i, **kw)

    def up(self, i: int) -> bool:
        """True once worker ``i`` runs (it logged its start line) and has not exited."""
        proc = self.procs[i]
        if proc is None or proc.poll() is not None:
            return False
        try:
            return b" started: ticking every " in Path(proc.log_path).read_bytes()
        except OSError:
            return False

    def settled(self, i: int) -> bool:
        """True once worker ``i`` is up, or has exited, or was never started."""
        proc = self.procs[i]
        return proc is None or proc.poll() is not None or self.up(i)

    def wait_up(self, timeout: float = HANG) -> None:
        """Wait until every worker is up (or has exited): a Python worker takes a second or two to start,
        much longer on a loaded machine."""
        deadline = time.monotonic() + timeout
        while not all(self.settled(i) for i in range(self.size)) and time.monotonic() < deadline:
            time.sleep(0.05)

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            self.kills += 1
            self.last_kill = time.monotonic()

    def restart(self, i: int) -> None:
        self.kill(i)
        self.start(i)

    def term(self, i: int) -> int | None:
        """SIGTERM worker ``i`` and wait for it; counted as honoured when it exits within ``term_limit``."""
        proc = self.procs[i]
        if proc is None or proc.poll() is not None:
            return None
        proc.send_signal(signal.SIGTERM)
        return self._wait_term(proc, time.monotonic())

    def _wait_term(self, proc: subprocess.Popen, sent: float) -> int | None:
        with self.lock:
            self.sigterms += 1
        try:
            code = proc.wait(timeout=max(0.0, sent + self.term_limit - time.monotonic()))
        except subprocess.TimeoutExpired:  # not honoured: counted, then killed so the run goes on
            proc.kill()
            proc.wait(timeout=10)
            return None
        with self.lock:
            self.honoured += 1
            self.term_codes[code] += 1
        return code

    def stop_all(self, sig: int = signal.SIGTERM) -> list[int | None]:
        """Signal every worker once it is up (a worker still importing would just die of SIGTERM).

        A SIGTERM is counted like :meth:`term`'s; a worker still running after ``term_limit`` is killed
        and its code is None. No worker starts after this.
        """
        with self.lock:
            self.stopped = True
        self.wait_up()
        sent = time.monotonic()
        signalled = []
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(sig)
                signalled.append(proc)
        codes: list[int | None] = []
        for proc in self.procs:
            if proc is None:
                codes.append(None)
            elif sig == signal.SIGTERM and proc in signalled:
                codes.append(self._wait_term(proc, sent))
            else:
                try:
                    codes.append(proc.wait(timeout=self.term_limit))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    codes.append(proc.wait(timeout=10))
        return codes

    def logs(self) -> str:
        return "\n".join(Path(p.log_path).read_text(errors="replace") for p in self.all)


class Killer(threading.Thread):
    """SIGKILLs a random running worker of ``fleet`` at random moments and restarts it, ``rounds`` times.

    Only workers that are up are killed (a Python worker takes a second or two to start): each round
    waits a random ``pause`` and kills a random worker among those running. The fresh worker starts
    at once, or (a third of the time) ``late`` seconds after the kill, while the dead worker's leases
    are still held: its first tick meets them. Every ``term_every``-th round also SIGTERMs a running
    worker, waits for it to exit (see :meth:`Fleet.term`) and starts a fresh one.
    """

    def __init__(self, fleet: Fleet, rounds: int, rng: random.Random, pause: tuple[float, float] = (0.2, 1.5),
                 late: tuple[float, float] = (0.5, 2.0), term_every: int = 5):
        super().__init__(daemon=True)
        self.fleet, self.rounds, self.rng, self.pause, self.late = fleet, rounds, rng, pause, late
        self.term_every = term_every
        self.started_late = 0  # fresh workers started a moment after a kill, not at once
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.progress = time.monotonic()  # when it last finished a round

    def _running(self) -> list[int]:
        """The workers that are up, once one is (a fresh worker takes a while to start on a loaded machine)."""
        deadline = time.monotonic() + HANG
        while True:
            running = [i for i in range(self.fleet.size) if self.fleet.up(i)]
            if running or self.done.wait(0.05) or time.monotonic() > deadline:
                return running

    def run(self) -> None:
        try:
            for n in range(1, self.rounds + 1):
                if self.done.wait(self.rng.uniform(*self.pause)):
                    return
                running = self._running()
                if not running:
                    return
                victim = self.rng.choice(running)
                if self.rng.random() < 1 / 3:
                    self.fleet.kill(victim)
                    self.started_late += 1
                    if self.done.wait(self.rng.uniform(*self.late)):
                        return
                    self.fleet.start(victim)
                else:
                    self.fleet.restart(victim)
                if n % self.term_every == 0 and (running := self._running()):
                    chosen = self.rng.choice(running)
                    self.fleet.term(chosen)
                    self.fleet.start(chosen)
                self.progress = time.monotonic()
        except BaseException as err:  # surfaced by the test
            self.error = err


@dataclass
class Audit:
    messages: int = 0
    by_status: Counter = field(default_factory=Counter)
    outbox_lines: int = 0
    duplicates: int = 0          # message ids found more than once at the provider
    lost: int = 0                # final-as-sent but not at the provider, or not final at all
    unknown: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"messages {self.messages}, outbox {self.outbox_lines}, duplicates {self.duplicates}, "
                f"lost {self.lost}, unknown {self.unknown}, statuses {dict(self.by_status)}")


def audit_history(world: World, *, outbox: Path | None = None) -> Audit:
    """Outbox (the provider's truth) vs the messages table vs the delivery log, message by message."""
    outbox = outbox or world.outbox
    audit = Audit()
    sent_ids = outbox_ids(outbox)
    audit.outbox_lines = len(sent_ids)
    at_provider = Counter(sent_ids)
    with world.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.text("SELECT id, status, reason FROM messages ORDER BY id")).mappings()]
        log = [dict(r) for r in conn.execute(sa.text(
            "SELECT message_id, event, reason FROM delivery_log WHERE message_id IS NOT NULL ORDER BY id")).mappings()]
    by_message: dict[int, list[dict]] = {}
    for entry in log:
        by_message.setdefault(entry["message_id"], []).append(entry)
    audit.messages = len(rows)
    problems = audit.problems
    for mid, n in at_provider.items():
        if n > 1:
            audit.duplicates += 1
            problems.append(f"message {mid} is {n} times in the outbox")
    known = {str(r["id"]) for r in rows}
    for mid in set(at_provider) - known:
        problems.append(f"outbox has message {mid} which is not in the database")
    for row in rows:
        status, mid = row["status"], row["id"]
        audit.by_status[status] += 1
        if status not in FINAL:
            audit.lost += 1
            problems.append(f"message {mid} ended {status!r}, not in a final state")
            continue
        if status != "sent" and not row["reason"]:
            problems.append(f"message {mid} is {status} without a reason")
        if status == "unknown":
            audit.unknown += 1
        elif status == "sent" and at_provider[str(mid)] == 0:
            audit.lost += 1
            problems.append(f"message {mid} is recorded sent but the provider never got it")
        elif status in ("failed", "skipped", "cancelled") and at_provider[str(mid)]:
            problems.append(f"message {mid} is {status} but the provider has it")
        events = by_message.get(mid, [])
        previous = None
        for entry in events:
            if entry["event"] not in ALLOWED_NEXT.get(previous, set()):
                problems.append(f"message {mid}: {entry['event']!r} after {previous!r} "
                                f"(log: {[e['event'] for e in events]})")
                break
            previous = entry["event"]
        final_event = {"receipt_timeout": "sent", "requeued": "scheduled"}.get(previous, previous)
        if previous is not None and final_event != status:
            problems.append(f"message {mid}: table says {status!r}, its log ends with {previous!r}")
    return audit


def chaos_run(world: World, *, workers: int, contacts: int, waves: int, rounds: int, seed: int,
              finish_timeout: float = 120.0, wave_gap: float = 1.0, sequence: str = "k") -> tuple[Audit, dict]:
    """Enroll ``contacts`` in ``waves`` while a killer restarts random workers ``rounds`` times; then audit.

    Returns the audit and timings: ``recover_seconds`` is from the last kill to every message final.
    ``finish_timeout``: how long the messages may go without progress before the run counts them as stuck.
    """
    rng = random.Random(seed)
    with Fleet(world, workers) as fleet:
        audit, timings = _chaos(world, fleet, Killer(fleet, rounds, rng), contacts=contacts, waves=waves,
                                finish_timeout=finish_timeout, wave_gap=wave_gap, sequence=sequence)
    return audit, timings


def _chaos(world: World, fleet: Fleet, killer: Killer, *, contacts: int, waves: int, finish_timeout: float,
           wave_gap: float, sequence: str) -> tuple[Audit, dict]:
    fleet.start_all()
    started = time.monotonic()
    killer.start()
    try:
        per_wave = max(1, contacts // waves)
        done = 0
        while done < contacts:
            n = min(per_wave, contacts - done)
            add_and_enroll(world, done, n, sequence)
            done += n
            time.sleep(wave_gap)
        while killer.is_alive() and time.monotonic() - killer.progress < HANG:
            killer.join(timeout=1)
        assert not killer.is_alive(), f"the killer thread finished no round for {HANG:.0f}s"
        if killer.error:
            raise killer.error
        finished = wait_until_final(world.engine, finish_timeout, expected=contacts * 3)
        ended = time.monotonic()
    finally:
        killer.done.set()
        codes = fleet.stop_all()  # the killer starts no worker after this; it ends at its next wait
        killer.join(timeout=fleet.term_limit + 30)
    audit = audit_history(world)
    if not finished:
        audit.problems.append(f"messages still not final after {finish_timeout:.0f}s without progress: {dict(statuses(world.engine))}")
    with world.engine.connect() as conn:
        takeovers = dict(conn.execute(sa.text(
            "SELECT event, count(*) FROM delivery_log WHERE reason LIKE '%died%' OR reason LIKE '%expired before%' "
            "GROUP BY event")).all())
    logs = fleet.logs()
    timings = {"kills": fleet.kills, "takeovers": takeovers, "seconds": ended - started,
               "recover_seconds": ended - fleet.last_kill if fleet.last_kill else 0.0, "exit_codes": codes,
               "started_late": killer.started_late, "sigterms": fleet.sigterms, "sigterms_honoured": fleet.honoured,
               "term_codes": dict(fleet.term_codes), "term_limit": fleet.term_limit,
               "slow_ticks": logs.count(" has run for "), "logs": logs}
    return audit, timings
