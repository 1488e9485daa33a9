"""A real worker process killed with SIGKILL mid-batch: nothing sent twice, nothing lost."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import World, simple_sequence
from .faults import outbox_ids

FOLLOWUP = str(Path(sys.executable).parent / "followup")
PHONES = [f"0912000000{i}" for i in range(5)]


def start_worker(world: World, pause_at: str | None = None, marker: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "FOLLOWUP_CONFIG": str(world.root / "config")}
    env.pop("FOLLOWUP_PAUSE_AT", None)
    if pause_at:
        env["FOLLOWUP_PAUSE_AT"] = f"{pause_at}:{marker}"
    return subprocess.Popen([FOLLOWUP, "worker", "--once"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the worker never reached the checkpoint")
        time.sleep(0.05)


@pytest.fixture
def file_world(tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    world = World(tmp_path, f"sqlite:///{tmp_path}/followup.db", [simple_sequence("a", after="1h")], settings={
        "send_window": {"start": "00:00", "end": "24:00", "days": "all"},
        "providers": {"sms": [{"name": "sandbox", "type": "file", "path": str(outbox)}],
                      "email": [{"name": "sandbox-mail", "type": "file", "path": str(outbox)}]},
    })
    ids = world.add_contacts(*({"phone": p, "first_name": f"n{i}"} for i, p in enumerate(PHONES)))
    world.enroll("a", *ids)
    world.dispatcher.close()  # this process only watches; the worker processes do the work
    world.outbox = outbox
    return world


@pytest.mark.parametrize("point, status_after_kill, in_outbox", [
    ("after_claim", "scheduled", 0),       # chosen in a transaction that never committed: nothing changed
    ("before_provider", "sending", 0),     # committed as sending, provider not yet called
    ("after_provider", "sending", 5),      # the provider has them, the result was never recorded
])
def test_kill_between_claim_and_send_sends_nothing_twice_and_loses_nothing(file_world, tmp_path, processes, point,
                                                                            status_after_kill, in_outbox):
    marker = tmp_path / "paused"
    proc = processes(start_worker(file_world, point, marker))
    wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    first = file_world.messages(touch="t0")
    assert {m["status"] for m in first} == {status_after_kill}
    assert len(outbox_ids(file_world.outbox)) == in_outbox

    again = processes(start_worker(file_world))
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err.decode()

    ids = outbox_ids(file_world.outbox)
    assert sorted(ids) == sorted(str(m["id"]) for m in first)  # each message exactly once
    assert len(ids) == len(set(ids)) == 5
    assert {m["status"] for m in file_world.messages(touch="t0")} == {"sent"}
    assert {m["status"] for m in file_world.messages(touch="t1")} == {"scheduled"}  # the sequence goes on
    recovered = [r for r in file_world.log(touch="t0") if r["event"] in ("released", "sent") and r["reason"]]
    if status_after_kill == "scheduled":  # nothing was committed, so nothing had to be taken over
        assert recovered == [] and [r["event"] for r in file_world.log(touch="t0")].count("sending") == 5
    else:
        assert len(recovered) == 5 and all("died" in r["reason"] or "lease" in r["reason"] for r in recovered)


def test_a_second_worker_on_the_same_sqlite_file_is_refused(file_world, tmp_path, processes):
    marker = tmp_path / "paused"
    first = processes(start_worker(file_world, "after_claim", marker))
    wait_for(marker, first)
    second = processes(start_worker(file_world))
    _, err = second.communicate(timeout=60)
    assert second.returncode != 0
    assert b"another worker already runs" in err


def test_a_restarted_sqlite_worker_takes_over_everything_in_flight_not_only_a_first_chunk(tmp_path, frozen):
    """A worker keeps several batches at the provider (more than one recovery chunk): all come back at once."""
    import sqlalchemy as sa

    from engine.models import Message

    world = World(tmp_path, f"sqlite:///{tmp_path}/followup.db", [simple_sequence("a", after="1h")],
                  settings={"send_window": {"start": "00:00", "end": "24:00", "days": "all"}})
    n = 1300  # more than one recovery chunk (1,000)
    world.enroll("a", *world.add_contacts(*({"phone": f"0912{i:07d}", "first_name": f"n{i}"} for i in range(n))))
    messages = Message.__table__
    with world.engine.begin() as conn:  # a dead worker's leases: some claimed, some at the provider
        ids = [r[0] for r in conn.execute(sa.select(messages.c.id).where(messages.c.touch_index == 0)
                                          .order_by(messages.c.id))]
        lease = dict(lease_owner="dead", lease_token="t", lease_until=sa.func.datetime("now", "+1 hour"))
        conn.execute(sa.update(messages).where(messages.c.id.in_(ids[:700])).values(status="claimed", **lease))
        conn.execute(sa.update(messages).where(messages.c.id.in_(ids[700:])).values(status="sending", attempt=1, **lease))
    assert world.dispatcher.recover(everything=True) == n
    assert {m["status"] for m in world.messages(touch="t0")} == {"scheduled"}
    assert len(world.log(event="released")) == n
    world.close()
