"""The worker never hangs: every wait has a bound, a slow tick says where it is, SIGTERM always ends it.

* recovery asks the providers about a dead worker's messages together and stops asking when told to;
* on PostgreSQL a lock held by another session fails the tick after ``worker.lock_timeout``;
* the watchdog names the phase of a tick that runs past ``worker.tick_warn_seconds``;
* SIGTERM ends a worker stuck in a provider call within ``worker.drain_seconds``.
"""
from __future__ import annotations

import logging
import select
import signal
import socket
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.clock import now
from engine.dispatch import Dispatcher
from engine.timer import Immediate
from engine.models import Message
from engine.watchdog import Phases, Watchdog
from engine.worker import EXIT_STUCK, _safe_tick, worker_engine

from .conftest import PG_URL, World, simple_sequence
from .faults import ANYTIME, KAVE_KEY, kavenegar_entry, reset_postgres, start_worker, statuses

needs_pg = pytest.mark.skipif(not PG_URL, reason="FOLLOWUP_TEST_POSTGRES_URL is not set")
messages = Message.__table__


def enrolled_world(root: Path, url: str, n: int, **settings) -> World:
    world = World(root, url, [simple_sequence("a", after="1h")], settings={"send_window": ANYTIME, **settings})
    world.enroll("a", *world.add_contacts(*({"phone": f"0912600{i:04d}", "first_name": f"n{i}"} for i in range(n))))
    return world


def left_by_a_dead_worker(world: World) -> list[int]:
    """Every first touch `sending` under an expired lease of a worker that is gone; returns their ids."""
    with world.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(sa.select(messages.c.id).where(messages.c.touch_index == 0))]
        conn.execute(sa.update(messages).where(messages.c.id.in_(ids)).values(
            status="sending", attempt=1, lease_owner="dead", lease_token="t",
            lease_until=now() - timedelta(minutes=1)))
    return ids


# -- recovery ----------------------------------------------------------------------------------------
def test_recovery_asks_the_providers_together_not_one_by_one(tmp_path):
    """Four questions that each wait for the other three: answered only if they are asked at once."""
    world = enrolled_world(tmp_path, f"sqlite:///{tmp_path}/followup.db", 4)
    ids = left_by_a_dead_worker(world)
    together = threading.Barrier(4, timeout=20)

    def lookup_anywhere(channel, message_id):
        together.wait()  # one-by-one questions break the barrier after 20 s
        return False, None, None

    world.dispatcher.sender.lookup_anywhere = lookup_anywhere
    assert world.dispatcher.recover() == 4
    assert {m["status"] for m in world.messages(touch="t0")} == {"scheduled"}
    assert sorted(r["message_id"] for r in world.log(event="released")) == sorted(ids)
    world.close()


def test_recovery_stops_asking_when_the_worker_stops(tmp_path):
    """A provider that never answers: SIGTERM during recovery ends it; the rest stays leased, not lost."""
    world = enrolled_world(tmp_path, f"sqlite:///{tmp_path}/followup.db", 3, worker={"concurrency": 2})
    left_by_a_dead_worker(world)
    asked, never = threading.Semaphore(0), threading.Event()

    def lookup_anywhere(channel, message_id):
        asked.release()
        never.wait(60)  # a provider that does not answer
        return None, None, None

    world.dispatcher.sender.lookup_anywhere = lookup_anywhere
    recovering = threading.Thread(target=world.dispatcher.recover)
    recovering.start()
    try:
        assert asked.acquire(timeout=30)
        world.dispatcher.stop()
        recovering.join(timeout=30)
        assert not recovering.is_alive(), "recovery went on asking after the worker was told to stop"
    finally:
        never.set()
        recovering.join()
    t0 = world.messages(touch="t0")
    assert {m["status"] for m in t0} == {"sending"}  # not settled here: left to the next owner of the lease
    assert {m["lease_owner"] for m in t0} == {world.dispatcher.worker_id}
    world.close()


