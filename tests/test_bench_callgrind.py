"""bench.callgrind: the instructions of one tick alone (not its process's imports and set-up), in a child under
valgrind; bench 2's short-link line is judged on them."""
from __future__ import annotations

import pytest

from bench import callgrind
from bench.bookkeeping import link_instructions

pytestmark = pytest.mark.skipif(not callgrind.available(), reason="valgrind is not installed")


def test_a_tick_with_a_short_link_counts_more_instructions_than_without_and_only_the_tick(tmp_path):
    plain, linked, n = link_instructions(f"sqlite:///{tmp_path}/bk.db", 20, tmp_path)
    assert n == 20
    # the child's imports and the config's loading are hundreds of millions of instructions; a message of the
    # tick is under a million (bench 2: about 0.7M), so a count per message of a few million would mean the
    # counts began before the tick
    assert 100_000 < plain < 5_000_000
    assert linked > plain  # a code made, its call through the sandbox, its row stored, for each message


def test_a_swapped_optimisation_is_counted_in_its_child(tmp_path, monkeypatch):
    from bench import common
    from bench.plain_ab import SWAPS, World, instructions

    monkeypatch.setattr(common, "_DEVNULL", object())  # the test run's logging stays as pytest set it
    world = World(tmp_path, None, 20)
    log_lines = next(s for s in SWAPS if s.name == "log_lines")
    plain, optimised = instructions(world, log_lines)
    # the plain JSON lines take about a quarter more instructions in a tick of 4,000 (bench.plain_ab); a child
    # that ran the engine's version on both sides would count the same within about 1.5%
    assert plain > optimised * 1.05
