"""Micro-optimisations against their plain versions, each measured on whole ticks (A/B).

One tick of N due messages as in :mod:`bench.bookkeeping` (the memory provider, the worker's JSON log lines
to /dev/null, a fresh database per run: a copy of one prepared SQLite file, or a PostgreSQL database built
again), run with the engine as it is (A) and with one optimisation swapped for its alternative (B). Each
optimisation is swapped on its own.

Judged on instructions: one tick of each, A and B, is counted by valgrind's callgrind (:mod:`bench.callgrind`),
every thread, the tick alone. An optimisation is worth keeping when the plain version's tick takes over 3% more
instructions. The count of the same tick moves by about 1.5% (the threads' interleaving; see the A/A
``control``), while the CPU time of a whole tick moves by 10–20% from one run to the next on these shared
machines, which made a time-based verdict at 3% a coin toss. The count leaves out the kernel's time and cache
misses.

Shown beside it, timed: A B, B A, ... for ``--rounds`` rounds, the median over the rounds of plain time /
optimised time for the tick's wall and CPU time (all threads), with quartiles and extremes; and each
optimisation's own calls of one tick run again with each version, their difference set against the median
CPU time of the optimised ticks. Without valgrind (or with ``--no-count``) the verdict is on these: a median
CPU gain over 3%, a gain in the lower quartile of the rounds, and replayed calls saving over 3% of the tick.

Before the runs, one untimed tick records the calls each optimisation sees, and both versions are run on
them: their outputs must be the same to the byte.

    python -m bench.plain_ab [-n 4000] [--rounds 7] [--only control log_lines render views sandbox log_insert]
                             [--no-count] [--postgres URL]
"""
from __future__ import annotations

import argparse
import gc
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any, Callable

from . import callgrind
from .common import (MEMORY, count_status, info, make_dispatcher, median, python_speed, result, setup_world,
                     write_config)

#: the gain over which an optimisation is kept (plain time / optimised time - 1)
KEEP_OVER = 0.03


# -- the alternatives ---------------------------------------------------------------------------
def plain_log_lines(rows: list[tuple]) -> str:
    """The delivery log's JSON lines, one ``json`` encode of each row."""
    from datetime import datetime

    from engine.journal import _JSON, LOG_FIELDS
    from engine.text import mask_address

    def line(row: tuple) -> str:
        data = dict(zip(LOG_FIELDS[:-1], row))  # the worker's name is the line's source, not part of it
        if isinstance(data["at"], datetime):
            data["at"] = data["at"].isoformat().replace("+00:00", "Z")
        if data["reason"] is not None:
            data["reason"] = mask_address(data["reason"])
        return _JSON.encode(data)

    return "\n".join(line(row) for row in rows)


def plain_render_text(self, name: str, context: dict[str, Any]) -> str:
    """``Renderer._render_text`` as Jinja's ``Template.render``: the globals merged from their ``ChainMap`` for
    every call."""
    return self._get(self.text_env, name).render(context)


def views_getattr_over(generic: Callable) -> Callable:
    """``_Sandbox.getattr`` taking a short path for the template views: none of the sandbox's generic checks
    (a dozen type tests, a ``str.format`` wrapper), only the rule that no underscore name is reachable."""
    from engine.templates import _VIEWS

    def getattr_(self, obj: Any, attribute: str) -> Any:
        if type(obj) in _VIEWS and not attribute.startswith("_"):
            try:
                return getattr(obj, attribute)
            except AttributeError:
                return self.undefined(obj=obj, name=attribute)
        return generic(self, obj, attribute)
    return getattr_


def shared_views() -> tuple:
    """The sequence and touch views made once for all the messages of a touch (``lru_cache``)."""
    from engine.templates import SequenceView, TouchView

    return lru_cache(maxsize=256)(SequenceView), lru_cache(maxsize=256)(TouchView)


def plain_sqlite_log_insert(conn: Any, rows: list[tuple]) -> None:
    """The SQLite log insert converting every time value as it is bound."""
    from engine.store import driver, log

    if not rows:
        return
    for start in range(0, len(rows), log.LOG_ROWS_PER_INSERT):
        chunk = rows[start:start + log.LOG_ROWS_PER_INSERT]
        params = [driver.sqlite_text(v) if isinstance(v, datetime) else v for v in chain.from_iterable(chunk)]
        driver.run(conn, log._INSERT_LOG + ", ".join([log._LOG_ROW] * len(chunk)), params)
    if log.logger.isEnabledFor(logging.INFO):
        log.logger.info(log.log_lines(rows))


