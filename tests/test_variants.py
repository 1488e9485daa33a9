"""A/B variants on a frozen clock: stable weighted assignment, the variant's template sent and kept, the winner
rule (and a case that stays inconclusive), the worker's evaluation at most once a minute, `followup ab`."""
from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli import State, cli
from engine.models import AbTest
from engine.variants import AbSpec, Variant, assign, judge, p_best
from tests.journey_support import engage

TEMPLATES = {"story.sms.j2": "داستان {{ contact.first_name }}", "discount.sms.j2": "تخفیف {{ contact.first_name }}"}


def test_weights_are_kept_within_two_percent_on_ten_thousand_contacts():
    variants = (Variant("story", "a", 1), Variant("discount", "b", 2))
    counts = Counter(assign(variants, cid, "winter-sale", "value").name for cid in range(1, 10_001))
    assert abs(counts["story"] / 10_000 - 1 / 3) <= 0.02
    assert abs(counts["discount"] / 10_000 - 2 / 3) <= 0.02
    four = tuple(Variant(n, n, w) for n, w in (("a", 1), ("b", 1), ("c", 3), ("d", 5)))
    counts = Counter(assign(four, cid, "s", "t").name for cid in range(1, 10_001))
    for name, weight in (("a", 0.1), ("b", 0.1), ("c", 0.3), ("d", 0.5)):
        assert abs(counts[name] / 10_000 - weight) <= 0.02, (name, counts)


def test_assignment_is_stable_and_depends_on_contact_sequence_and_touch():
    variants = (Variant("story", "a"), Variant("discount", "b"))
    first = [assign(variants, cid, "s", "t").name for cid in range(200)]
    assert first == [assign(variants, cid, "s", "t").name for cid in range(200)]
    assert first != [assign(variants, cid, "s", "other").name for cid in range(200)]


def test_a_clear_difference_wins():
    result = judge(AbSpec("clicked", 200, 0.95), {"story": (300, 30), "discount": (300, 60)})
    assert (result.state, result.winner) == ("winner", "discount")
    assert result.p_best["discount"] > 0.99


def test_a_near_tie_stays_inconclusive_however_long_it_runs():
    result = judge(AbSpec("converted", 200, 0.95), {"story": (5000, 500), "discount": (5000, 505)})
    assert (result.state, result.winner) == ("inconclusive", None)
    assert 0.3 < result.p_best["discount"] < 0.8


def test_too_few_sends_keep_it_running_even_with_a_big_gap():
    result = judge(AbSpec("clicked", 200, 0.95), {"story": (100, 1), "discount": (100, 40)})
    assert (result.state, result.winner) == ("running", None)


def test_p_best_is_seeded_and_sums_to_one():
    figures = {"a": (100, 10), "b": (100, 12), "c": (100, 8)}
    assert p_best(figures) == p_best(figures)
    assert sum(p_best(figures).values()) == pytest.approx(1.0)


def ab_sequence(min_per_variant: int = 4) -> dict:
    return {"name": "coats", "touches": [
        {"name": "hello", "after": "0s", "channel": "sms", "template": "plain.sms.j2"},
        {"name": "value", "after": "1h", "channel": "sms",
         "variants": [{"name": "story", "template": "story.sms.j2"},
                      {"name": "discount", "template": "discount.sms.j2", "weight": 2}],
         "ab": {"metric": "clicked", "min_per_variant": min_per_variant, "confidence": 0.9}},
        {"name": "bye", "after": "1d", "channel": "sms", "template": "plain.sms.j2"},
    ]}


def contacts(world, n: int, start: int = 0) -> list[int]:
    return world.add_contacts(*[{"phone": f"0912{start + i:07d}", "first_name": f"c{start + i}"} for i in range(n)])


def value_messages(world) -> list[dict]:
    return [m for m in world.messages() if m["touch"] == "value"]


def test_each_contact_gets_its_variant_template_and_keeps_it(make_world, frozen):
    world = make_world([ab_sequence()], templates=TEMPLATES)
    ids = contacts(world, 12)
    world.enroll("coats", *ids)
    world.tick()
    frozen.tick(timedelta(hours=1))
    world.tick()
    sent = value_messages(world)
    assert {m["status"] for m in sent} == {"sent"}
    plan = world.config.sequences["coats"].touches[1].variants
    for m in sent:
        assert m["variant"] == assign(plan, m["contact_id"], "coats", "value").name
    texts = {m.to: m.text for m in world.sms.outbox if m.text.startswith(("داستان", "تخفیف"))}
    by_variant = Counter(m["variant"] for m in sent)
    assert sum(t.startswith("داستان") for t in texts.values()) == by_variant["story"]
    assert sum(t.startswith("تخفیف") for t in texts.values()) == by_variant["discount"]


