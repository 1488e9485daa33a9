"""Micro-optimisations against their plain versions, each measured on whole ticks, interleaved (A/B).

One tick of N due messages as in :mod:`bench.bookkeeping` (the memory provider, the worker's JSON log lines
to /dev/null, a fresh database per run: a copy of one prepared SQLite file, or a PostgreSQL database built
again), run with the engine as it is (A) and with one optimisation swapped for its alternative (B),
alternately A B A B ... for ``--rounds`` rounds. Each optimisation is swapped on its own. The figure is the
median over the rounds of plain time / optimised time, for the tick's wall time and its CPU time (all
threads), with the lowest and highest of the rounds: the machine is shared, so only runs side by side are
compared, and the pairs run A first and B first in turn. An optimisation is worth keeping when its median
CPU gain is over 3% and the lower quartile of its rounds still shows a gain: on a loaded machine a tick's wall time is mostly its wait for a core, so the wall figure is shown, not
judged.

Before the timed runs, one untimed tick records the calls each optimisation sees, and both versions are run
on them: their outputs must be the same to the byte.

    python -m bench.plain_ab [-n 4000] [--rounds 7] [--only log_lines render views sandbox log_insert]
                             [--postgres URL]
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
from pathlib import Path
from typing import Any, Callable

from .common import MEMORY, count_status, info, make_dispatcher, median, python_speed, result, setup_world

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
    """``Renderer._render_text`` as Jinja's own ``Template.render``."""
    return self._get(self.text_env, name).render(context)


def fresh_views(sequence: str, description: str | None, touch: str, channel: str, index: int) -> dict[str, Any]:
    """The sequence and touch views built again for each message."""
    from engine.templates import SequenceView, TouchView

    return {"sequence": SequenceView(sequence, description), "touch": TouchView(touch, channel, index)}


def generic_getattr(self, obj: Any, attribute: str) -> Any:
    """``_Sandbox.getattr`` with the sandbox's generic checks for the template views too."""
    from engine.sandbox import BoundedSandbox
    from engine.templates import EventData

    if type(obj) is EventData:
        return self._column(obj, attribute, obj[attribute] if attribute in obj else self.undefined(obj=obj, name=attribute))
    return self._column(obj, attribute, BoundedSandbox.getattr(self, obj, attribute))


def plain_sqlite_log_insert(conn: Any, rows: list[tuple]) -> None:
    """The SQLite log insert converting each value that is a time as it binds it."""
    from datetime import datetime
    from itertools import chain

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
    attr: str
    alternative: Any
    alternative_is_plain: bool
    sqlite_only: bool = False

    def install(self, value: Any) -> Any:
        owner = self.owner()
        before = owner.__dict__[self.attr]
        setattr(owner, self.attr, value)
        return before

    def same(self, recorded: dict[str, list]) -> int:
        """Run both versions on the recorded calls; raise unless every output is the same. How many compared."""
        engine_version = self.owner().__dict__[self.attr]
        compare = _COMPARE[self.name]
        return compare(self, engine_version, recorded)


def _owner(module: str, cls: str | None = None) -> Callable[[], Any]:
    def get() -> Any:
        import importlib

        mod = importlib.import_module(module)
        return getattr(mod, cls) if cls else mod
    return get


