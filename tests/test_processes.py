"""tests/processes.py and bench.faults.Fleet: a process a test starts does not outlive it."""
from __future__ import annotations

import subprocess
import sys

import pytest

from bench.faults import Fleet, kill_world

from . import processes as procs

SLEEPER = [sys.executable, "-c", "import subprocess, sys, time; "
           "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); time.sleep(120)"]


def test_descendants_lists_children_and_grandchildren_and_kill_ends_them_all(processes):
    parent = processes(subprocess.Popen(SLEEPER))
    assert procs.still_running({parent.pid: ""}, timeout=0)
    found = {}
    for _ in range(200):  # until the child has started its own child
        found = {pid: cmd for pid, cmd in procs.descendants().items() if "time.sleep(120)" in cmd}
        if len(found) == 2:
            break
        procs.still_running({parent.pid: ""}, timeout=0.05)
    assert parent.pid in found and len(found) == 2, found
    procs.kill({parent.pid: found[parent.pid]})
    assert procs.still_running(found, timeout=10) == {}
    assert parent.pid not in procs.descendants()


def test_a_stopped_fleet_starts_nothing_and_closing_it_ends_every_worker(tmp_path):
    world = kill_world(tmp_path, f"sqlite:///{tmp_path}/followup.db")
    with Fleet(world, 1) as fleet:
        first = fleet.start(0)
        fleet.restart(0)  # SIGKILLs the first, starts a second
        second = fleet.procs[0]
        assert first.poll() is not None and second.poll() is None
        fleet.stopped = True  # as after stop_all: a killer thread's restart must not start a worker now
        with pytest.raises(RuntimeError, match="the fleet is stopped"):
            fleet.start(0)
    assert second.poll() is not None and len(fleet.all) == 2
    world.engine.dispose()