def ab_row(world) -> dict | None:
    with world.engine.connect() as conn:
        row = conn.execute(sa.select(AbTest.__table__)).mappings().first()
    return dict(row) if row else None


def test_the_worker_finds_the_winner_logs_it_and_new_assignments_go_to_it(make_world, frozen):
    world = make_world([ab_sequence()], templates=TEMPLATES)
    ids = contacts(world, 24)
    world.enroll("coats", *ids)
    world.tick()
    frozen.tick(timedelta(hours=1))
    world.tick()
    row = ab_row(world)
    assert row["state"] == "inconclusive" and row["winner"] is None  # enough sends, no clicks yet
    for m in value_messages(world):
        if m["variant"] == "story":
            engage(world, m["contact_id"], "value")
    world.tick()  # within the minute: not evaluated again
    assert ab_row(world)["evaluated_at"] == row["evaluated_at"] and ab_row(world)["winner"] is None
    frozen.tick(timedelta(minutes=1))
    world.tick()
    row = ab_row(world)
    assert (row["state"], row["winner"], row["decided_by"]) == ("winner", "story", "rule")
    (logged,) = [r for r in world.log() if r["event"] == "ab_winner"]
    assert logged["touch"] == "value" and logged["reason"].startswith("story wins")
    late = contacts(world, 10, start=100)
    world.enroll("coats", *late)
    world.tick()
    frozen.tick(timedelta(hours=1))
    world.tick()
    assert {m["variant"] for m in value_messages(world) if m["contact_id"] in late} == {"story"}


def test_ab_command_shows_promotes_and_resets(make_world, frozen):
    world = make_world([ab_sequence(min_per_variant=100)], templates=TEMPLATES)
    ids = contacts(world, 9)
    world.enroll("coats", *ids)
    world.tick()
    frozen.tick(timedelta(hours=1))
    world.tick()
    config = str(world.root / "config")

    def ab(*args):
        result = CliRunner().invoke(cli, ["--config", config, "ab", "coats", "value", *args], obj=State())
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output

    table = json.loads(ab("--json"))
    counts = Counter(m["variant"] for m in value_messages(world))
    assert table["state"] == "running"
    assert {n: v["sent"] for n, v in table["variants"].items()} == {"story": counts["story"],
                                                                    "discount": counts["discount"]}
    assert "P(best)" in ab()
    assert json.loads(ab("--promote", "discount", "--json"))["winner"] == "discount"
    assert [r["reason"] for r in world.log() if r["event"] == "ab_winner"] == ["discount promoted by hand"]
    frozen.tick(timedelta(minutes=5))
    reset = json.loads(ab("--reset", "--json"))
    assert (reset["state"], reset["winner"]) == ("running", None)
    assert all(v["sent"] == 0 for v in reset["variants"].values())  # counted from the reset
    bad = CliRunner().invoke(cli, ["--config", config, "ab", "coats", "value", "--promote", "nope"], obj=State())
    assert bad.exit_code != 0 and "not a variant" in str(bad.exception)


def test_validate_wants_every_variant_of_an_urgent_touch_to_use_the_offer(make_world):
    from engine.validate import validate

    seq = {"name": "coats", "offer": {"code": "W20", "title": "۲۰٪", "expires_after": "72h"}, "touches": [
        {"name": "hello", "after": "0s", "channel": "sms", "template": "plain.sms.j2"},
        {"name": "value", "after": "1d", "channel": "sms", "template": "plain.sms.j2"},
        {"name": "last", "after": "1d", "channel": "sms", "urgent": True,
         "variants": [{"name": "clock", "template": "winter/last-chance.sms.j2"},
                      {"name": "plain", "template": "story.sms.j2"}]}]}
    world = make_world([seq], templates=TEMPLATES)
    _, problems = validate(world.root / "config")
    found = [str(p) for p in problems if "variant" in str(p)]
    assert len(found) == 1, [str(p) for p in problems]
    assert "coats.yaml:" in found[0] and "touches[2].variants[1].template" in found[0] and "'plain'" in found[0]
    where = found[0].split("coats.yaml:")[1].split(":")[0]
    assert where.isdigit()
