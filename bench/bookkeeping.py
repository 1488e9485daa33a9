"""Bookkeeping cost (bench 2): the Dispatcher against the ``memory`` provider, no network.

Messages recorded per second (wall) and CPU per message (``time.process_time``, all threads) for one
drain of N due messages: claim, checks, render, the memory send, record, schedule the next touch. Then the
same with a short link in the template (``{{ link(...) }}``: a code made and stored per message), whose CPU per
message may be at most 10% more: judged on the instructions of one tick each, counted by callgrind
(:mod:`bench.callgrind`), since a tick's CPU time moves by 10-20% between runs on these machines; the CPU time
pairs are shown beside them. On PostgreSQL, the share of its ceiling: one tick's statements replayed with the
same data in a bare loop, against the tick, the median of rounds of both.

    python -m bench.bookkeeping [--quick] [--postgres URL] [--profile DIR]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from .common import (MEMORY, PG_URL, count_status, info, make_dispatcher, median, python_speed,
                    result, setup_world)


def with_link(config):
    """The config again, its template ending in a short link (links.base_url set)."""
    import yaml

    from engine.config import load_config

    template = config.settings.templates_dir / "bench.sms.j2"
    template.write_text(template.read_text(encoding="utf-8") + ' {{ link("https://shop.example/coats") }}',
                        encoding="utf-8")
    path = config.dir / "settings.yaml"
    settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump({**settings, "links": {"base_url": "https://s.shop.example"}}, allow_unicode=True),
                    encoding="utf-8")
    return load_config(config.dir)


def with_journey(config):
    """The config again, its first touch a journey's: ``only_if`` (facts read per batch) and two A/B variants;
    its second touch waits for a click on the first (not due in this drain)."""
    import yaml

    from engine.config import load_config

    folder = config.dir / "sequences"
    path = next(folder.glob("*.yaml"))
    seq = yaml.safe_load(path.read_text(encoding="utf-8"))
    first, second = seq["touches"][0], seq["touches"][1]
    first.pop("template")
    first.update(only_if={"not": {"clicked": "any"}}, variants=[{"name": "a", "template": "bench.sms.j2"},
                                                             {"name": "b", "template": "bench.sms.j2", "weight": 2}])
    second["after"] = {"event": "clicked", "touch": first["name"], "delay": "1h", "within": "2d", "else": "send"}
    path.write_text(yaml.safe_dump(seq, allow_unicode=True), encoding="utf-8")
    return load_config(config.dir)


def run(url: str, n: int, root: Path, profile: Path | None, link: bool = False, journey: bool = False) -> dict:
    config, engine = setup_world(root, url, sms=MEMORY, contacts=n)
    if link:
        config = with_link(config)
    if journey:
        config = with_journey(config)
    dispatcher = make_dispatcher(config, engine)
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    report = dispatcher.tick()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if profiler is not None:
        profiler.stop()
        profile.parent.mkdir(parents=True, exist_ok=True)
        profile.write_text(profiler.output_text(unicode=False, color=False), encoding="utf-8")
    sent = count_status(engine).get("sent", 0)
    dispatcher.close()
    engine.dispose()
    return {"sent": sent, "wall": wall, "cpu": cpu, "counts": report.counts}


def ceiling(url: str, n: int, root: Path) -> tuple[float, float, int]:
    """One tick on PostgreSQL with every statement it sends recorded, then the same statements with the same
    data replayed on a fresh copy in a bare loop, one after the other on one connection (no Python work
    between them): (tick seconds, replay seconds, statements).

    The tick's statements are those of its thread and of the store's writer thread (the records of the
    providers' outcomes, which overlap the tick's next claims), in the order they were sent.
    """
    import threading

    import sqlalchemy as sa

    from engine.store import WRITER_THREAD, driver

    config, engine = setup_world(root / "record", url, sms=MEMORY, contacts=n)
    dispatcher = make_dispatcher(config, engine)
    tick_thread = threading.current_thread()
    sent: list[tuple] = []
    run_raw = driver.run

    def the_tick() -> bool:
        thread = threading.current_thread()
        return thread is tick_thread or thread.name.startswith(WRITER_THREAD)

    def recorded(conn, sql, params):  # the store's driver-level statements
        if the_tick():
            sent.append((sql, params, False))
        return run_raw(conn, sql, params)

    def on_execute(conn, cursor, sql, params, context, many):  # the SQLAlchemy Core ones
        if the_tick():
            sent.append((sql, params, many))

    def on_commit(conn):
        if the_tick():
            sent.append(None)

    driver.run = recorded
    sa.event.listen(engine, "before_cursor_execute", on_execute)
    sa.event.listen(engine, "commit", on_commit)
    try:
        wall0 = time.perf_counter()
        dispatcher.tick()
        wall = time.perf_counter() - wall0
    finally:
        driver.run = run_raw
        sa.event.remove(engine, "before_cursor_execute", on_execute)
        sa.event.remove(engine, "commit", on_commit)
    dispatcher.close()
    engine.dispose()
    config, engine = setup_world(root / "replay", url, sms=MEMORY, contacts=n)
    make_dispatcher(config, engine).close()  # its start-up writes, as before the recorded tick
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        start = time.perf_counter()
        for item in sent:
            if item is None:
                raw.commit()
            elif item[2]:
                cursor.executemany(item[0], item[1])
            else:
                cursor.execute(item[0], item[1])
        raw.commit()
        replay = time.perf_counter() - start
    finally:
        raw.close()
        engine.dispose()
    return wall, replay, sum(1 for item in sent if item is not None)


#: rounds of the three kinds of tick, and of the PostgreSQL tick against its replayed statements: a tick's time
#: moves by 10-20% from one run to the next on these machines, and the median of 5 paired ratios is steadier
#: than that of 3
ROUNDS = 5
#: messages in each tick counted by callgrind (about 60 times slower than the tick itself)
COUNTED = 4000


def link_instructions(url: str, n: int, root: Path) -> tuple[float, float, int] | None:
    """Instructions per message of one tick of ``n`` without and with a short link, counted by callgrind
    (:mod:`bench.callgrind`), and ``n``; None without valgrind. Two SQLite files are counted side by side;
    PostgreSQL's one database is built again for the second tick."""
    from . import callgrind

    if not callgrind.available():
        return None
    sqlite = url.startswith("sqlite")

    def world(link: bool) -> tuple[Path, None]:
        world_url = url.replace("/bk", "/bkc1" if link else "/bkc0") if sqlite else url
        config, engine = setup_world(root / ("link" if link else "plain"), world_url, sms=MEMORY, contacts=n)
        engine.dispose()
        return (with_link(config) if link else config).dir, None

    plain, linked = callgrind.count_each([lambda: world(False), lambda: world(True)], n, side_by_side=sqlite)
    return plain / n, linked / n, n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("-n", type=int, default=None)
    p.add_argument("--postgres", default=PG_URL)
    p.add_argument("--profile")
    args = p.parse_args()
    n = args.n or (4000 if args.quick else 10000)
    with tempfile.TemporaryDirectory() as tmp:
        dbs = [("sqlite", f"sqlite:///{tmp}/bk.db")] + ([("postgresql", args.postgres)] if args.postgres else [])
        for name, url in dbs:
            # the median of ROUNDS runs (1 with --quick), each on a fresh database: one tick is about a second, and
            # this machine's speed moves by 2x within minutes
            # each round runs the three kinds of tick (none, a link, a journey), in the reverse order every other
            # round so that none always runs just after another: the kinds are compared round by round, on the
            # same machine
            runs, linked, journeys = [], [], []
            speed_before = python_speed()
            for k in range(1 if args.quick else ROUNDS):
                prof = Path(args.profile) / f"bookkeeping-{name}.txt" if args.profile and not k else None
                if k:
                    url = url.replace("/bk.db", f"/bk{k}.db")
                for kind in ("plain", "link", "journey") if k % 2 == 0 else ("journey", "link", "plain"):
                    if kind == "plain":
                        r = run(url, n, Path(tmp) / f"{name}{k}", prof)
                        r["rate"] = r["sent"] / r["wall"]
                        runs.append(r)
                        info(f"{name} run {k + 1}: one tick of {n} due messages in {r['wall']:.2f}s, "
                             f"{r['rate']:.0f} msg/s, {r['cpu'] / max(1, r['sent']) * 1000:.3f} ms CPU per message: "
                             f"{r['counts']}")
                        continue
                    tag = "l" if kind == "link" else "j"
                    r = run(url.replace("/bk", f"/bk{tag}") if "/bk" in url else url, n,
                            Path(tmp) / f"{name}-{kind}{k}", None, link=kind == "link", journey=kind == "journey")
                    if kind == "link":
                        linked.append(r["cpu"] / max(1, r["sent"]) * 1000)
                    else:
                        journeys.append(r["sent"] / r["wall"])
                    info(f"{name} run {k + 1} with a {kind}: {r['sent'] / r['wall']:.0f} msg/s, "
                         f"{r['cpu'] / max(1, r['sent']) * 1000:.3f} ms CPU per message")
            speed_after = python_speed()
            info(f"machine speed just before and after: {speed_before:.0f}M and {speed_after:.0f}M Python loop steps/s")
            r = sorted(runs, key=lambda x: x["rate"])[len(runs) // 2]
            rate = r["rate"]
            # the rate is one thread's speed: it follows the machine's, which moves by 2x within the hour here
            per_m = rate / ((speed_before + speed_after) / 2)
            cpu_ms = median([x["cpu"] / max(1, x["sent"]) * 1000 for x in runs])
            of = f"the median of {len(runs)} runs" if len(runs) > 1 else "one run"
            target_rate = rate >= 10_000
            result(f"bookkeeping[{name}] rate", f"{rate:.0f} msg/s recorded ({of}: "
                   f"{', '.join(str(round(x['rate'])) for x in runs)}; {per_m:.0f} msg/s per million loop steps/s "
                   f"of the machine's speed)",
                   ">= 10000 msg/s on SQLite" if name == "sqlite" else "informational; 10000 msg/s is for SQLite",
                   target_rate if name == "sqlite" else None)
            result(f"bookkeeping[{name}] CPU", f"{cpu_ms:.3f} ms CPU per message ({of})", "< 0.2 ms", cpu_ms < 0.2)
            link_ms = median(linked)
            paired = median([b / (a["cpu"] / max(1, a["sent"]) * 1000) for a, b in zip(runs, linked)])
            journey_rate = median(journeys)
            journey_share = median([j / r["rate"] for r, j in zip(runs, journeys)])
            result(f"bookkeeping[{name}] rate with a journey", f"{journey_rate:.0f} msg/s with only_if and A/B "
                   f"variants on the touch sent, {journey_share:.0%} of the linear sequence's rate as the median of "
                   f"the rounds ({of}: {journey_rate / rate:.0%} of {rate:.0f})",
                   ">= 90% of the linear sequence", journey_share >= 0.9)
            timed = (f"CPU time {link_ms:.3f} ms per message, {link_ms / cpu_ms - 1:+.0%} against none ({of}; round by "
                     f"round: {paired - 1:+.0%} as the median)")
            counted = link_instructions(url, min(n, COUNTED), Path(tmp) / f"{name}-counted")
            if counted is None:
                result(f"bookkeeping[{name}] CPU with a short link", timed + " (no valgrind: judged on CPU time)",
                       "at most +10%", link_ms <= cpu_ms * 1.1)
            else:
                plain, linked_i, counted_n = counted
                result(f"bookkeeping[{name}] CPU with a short link",
                       f"{linked_i / plain - 1:+.1%} instructions per message ({plain / 1000:.0f}k → "
                       f"{linked_i / 1000:.0f}k, callgrind, one tick of {counted_n} each; judged on these: the "
                       f"CPU time of a tick moves by 10-20% from run to run here); {timed}",
                       "at most +10%", linked_i <= plain * 1.1)
            if name == "postgresql":
                # a tick and its replay, ROUNDS times: one pair's ratio moves by 10-20% like the tick itself
                pairs = sorted((ceiling(url, n, Path(tmp) / f"ceiling{k}") for k in range(1 if args.quick else ROUNDS)),
                               key=lambda pair: pair[1] / pair[0])
                wall, replay, statements = pairs[len(pairs) // 2]
                result("bookkeeping[postgresql] share of its ceiling",
                       f"{replay / wall:.0%} as the median of {len(pairs)} rounds "
                       f"({', '.join(f'{r / w:.0%}' for w, r, _ in pairs)}; that round's tick of {n} in {wall:.2f}s, "
                       f"its {statements} statements replayed with the same data in a bare loop in {replay:.2f}s)",
                       ">= 70%", replay / wall >= 0.7)
    return 0


if __name__ == "__main__":
    sys.exit(main())
