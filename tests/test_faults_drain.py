"""SIGTERM drains: what is in flight finishes and is recorded, the worker exits 0, a restart sends the rest."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.fakes.httpserver import FakeHttpServer

from .conftest import World, simple_sequence
from .faults import ANYTIME, KAVE_KEY, FakeKavenegar, kavenegar_entry, start_worker, statuses


@pytest.fixture
def slow_panel_world(tmp_path, monkeypatch):
    monkeypatch.setenv("KAVENEGAR_API_KEY", KAVE_KEY)
    fake = FakeKavenegar(delay=0.5)  # every send answers after half a second
    with FakeHttpServer(fake) as server:
        world = World(tmp_path, f"sqlite:///{tmp_path}/followup.db", [simple_sequence("a", after="1h")], settings={
            "send_window": ANYTIME,
            "providers": {"sms": [kavenegar_entry(server.url)],
                          "email": [{"name": "mail", "type": "file", "path": str(tmp_path / "outbox.jsonl")}]},
            "worker": {"batch_size": 8, "concurrency": 4},
        })
        ids = world.add_contacts(*({"phone": f"0912200{i:04d}", "first_name": f"n{i}"} for i in range(24)))
        world.enroll("a", *ids)
        world.dispatcher.close()
        world.fake, world.server = fake, server
        yield world


def test_sigterm_mid_batch_finishes_in_flight_sends_and_exits_0(slow_panel_world, tmp_path, processes):
    world, fake = slow_panel_world, slow_panel_world.fake
    proc = processes(start_worker(world, interval=0.2, log=tmp_path / "worker.log"))
    deadline = time.monotonic() + 60
    while fake.sends < 2 and time.monotonic() < deadline:  # the first batch is at the panel
        assert proc.poll() is None, Path(proc.log_path).read_text()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, Path(proc.log_path).read_text()
    log = Path(proc.log_path).read_text()
    assert "received SIGTERM: finishing what is in flight" in log and "worker stopped cleanly" in log

    left = statuses(world.engine)
    assert not left["claimed"] and not left["sending"], left
    t0 = world.messages(touch="t0")
    sent = {world.reference(m["id"]) for m in t0 if m["status"] == "sent"}
    assert sent and set(fake.accepted) == sent  # everything the panel took is recorded, nothing more
    assert len(sent) < 24, "the drain should stop before the whole backlog"
    assert {m["status"] for m in t0 if world.reference(m["id"]) not in sent} == {"scheduled"}

    again = processes(start_worker(world, once=True, log=tmp_path / "worker2.log"))
    assert again.wait(timeout=120) == 0, Path(again.log_path).read_text()
    assert {m["status"] for m in world.messages(touch="t0")} == {"sent"}
    assert len(fake.accepted) == len(set(fake.accepted)) == 24


def test_sigint_while_idle_exits_0_at_once(slow_panel_world, tmp_path, processes):
    world = slow_panel_world
    world.fake.always = None
    proc = processes(start_worker(world, interval=30, log=tmp_path / "worker.log"))
    deadline = time.monotonic() + 60
    while b"started: ticking" not in Path(proc.log_path).read_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    while world.fake.sends < 24 and time.monotonic() < deadline:  # the first tick drains everything
        time.sleep(0.05)
    time.sleep(0.5)
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert time.monotonic() - began < 10  # does not wait for the next 30 s tick
    assert {m["status"] for m in world.messages(touch="t0")} == {"sent"}
