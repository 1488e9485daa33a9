"""The processes a test started: found through /proc, ended by fixtures, so none outlives its test.

``tests/conftest.py`` compares this process's descendants before and after each test and fails a test
(in its teardown, after killing them) that leaves one running; at the end of the session it does the
same for the whole session. Tests end what they start themselves, with the ``processes`` fixture, a
``finally`` or a context manager (``bench.faults.Fleet``); this is the check that they did.

A fixture of a wider scope that starts processes in the background while tests go on gives them
``OUTLIVES_A_TEST`` in their environment: the check after each test leaves them to that fixture (the check
at the end of the session does not).
"""
from __future__ import annotations

import os
import signal
import time

#: an environment variable that marks a process started by a module- or session-scoped fixture
OUTLIVES_A_TEST = "FOLLOWUP_TEST_OUTLIVES_A_TEST"


def _children(pid: int) -> list[int]:
    """Direct children of ``pid``, whichever of its threads started them."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                found.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead and waiting to be reaped, is not running)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:].split()[0] not in (b"Z", b"X")


def command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def outlives_a_test(pid: int) -> bool:
    """True when ``pid`` was started with :data:`OUTLIVES_A_TEST` in its environment."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return f"{OUTLIVES_A_TEST}=1".encode() in fh.read().split(b"\0")
    except OSError:
        return False


def descendants(root: int | None = None, *, besides: set[int] = frozenset()) -> dict[int, str]:
    """pid → command line of every running descendant of ``root`` (this process by default), leaving out the
    processes in ``besides`` and what they started (a browser's own helper processes, say)."""
    found: dict[int, str] = {}
    frontier = [root or os.getpid()]
    while frontier:
        for child in _children(frontier.pop()):
            if child not in found and child not in besides and _alive(child):
                found[child] = command(child)
                frontier.append(child)
    return found


def still_running(pids: dict[int, str], timeout: float, unless=lambda pid: False) -> dict[int, str]:
    """Of ``pids``, those still running after up to ``timeout`` seconds (a process signalled a moment ago
    may still be exiting), leaving out those for which ``unless(pid)`` is true at any check."""
    deadline = time.monotonic() + timeout
    left = {pid: cmd for pid, cmd in pids.items() if _alive(pid) and not unless(pid)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {pid: cmd for pid, cmd in left.items() if _alive(pid) and not unless(pid)}
    return left


def kill(pids: dict[int, str]) -> None:
    """SIGKILL each of ``pids`` (and their descendants); reap those that are our own children."""
    for pid in list(pids):
        pids = {**descendants(pid), **pids}
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:  # not our child (its parent reaps it), or a Popen already reaped it
            pass

