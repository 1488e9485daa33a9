"""kill -9 of real worker processes, at random moments and at each checkpoint: never twice, never lost.

The providers append to a file that carries our message id, so after a crash the worker can ask
"did this one get out?" — every message must end sent exactly once (or unknown, with a reason).
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from .conftest import PG_URL
from .faults import (Fleet, add_and_enroll, audit_history, chaos_run, kill_world, reset_postgres, statuses, wait_until_final)

needs_pg = pytest.mark.skipif(not PG_URL, reason="FOLLOWUP_TEST_POSTGRES_URL is not set")
SEED = int(os.environ.get("FOLLOWUP_CHAOS_SEED", "20261205"))


@pytest.mark.slow
@needs_pg
def test_random_kills_of_three_workers_on_postgres(tmp_path):
    world = kill_world(tmp_path, reset_postgres(PG_URL))
    audit, timings = chaos_run(world, workers=3, contacts=200, waves=20, rounds=30, seed=SEED)
    print(f"\npostgres chaos: {timings['kills']} kills, {audit.line()}, "
          f"recovered {timings['recover_seconds']:.1f}s after the last kill, takeovers {timings['takeovers']}")
    assert timings['kills'] >= 20
    assert not audit.problems, "\n".join(audit.problems[:30])
    assert audit.messages == 600 and audit.duplicates == 0 and audit.lost == 0
    assert audit.by_status["sent"] + audit.unknown == 600
    assert all(code == 0 for code in timings['exit_codes']), timings['exit_codes']
    assert timings['sigterms'] >= 6 and timings['sigterms_honoured'] == timings['sigterms']


@pytest.mark.slow
def test_random_kills_of_one_worker_on_sqlite(tmp_path):
    world = kill_world(tmp_path, f"sqlite:///{tmp_path}/followup.db")
    audit, timings = chaos_run(world, workers=1, contacts=100, waves=10, rounds=12, seed=SEED)
    print(f"\nsqlite chaos: {timings['kills']} kills, {audit.line()}, takeovers {timings['takeovers']}")
    assert timings['kills'] >= 8
    assert not audit.problems, "\n".join(audit.problems[:30])
    assert audit.messages == 300 and audit.duplicates == 0 and audit.lost == 0
    assert audit.by_status["sent"] + audit.unknown == 300
    assert timings['sigterms_honoured'] == timings['sigterms']


@needs_pg
@pytest.mark.parametrize("point, left_as", [
    ("after_claim", "scheduled"),        # chosen in a transaction that never committed; no provider saw it
    ("before_provider", "sending"),      # committed as sending; the provider was not called
    ("after_provider", "sending"),       # the provider has it; the result was never recorded
])
def test_kill_three_postgres_workers_at_each_checkpoint(tmp_path, point, left_as):
    world = kill_world(tmp_path, reset_postgres(PG_URL), worker={"batch_size": 10})
    add_and_enroll(world, 0, 30)
    with Fleet(world, 3) as fleet:
        markers = [tmp_path / f"paused{i}" for i in range(3)]
        for i in range(3):
            fleet.start(i, pause_at=point, marker=markers[i])
        try:
            deadline = time.monotonic() + 60
            while not any(m.exists() for m in markers) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # let the others reach the checkpoint too, with their own batches
            paused = [i for i, m in enumerate(markers) if m.exists()]
            assert paused, "no worker reached the checkpoint"
            for i in range(3):
                fleet.kill(i)
            left = statuses(world.engine)
            assert left[left_as] >= 10, left
            fleet.start_all()  # fresh workers, no pause: they must take over once the 2 s leases expire
            assert wait_until_final(world.engine, 90, expected=90), statuses(world.engine)
        finally:
            codes = fleet.stop_all(signal.SIGTERM)
    audit = audit_history(world)
    assert not audit.problems, "\n".join(audit.problems[:30])
    assert audit.by_status == {"sent": 90} and audit.duplicates == 0 and audit.outbox_lines == 90
    assert codes == [0, 0, 0]
    taken_over = [r for r in world.log() if r["event"] in ("released", "sent") and r["reason"]
                  and ("died" in r["reason"] or "expired" in r["reason"])]
    if left_as == "scheduled":  # nothing was leased: the fresh workers simply claim them
        assert not taken_over
    else:
        assert len(taken_over) >= 10