@dataclass
class Swap:
    """One optimisation: where the engine keeps its version, the alternative, and what to record to compare."""

    name: str
    what: str
    owner: Callable[[], Any]  # the module or class holding the engine's version
    attrs: tuple[str, ...]  # its names there
    alternative: tuple  # what to put under those names instead
    alternative_is_plain: bool
    sqlite_only: bool = False

    def install(self, values: tuple) -> tuple:
        """Put ``values`` under the swap's names; returns what was there."""
        owner = self.owner()
        before = tuple(owner.__dict__[attr] for attr in self.attrs)
        for attr, value in zip(self.attrs, values):
            setattr(owner, attr, value)
        return before

    def versions(self) -> tuple[tuple, tuple]:
        """(the engine's version, the alternative), each as the values under the swap's names."""
        return tuple(self.owner().__dict__[attr] for attr in self.attrs), self.alternative

    def same(self, recorded: dict[str, list]) -> int:
        """Run both versions on the recorded calls; raise unless every output is the same. How many compared."""
        mine, other = (_CALLS[self.name](self, version, recorded) for version in self.versions())
        assert mine == other, f"{self.name}: the two versions give different outputs"
        return len(mine)

    def replay(self, recorded: dict[str, list], times: int = 5) -> tuple[float, float]:
        """The recorded calls run again with each version, in turn, ``times`` times: the best seconds of the
        (optimised, plain) versions."""
        best = {}
        for _ in range(times):
            for version, plain in zip(self.versions(), (not self.alternative_is_plain, self.alternative_is_plain)):
                gc.collect()
                start = time.process_time()
                _CALLS[self.name](self, version, recorded)
                took = time.process_time() - start
                best[plain] = min(best.get(plain, took), took)
        return best[False], best[True]


def _owner(module: str, cls: str | None = None) -> Callable[[], Any]:
    def get() -> Any:
        import importlib

        mod = importlib.import_module(module)
        return getattr(mod, cls) if cls else mod
    return get


SWAPS = [
    Swap("control", "A/A: nothing swapped, the same code on both sides (the bench's own bias and noise)",
         _owner("engine.store.log"), (), (), True),
    Swap("log_lines", "the delivery log's JSON lines built from a per-batch form with blanks",
         _owner("engine.store.log"), ("log_lines",), (plain_log_lines,), True),
    Swap("render", "Renderer._render_text calling Jinja's root render function with a merged globals dict",
         _owner("engine.templates", "Renderer"), ("_render_text",), (plain_render_text,), True),
    Swap("views", "the sequence and touch views shared by a touch's messages (lru_cache)",
         _owner("engine.render"), ("SequenceView", "TouchView"), shared_views(), False),
    Swap("sandbox", "the sandbox's getattr taking a short path for the template views",
         _owner("engine.templates", "_Sandbox"), ("getattr",),
         (views_getattr_over(_owner("engine.templates", "_Sandbox")().__dict__["getattr"]),), False),
    Swap("log_insert", "the SQLite log insert converting each distinct time once per statement",
         _owner("engine.store.log"), ("_insert_log",), (plain_sqlite_log_insert,), True, sqlite_only=True),
]


# -- recording and comparing ----------------------------------------------------------------------
def _record(recorded: dict[str, list]) -> list[Callable[[], None]]:
    """Wrap the engine's versions so that their calls are kept; returns the undos."""
    from engine.store import log
    from engine.templates import Renderer

    undos = []
    for owner, attr, key in ((log, "log_lines", "log_lines"), (Renderer, "_render_text", "render"),
                             (log, "_insert_log", "log_insert")):
        real = owner.__dict__[attr]
        recorded[key] = []

        def wrapped(*args, _real=real, _key=key):
            recorded[_key].append(args)
            return _real(*args)
        setattr(owner, attr, wrapped)
        undos.append(lambda owner=owner, attr=attr, real=real: setattr(owner, attr, real))
    return undos


def _log_lines_calls(swap: Swap, version: tuple, recorded: dict[str, list]) -> list:
    return [version[0](rows) for (rows,) in recorded["log_lines"]]


def _render_calls(swap: Swap, version: tuple, recorded: dict[str, list]) -> list:
    return [version[0](renderer, name, context) for renderer, name, context in recorded["render"]]


def _views_calls(swap: Swap, version: tuple, recorded: dict[str, list]) -> list:
    """Each recorded render again with its sequence and touch views made by ``version``."""
    from engine.templates import Renderer

    render = Renderer.__dict__["_render_text"]
    sequence, touch = version
    out = []
    for renderer, name, context in recorded["render"]:
        s, t = context["sequence"], context["touch"]
        views = {"sequence": sequence(s.name, s.description), "touch": touch(t.name, t.channel, t.index)}
        out.append((views, render(renderer, name, {**context, **views})))
    return out


