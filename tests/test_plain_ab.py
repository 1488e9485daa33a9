"""bench.plain_ab: each optimisation and its other version give the same output to the byte, on the calls of a
real tick and on log rows with odd values."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from bench import common
from bench.plain_ab import SWAPS, World, _record


def test_each_optimisation_and_its_other_version_give_the_same_output(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(common, "_DEVNULL", object())  # the test run's logging stays as pytest set it
    caplog.set_level(logging.INFO, logger="followup.delivery")
    world = World(tmp_path, None, 30)
    recorded: dict[str, list] = {}
    undos = _record(recorded)
    try:
        assert world.tick()[2] == 30
    finally:
        for undo in undos:
            undo()
    at = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=timezone.utc)
    reasons = ['پنل گفت: "شماره 09121234567 مسدود است"\nخط دوم \\ \t', None, "", "rejected sara@example.com",
               "50% off ended: %s %(x)s %%"]
    rows = [(at, i, i + 100, "زمستان %s", "t0", "sms", "kave %d", "failed", reason, 1,
             f'id "{i}" % \\' if i else None, "w-1") for i, reason in enumerate(reasons)]
    rows.append(("2026-01-02 03:04:05", None, None, "s", "t1", "email", None, "sent", None, None, None, None))
    recorded["log_lines"].append((rows,))
    recorded["log_insert"].append((None, rows[:-1]))
    compared = {swap.name: swap.same(recorded) for swap in SWAPS if swap.attrs}
    assert set(compared) == {"log_lines", "render", "views", "sandbox", "log_insert"}
    assert compared["render"] == compared["views"] == compared["sandbox"] == 30
    assert compared["log_lines"] > 1 and compared["log_insert"] > 1