SWAPS = [
    Swap("control", "A/A: no swap, the same code on both sides (the bench's own bias and noise)",
         _owner("engine.store.log"), "log_lines", None, True),
    Swap("log_lines", "the delivery log's JSON lines built from a per-batch form with blanks",
         _owner("engine.store.log"), "log_lines", plain_log_lines, True),
    Swap("render", "Renderer._render_text calling Jinja's root render function with a merged globals dict",
         _owner("engine.templates", "Renderer"), "_render_text", plain_render_text, True),
    Swap("views", "the sequence and touch views shared by a touch's messages (lru_cache)",
         _owner("engine.render"), "_views", fresh_views, True),
    Swap("sandbox", "the sandbox's getattr taking a short path for the template views",
         _owner("engine.templates", "_Sandbox"), "getattr", generic_getattr, True),
    Swap("log_insert", "the SQLite log insert converting each distinct time once per statement",
         _owner("engine.store.log"), "_insert_log", plain_sqlite_log_insert, True, sqlite_only=True),
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
    import engine.render as render

    real_views = render._views
    recorded["views"] = []

    def views(*args):
        recorded["views"].append(args)
        return real_views(*args)
    render._views = views
    undos.append(lambda: setattr(render, "_views", real_views))
    return undos


def _same_log_lines(swap: Swap, mine: Callable, recorded: dict[str, list]) -> int:
    for (rows,) in recorded["log_lines"]:
        a, b = mine(rows), swap.alternative(rows)
        assert a == b, f"log lines differ:\n{a[:300]}\n{b[:300]}"
    return len(recorded["log_lines"])


def _same_render(swap: Swap, mine: Callable, recorded: dict[str, list]) -> int:
    for renderer, name, context in recorded["render"]:
        a, b = mine(renderer, name, context), swap.alternative(renderer, name, context)
        assert a == b, f"renders differ: {a!r} {b!r}"
    return len(recorded["render"])


def _same_views(swap: Swap, mine: Callable, recorded: dict[str, list]) -> int:
    for args in recorded["views"]:
        a, b = mine(*args), swap.alternative(*args)
        assert a == b and {k: type(v) for k, v in a.items()} == {k: type(v) for k, v in b.items()}, (a, b)
    return len(recorded["views"])


def _same_sandbox(swap: Swap, mine: Callable, recorded: dict[str, list]) -> int:
    from engine.templates import Renderer

    render = Renderer.__dict__["_render_text"]
    outputs = []
    for getattr_ in (mine, swap.alternative):
        swap.install(getattr_)
        outputs.append([render(renderer, name, context) for renderer, name, context in recorded["render"]])
    swap.install(mine)
    assert outputs[0] == outputs[1], "renders differ with the sandbox's generic getattr"
    return len(outputs[0])


def _same_log_insert(swap: Swap, mine: Callable, recorded: dict[str, list]) -> int:
    """Both inserts' statements and parameters for the recorded rows, on a SQLite connection that runs none."""
    import sqlalchemy as sa

    from engine.store import driver

    engine = sa.create_engine("sqlite://")
    runs: list[tuple] = []
    real_run = driver.run
    driver.run = lambda conn, sql, params: runs.append((sql, list(params)))
    try:
        with engine.connect() as conn:
            for _, rows in recorded["log_insert"]:
                statements = []
                for insert in (mine, swap.alternative):
                    runs.clear()
                    insert(conn, rows)
                    statements.append(list(runs))
                assert statements[0] == statements[1], "the log inserts bind different values"
    finally:
        driver.run = real_run
        engine.dispose()
    return len(recorded["log_insert"])


_COMPARE = {"log_lines": _same_log_lines, "render": _same_render, "views": _same_views, "sandbox": _same_sandbox,
            "log_insert": _same_log_insert}


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


def ab(world: World, swap: Swap, rounds: int) -> list[tuple[float, float]]:
    """``rounds`` pairs of ticks, A (the engine as it is) and B (``swap``'s alternative), A first in odd rounds
    and B first in even ones (A B B A A B ...): the (wall, CPU) ratios of plain / optimised of each pair."""
    ratios = []
    for k in range(rounds):
        times = {}
        for side in ("A", "B") if k % 2 == 0 else ("B", "A"):
            before = swap.install(swap.alternative or swap.owner().__dict__[swap.attr]) if side == "B" else None
            try:
                wall, cpu, sent = world.tick()
            finally:
                if before is not None:
                    swap.install(before)
            assert sent == world.n, f"{side}: {sent} of {world.n} sent"
            times[side] = (wall, cpu)
        plain, tricked = (times["B"], times["A"]) if swap.alternative_is_plain else (times["A"], times["B"])
        ratios.append((plain[0] / tricked[0], plain[1] / tricked[1]))
        info(f"{swap.name} round {k + 1}: A {times['A'][0]:.2f}s wall {times['A'][1]:.2f}s CPU, "
             f"B {times['B'][0]:.2f}s wall {times['B'][1]:.2f}s CPU")
    return ratios


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
        for swap in (s for s in swaps if s.alternative is not None):
            info(f"{swap.name}: the same output from both versions on {swap.same(recorded)} calls of one tick")
        for swap in swaps:
            speed = python_speed()
            load = open("/proc/loadavg").read().split()[0]
            ratios = ab(world, swap, args.rounds)
            walls, cpus = [r[0] for r in ratios], [r[1] for r in ratios]
            keep = verdict(cpus)
            in_code = swap.alternative_is_plain  # the engine has the optimised version
            result(f"plain_ab[{db}][{swap.name}]",
                   f"plain / optimised whole tick of {args.n}: CPU {spread(cpus)}, wall {spread(walls)}, "
                   f"the medians of {args.rounds} interleaved rounds; {swap.what}; machine {speed:.0f}M loop "
                   f"steps/s, load {load}" + ("" if swap.alternative is None else
                                              f"; the code has the {'optimised' if in_code else 'plain'} version"),
                   "the optimised version only where its CPU gain is > 3% as the median and > 0 in the lower quartile"
                   if swap.alternative is not None else "informational: the same code on both sides",
                   None if swap.alternative is None else keep == in_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