def _sandbox_calls(swap: Swap, version: tuple, recorded: dict[str, list]) -> list:
    from engine.templates import Renderer

    render = Renderer.__dict__["_render_text"]
    before = swap.install(version)
    try:
        return [render(renderer, name, context) for renderer, name, context in recorded["render"]]
    finally:
        swap.install(before)


def _log_insert_calls(swap: Swap, version: tuple, recorded: dict[str, list]) -> list:
    """The statements and parameters of each recorded insert, on a SQLite connection that runs none."""
    import sqlalchemy as sa

    from engine.store import driver

    engine = sa.create_engine("sqlite://")
    runs: list[tuple] = []
    real_run = driver.run
    driver.run = lambda conn, sql, params: runs.append((sql, list(params)))
    try:
        with engine.connect() as conn:
            for _, rows in recorded["log_insert"]:
                version[0](conn, rows)
    finally:
        driver.run = real_run
        engine.dispose()
    return runs


_CALLS = {"log_lines": _log_lines_calls, "render": _render_calls, "views": _views_calls, "sandbox": _sandbox_calls,
          "log_insert": _log_insert_calls}


# -- the runs -------------------------------------------------------------------------------------
class World:
    """A prepared world: each :meth:`tick` runs one tick on a fresh copy of its database."""

    def __init__(self, root: Path, url: str | None, n: int):
        self.root, self.n, self.pg = root, n, url
        self.url = url or f"sqlite:///{root}/run.db"
        self.config, engine = setup_world(root / "world", self.url, sms=MEMORY, contacts=n)
        engine.dispose()
        if not url:
            shutil.copy(root / "run.db", root / "prepared.db")

    def fresh(self):
        from engine.config import load_config
        from engine.db import make_engine

        if self.pg:
            return setup_world(self.root / "world", self.url, sms=MEMORY, contacts=self.n)
        for suffix in ("", "-wal", "-shm"):
            (self.root / f"run.db{suffix}").unlink(missing_ok=True)
        shutil.copy(self.root / "prepared.db", self.root / "run.db")
        return load_config(self.config.dir), make_engine(self.url)

    def copy(self, name: str) -> Path:
        """A config folder of its own over a fresh copy of the prepared database, for a child process (SQLite);
        on PostgreSQL the one database built again. Returns the config folder."""
        if self.pg:
            config, engine = self.fresh()
            engine.dispose()
            return config.dir
        for suffix in ("", "-wal", "-shm"):
            (self.root / f"{name}.db{suffix}").unlink(missing_ok=True)
        shutil.copy(self.root / "prepared.db", self.root / f"{name}.db")
        return write_config(self.root / name, f"sqlite:///{self.root}/{name}.db", sms=MEMORY)

    def tick(self) -> tuple[float, float, int]:
        """One tick: (wall seconds, CPU seconds, messages sent)."""
        config, engine = self.fresh()
        dispatcher = make_dispatcher(config, engine)
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        dispatcher.tick()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        sent = count_status(engine).get("sent", 0)
        dispatcher.close()
        engine.dispose()
        return wall, cpu, sent


def ab(world: World, swap: Swap, rounds: int) -> list[tuple[float, float, float]]:
    """``rounds`` pairs of ticks, A (the engine as it is) and B (``swap``'s alternative), A first in odd rounds
    and B first in even ones (A B B A A B ...): the (wall, CPU) ratios of plain / optimised of each pair, and
    the optimised tick's CPU seconds."""
    ratios = []
    for k in range(rounds):
        times = {}
        for side in ("A", "B") if k % 2 == 0 else ("B", "A"):
            before = swap.install(swap.alternative) if side == "B" else None
            try:
                wall, cpu, sent = world.tick()
            finally:
                if before is not None:
                    swap.install(before)
            assert sent == world.n, f"{side}: {sent} of {world.n} sent"
            times[side] = (wall, cpu)
        plain, tricked = (times["B"], times["A"]) if swap.alternative_is_plain else (times["A"], times["B"])
        ratios.append((plain[0] / tricked[0], plain[1] / tricked[1], tricked[1]))
        info(f"{swap.name} round {k + 1}: A {times['A'][0]:.2f}s wall {times['A'][1]:.2f}s CPU, "
             f"B {times['B'][0]:.2f}s wall {times['B'][1]:.2f}s CPU")
    return ratios


