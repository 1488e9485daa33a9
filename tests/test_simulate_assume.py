"""`followup simulate --assume`: sampled clicks, replies and conversions, seeded; the paths a crowd takes."""
from __future__ import annotations

import re

from click.testing import CliRunner

from engine.assume import parse_assume
from engine.cli import State, cli
from tests.test_conditions import journey

import pytest


def simulate(world, *args):
    result = CliRunner().invoke(cli, ["--config", str(world.root / "config"), "simulate", "coats",
                                      "--start", "2026-12-05 10:00", "--days", "6", *args], obj=State())
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_a_crowd_takes_both_branches_and_the_same_seed_gives_the_same_answer(make_world, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("the simulation runs on its own SQLite database")
    world = make_world([journey({"not": {"clicked": "value"}})])
    shown = simulate(world, "--assume", "clicked=0.5", "--crowd", "200")
    counts = {path: int(n) for n, path in re.findall(r"^\s+(\d+)\s+\d sent: (.+)$", shown, re.M)}
    assert set(counts) == {"hello → value → bye", "hello → value → nudge → bye"}, shown
    assert sum(counts.values()) == 200
    assert 60 < counts["hello → value → bye"] < 140  # about half clicked value
    assert simulate(world, "--assume", "clicked=0.5", "--crowd", "200") == shown


def test_conversions_end_runs_early(make_world, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("the simulation runs on its own SQLite database")
    world = make_world([journey({"tags": "vip"})])
    shown = simulate(world, "--assume", "converted=0.5", "--crowd", "100")
    assert re.search(r"^\s+\d+\s+1 sent: hello$", shown, re.M), shown  # converted after the first message


def test_bad_assume_says_how_to_write_it():
    with pytest.raises(Exception, match="KIND=P"):
        parse_assume("clicks=0.1")
    with pytest.raises(Exception, match="KIND=P"):
        parse_assume("clicked=2")
