"""One tick's instructions, counted by valgrind's callgrind: a CPU cost that the machine's noise does not move.

On the shared 2-core machines these benches run on, the CPU time of one whole tick moves by 10–20% from one
run to the next (the host's other tenants, its caches), and an A/B of two configurations a few percent apart
needs more runs than a bench has time for. callgrind counts the instructions the process executes, in every
thread: the same count for the same work whatever else the machine is doing. It counts user space only: the
kernel's time (system calls, page faults) and the cost of cache misses are not in it.

:func:`start` runs one tick of an already built world (its config folder, its database filled) in a child
process under callgrind; :func:`finish` waits for it and returns (instructions, messages sent). The child
zeroes the counts just before the tick and dumps them just after, at two marker calls (``os.getppid`` and
``os.getpgrp``, which nothing else in a tick calls), so the counts are the tick's alone, not the imports' or
the set-up's. About 60 times slower than the tick itself. :func:`count_each` counts a tick in each of a few
worlds, side by side where each has a database of its own. With ``swap``, the child runs the tick with that
:mod:`bench.plain_ab` optimisation swapped for its other version.

    python -m bench.callgrind CONFIG_DIR [--swap NAME]    (the child: one tick of the world in CONFIG_DIR)
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

#: the C functions of the marker calls around the tick (CPython's ``os.getppid`` and ``os.getpgrp``)
_ZERO_AT, _DUMP_AT = "os_getppid*", "os_getpgrp*"


def available() -> bool:
    return shutil.which("valgrind") is not None


@dataclass
class Counting:
    """A tick under callgrind, under way."""

    proc: subprocess.Popen
    out: Path


def start(config_dir: Path, swap: str | None = None) -> Counting:
    """Start counting one tick of the world in ``config_dir`` (its database as the config names it), with the
    :mod:`bench.plain_ab` swap named ``swap`` installed."""
    out = Path(tempfile.mkdtemp(prefix="callgrind-")) / "tick.out"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    cmd = ["valgrind", "--tool=callgrind", f"--zero-before={_ZERO_AT}", f"--dump-before={_DUMP_AT}",
           f"--callgrind-out-file={out}", sys.executable, "-m", "bench.callgrind", str(config_dir),
           *(["--swap", swap] if swap else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=Path(__file__).resolve().parents[1])
    return Counting(proc, out)


def finish(counting: Counting, timeout: float = 1800) -> tuple[int, int]:
    """(instructions of the tick, messages it sent); raises RuntimeError when the count could not be taken."""
    try:
        stdout, stderr = counting.proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        counting.proc.kill()
        counting.proc.communicate()
        raise RuntimeError(f"the tick under callgrind took over {timeout:.0f}s") from None
    try:
        if counting.proc.returncode != 0:
            raise RuntimeError(f"the tick under callgrind failed: {stderr.strip()[-500:]}")
        dump = counting.out.with_name(counting.out.name + ".1")  # the dump taken at the second marker
        if not dump.exists():
            raise RuntimeError("callgrind found no marker call (this Python's symbols?): nothing counted")
        summary = next(line for line in dump.read_text().splitlines() if line.startswith("summary:"))
        sent = json.loads(stdout.strip().splitlines()[-1])["sent"]
        return int(summary.split()[1]), sent
    finally:
        shutil.rmtree(counting.out.parent, ignore_errors=True)


def count(config_dir: Path, swap: str | None = None) -> tuple[int, int]:
    """:func:`start` and :func:`finish`."""
    return finish(start(config_dir, swap))


def count_each(worlds: Sequence[Callable[[], tuple[Path, str | None]]], n: int, *, side_by_side: bool) -> list[int]:
    """The instructions of one tick of ``n`` in each of ``worlds``, in order. A world is a function that builds
    it and returns its config folder and the swap to install (or None). ``side_by_side`` when each world has a
    database of its own (SQLite files); else each is built just before its count (PostgreSQL's one database)."""
    if side_by_side:
        counting = [start(*world()) for world in worlds]
        counts = [finish(c) for c in counting]
    else:
        counts = [count(*world()) for world in worlds]
    sent = [s for _, s in counts]
    assert all(s == n for s in sent), f"counted ticks sent {sent} of {n}"
    return [c for c, _ in counts]


def _child(config_dir: Path, swap: str | None) -> None:
    from engine.config import load_config
    from engine.db import make_engine

    from .common import count_status, make_dispatcher

    if swap:
        from .plain_ab import SWAPS

        one = next(s for s in SWAPS if s.name == swap)
        one.install(one.alternative)  # before the engine is loaded, as bench.plain_ab's ticks do
    config = load_config(config_dir)
    engine = make_engine(config.settings.database_url)
    dispatcher = make_dispatcher(config, engine)
    os.getppid()  # callgrind zeroes its counts here
    dispatcher.tick()
    os.getpgrp()  # and dumps them here
    sent = count_status(engine).get("sent", 0)
    dispatcher.close()
    engine.dispose()
    print(json.dumps({"sent": sent}))


if __name__ == "__main__":
    import argparse

    from .plain_ab import SWAPS

    parser = argparse.ArgumentParser(description="One tick of the world in CONFIG_DIR, as the child of start() "
                                                 "under callgrind (its database filled beforehand).")
    parser.add_argument("config_dir", type=Path)
    parser.add_argument("--swap", choices=[s.name for s in SWAPS],
                        help="run the tick with this bench.plain_ab optimisation swapped for its other version")
    args = parser.parse_args()
    _child(args.config_dir, args.swap)