def instructions(world: World, swap: Swap) -> tuple[int, int] | None:
    """One tick's instructions with the engine's version (A) and with ``swap``'s other version (B), counted by
    callgrind (:mod:`bench.callgrind`): (plain, optimised); None without valgrind. On SQLite both are counted
    side by side, each on its own copy of the prepared database; PostgreSQL's one database is built again for
    the second."""
    if not callgrind.available():
        return None
    a, b = callgrind.count_each([lambda: (world.copy("count-A"), None), lambda: (world.copy("count-B"), swap.name)],
                                world.n, side_by_side=not world.pg)
    return (b, a) if swap.alternative_is_plain else (a, b)


def quartiles(ratios: list[float]) -> tuple[float, float, float]:
    from .common import pct

    return pct(ratios, 0.25), median(ratios), pct(ratios, 0.75)


def verdict(ratios: list[float]) -> bool:
    """Is the optimisation worth keeping: a median gain over 3%, and a gain in three rounds of four."""
    low, mid, _ = quartiles(ratios)
    return mid - 1 > KEEP_OVER and low > 1


def spread(ratios: list[float]) -> str:
    low, mid, high = quartiles(ratios)
    return f"{mid:.3f} (quartiles {low:.3f}..{high:.3f}, all {min(ratios):.3f}..{max(ratios):.3f})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=4000)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--only", nargs="*", help=f"of: {', '.join(s.name for s in SWAPS)}")
    p.add_argument("--no-count", dest="count", action="store_false",
                   help="judge on CPU time only, without counting instructions under valgrind")
    p.add_argument("--postgres", default="", help="run on this PostgreSQL database (rebuilt for each tick) "
                                                  "instead of SQLite")
    args = p.parse_args()
    swaps = [s for s in SWAPS if (not args.only or s.name in args.only) and not (args.postgres and s.sqlite_only)]
    db = "postgresql" if args.postgres else "sqlite"
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp), args.postgres or None, args.n)
        recorded: dict[str, list] = {}
        undos = _record(recorded)
        try:
            world.tick()
        finally:
            for undo in undos:
                undo()
        replayed = {}
        for swap in (s for s in swaps if s.attrs):
            info(f"{swap.name}: the same output from both versions on {swap.same(recorded)} calls of one tick")
            replayed[swap.name] = swap.replay(recorded)
        for swap in swaps:
            speed = python_speed()
            load = open("/proc/loadavg").read().split()[0]
            ratios = ab(world, swap, args.rounds)
            walls, cpus = [r[0] for r in ratios], [r[1] for r in ratios]
            timed = verdict(cpus)
            replay = ""
            if swap.name in replayed:
                optimised, plain = replayed[swap.name]
                tick_cpu = median([r[2] for r in ratios])
                replay = (f"; one tick's own calls replayed: optimised {optimised * 1000:.1f} ms, plain "
                          f"{plain * 1000:.1f} ms CPU, {(plain - optimised) / tick_cpu:+.1%} of the optimised "
                          f"tick's median {tick_cpu:.2f}s")
                timed = timed and (plain - optimised) / tick_cpu > KEEP_OVER
            counted = instructions(world, swap) if args.count else None
            if counted:
                plain_i, optimised_i = counted
                keep = plain_i / optimised_i - 1 > KEEP_OVER
                figure = (f"instructions {plain_i / optimised_i - 1:+.1%} (plain {plain_i / args.n / 1000:.0f}k, "
                          f"optimised {optimised_i / args.n / 1000:.0f}k a message; callgrind, judged on these); "
                          f"CPU {spread(cpus)}")
                rule = "the optimised version only where it saves over 3% of a tick's instructions"
            else:
                keep = timed
                figure = f"CPU {spread(cpus)}"
                rule = ("the optimised version only where its CPU gain is > 3% as the median, > 0 in the lower "
                        "quartile, and > 3% of the tick replayed")
            in_code = swap.alternative_is_plain  # the engine has the optimised version
            result(f"plain_ab[{db}][{swap.name}]",
                   f"plain / optimised whole tick of {args.n}: {figure}, wall {spread(walls)}, the medians of "
                   f"{args.rounds} interleaved rounds{replay}; {swap.what}; machine {speed:.0f}M loop steps/s, load "
                   f"{load}" + ("" if not swap.attrs else
                                f"; the code has the {'optimised' if in_code else 'plain'} version"),
                   rule if swap.attrs else "informational: the same code on both sides",
                   keep == in_code if swap.attrs else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