# -- PostgreSQL: a lock held elsewhere ----------------------------------------------------------------
@needs_pg
@pytest.mark.postgres
@pytest.mark.parametrize("lock", [
    "LOCK TABLE messages IN EXCLUSIVE MODE",                 # e.g. a migration; SKIP LOCKED does not skip it
    "SELECT id FROM messages WHERE touch = 't1' FOR UPDATE",  # the next touches, which recording the sends updates
])
def test_a_lock_held_by_another_session_fails_the_tick_after_lock_timeout(tmp_path, caplog, lock):
    url = reset_postgres(PG_URL, "worker_hang")
    world = enrolled_world(tmp_path, url, 3, worker={"lock_timeout": 1})
    world.dispatcher.close()
    dispatcher = Dispatcher(world.config, world.providers, engine=worker_engine(world.config.settings),
                            sleep=world.sleeps.append,
                            timer=Immediate(world.sleeps.append))
    holder = sa.create_engine(url, poolclass=sa.pool.NullPool).connect()
    holder.begin()
    holder.exec_driver_sql(lock)  # held until rolled back, as by a session whose client is gone
    tick = threading.Thread(target=_safe_tick, args=[dispatcher])
    try:
        with caplog.at_level(logging.ERROR, logger="followup.worker"):
            tick.start()
            tick.join(timeout=60)
            assert not tick.is_alive(), "the tick is still waiting for the lock"
    finally:
        holder.rollback()
        holder.close()
        tick.join()
    failed = [r for r in caplog.records if r.getMessage().startswith("tick failed")]
    assert failed and "lock timeout" in str(failed[0].exc_info[1])
    dispatcher.close()


# -- the watchdog -----------------------------------------------------------------------------------
class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_tick_stuck_at_the_provider_is_logged_with_its_phase(tmp_path, caplog):
    world = enrolled_world(tmp_path, f"sqlite:///{tmp_path}/followup.db", 1)
    clock = FakeClock()
    world.dispatcher.phases = Phases(clock)
    watchdog = Watchdog(world.dispatcher.phases, limit=60)
    at_provider, answer = threading.Event(), threading.Event()
    send = world.sms.send

    def slow_send(message):
        at_provider.set()
        answer.wait(60)
        return send(message)

    world.sms.send = slow_send
    tick = threading.Thread(target=world.dispatcher.tick)
    tick.start()
    try:
        assert at_provider.wait(30)
        # the tick's thread may still be looking for a next batch ('claim') before it waits on the provider
        waited = time.monotonic() + 30
        while [r.phase for r in world.dispatcher.phases.running()] != ["send"] and time.monotonic() < waited:
            time.sleep(0.01)
        with caplog.at_level(logging.WARNING, logger="followup.worker"):
            clock.now += 30
            assert watchdog.check() == []  # under the limit: nothing said
            clock.now += 45
            late = watchdog.check()
            assert watchdog.check() == []  # said once per limit, not at every look
            clock.now += 60
            again = watchdog.check()
    finally:
        answer.set()
        tick.join(timeout=60)
    assert [(r.job, r.phase) for r in late + again] == [("tick", "send"), ("tick", "send")]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and "the tick has run for 75s; it is in phase 'send'" in warnings[0]
    assert world.dispatcher.phases.running() == []  # the tick ended: nothing left to watch
    world.close()


# -- SIGTERM --------------------------------------------------------------------------------------
@pytest.fixture
def silent_panel():
    """A TCP port that takes connections and requests and never answers (the kernel accepts for it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock


def test_sigterm_ends_a_worker_stuck_in_a_provider_call_within_drain_seconds(tmp_path, silent_panel, monkeypatch,
                                                                               processes):
    monkeypatch.setenv("KAVENEGAR_API_KEY", KAVE_KEY)
    host, port = silent_panel.getsockname()
    world = enrolled_world(tmp_path, f"sqlite:///{tmp_path}/followup.db", 1,
                           providers={"sms": [kavenegar_entry(f"http://{host}:{port}", timeout=600)],
                                      "email": [{"name": "mail", "type": "memory"}]},
                           worker={"drain_seconds": 2})
    world.dispatcher.close()
    proc = processes(start_worker(world, interval=0.2, log=tmp_path / "worker.log"))
    try:
        held = []  # open connections, each with its request; the delivery poll asks the panel too
        while not any(b"/sms/send.json" in request for _, request in held):
            ready, _, _ = select.select([silent_panel], [], [], 60)
            assert ready, Path(proc.log_path).read_text()
            conn, _ = silent_panel.accept()
            held.append((conn, conn.recv(65536)))  # the request is out; no answer will come
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        for conn, _ in held:
            conn.close()
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the worker was still running 60 s after SIGTERM with drain_seconds 2:\n"
                             + Path(proc.log_path).read_text()) from None
    log = Path(proc.log_path).read_text()
    assert code == EXIT_STUCK, log
    assert "did not stop within 2s of the signal" in log and "in phase 'send'" in log, log
    assert statuses(world.engine)["sending"] == 1  # left to recovery, which asks the panel by our id
