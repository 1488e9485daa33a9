"""only_if on a frozen clock: each fact, and/or/not, the skip reason, and validate's FILE:LINE problems."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml

from engine.conditions import failed_fact, holds, parse_condition
from engine.errors import ConfigError
from engine.facts import EnrollmentFacts
from engine.sequences import load_sequences
from tests.journey_support import engage, status_of

T0 = datetime(2026, 12, 5, 6, 30, tzinfo=timezone.utc)
CHANNELS = {"hello": "sms", "value": "email", "nudge": "sms"}


def parse(raw, earlier=("hello", "value")):
    problems = []
    cond = parse_condition(raw, "only_if", lambda k, m: problems.append((k, m)), list(earlier), CHANNELS)
    return cond, problems


def facts(done=(), tags="", attrs=None, data=None):
    return EnrollmentFacts({d: T0 for d in done}, {"tags": tags, "attrs": attrs or {}}, {"id": 1, "event_data": data})


@pytest.mark.parametrize("raw, done, expected", [
    ({"clicked": "value"}, [("clicked", "value")], True),
    ({"clicked": "value"}, [("clicked", "hello")], False),
    ({"clicked": "any"}, [("clicked", "hello")], True),
    ({"opened": "value"}, [("opened", "value")], True),
    ({"opened": "value"}, [], False),
    ({"delivered": "hello"}, [("delivered", "hello")], True),
    ({"replied": "any"}, [("replied", "any")], True),
    ({"replied": True}, [], False),
    ({"not": {"clicked": "value"}}, [("clicked", "value")], False),
    ({"not": {"clicked": "value"}}, [], True),
    ({"or": [{"clicked": "value"}, {"opened": "value"}]}, [("opened", "value")], True),
    ({"and": [{"clicked": "value"}, {"opened": "value"}]}, [("opened", "value")], False),
])
def test_engagement_facts_and_or_not(raw, done, expected):
    cond, problems = parse(raw)
    assert problems == []
    assert holds(cond, facts(done)) is expected


def test_tags_attrs_and_event_data():
    f = facts(tags=";tehran;vip;", attrs={"city": "تهران", "plan": "gold"}, data={"total": 1200000})
    for raw, expected in [({"tags": "vip"}, True), ({"tags": ["vip", "new"]}, False),
                          ({"attrs.city": "تهران"}, True), ({"attrs.city": ["شیراز", "تبریز"]}, False),
                          ({"attrs.plan": True}, True), ({"attrs.missing": True}, False),
                          ({"event.data.total": 1200000}, True), ({"event.data.total": "99"}, False),
                          ({"tags": "vip", "attrs.plan": "gold"}, True)]:
        cond, problems = parse(raw)
        assert problems == [] and holds(cond, f) is expected, raw


def test_the_reason_names_the_fact_that_decided():
    cond, _ = parse({"not": {"clicked": "value"}})
    assert failed_fact(cond, facts([("clicked", "value")])) == "clicked value"
    cond, _ = parse({"and": [{"tags": "vip"}, {"opened": "value"}]})
    assert failed_fact(cond, facts(tags=";vip;")) == "not opened value"


@pytest.mark.parametrize("raw, where, words", [
    ({"clickd": "value"}, "only_if.clickd", "is not a fact"),
    ({"clicked": "nudge"}, "only_if.clicked", "comes at or after this one"),
    ({"clicked": "nope"}, "only_if.clicked", "is not a touch of this sequence"),
    ({"opened": "hello"}, "only_if.opened", "an SMS is never opened"),
    ({"and": [{"tags": "a"}]}, "only_if.and", "two or more"),
    ({"attrs.city": {"x": 1}}, "only_if.attrs.city", "give a value"),
])
def test_parse_problems_say_where(raw, where, words):
    cond, problems = parse(raw)
    assert cond is None and problems and problems[0][0] == where and words in problems[0][1]


def journey(only_if, exit_on=None):
    seq = {"name": "coats", "touches": [
        {"name": "hello", "after": "0s", "channel": "sms", "template": "plain.sms.j2"},
        {"name": "value", "after": "1d", "channel": "sms", "template": "plain.sms.j2"},
        {"name": "nudge", "after": "1d", "channel": "sms", "template": "plain.sms.j2", "only_if": only_if},
        {"name": "bye", "after": "1d", "channel": "sms", "template": "plain.sms.j2"},
    ]}
    if exit_on is not None:
        seq["exit_on"] = exit_on
    return seq


SARA = {"phone": "09121234567", "first_name": "سارا", "tags": "vip"}
ALI = {"phone": "09351234567", "first_name": "علی"}


def test_a_click_skips_the_nudge_with_its_reason_and_the_sequence_goes_on(make_world, frozen):
    world = make_world([journey({"not": {"clicked": "value"}})])
    sara, ali = world.add_contacts(SARA, ALI)
    world.enroll("coats", sara, ali)
    world.tick()
    frozen.tick(timedelta(days=1))
    world.tick()
    engage(world, sara, "value")
    engage(world, ali, "value", kind="clicked_bot")  # a link scanner is not a person
    frozen.tick(timedelta(days=1))
    world.tick()
    assert status_of(world, sara, "nudge") == ("skipped", "not sent: clicked value")
    assert status_of(world, ali, "nudge")[0] == "sent"
    frozen.tick(timedelta(days=1))
    world.tick()
    assert status_of(world, sara, "bye")[0] == "sent"  # counted from the skip: a day after it
    skip = next(r for r in world.log(contact_id=sara) if r["touch"] == "nudge" and r["event"] == "skipped")
    assert skip["reason"] == "not sent: clicked value"


def test_tags_condition_in_the_claim(make_world, frozen):
    world = make_world([journey({"tags": "vip"})])
    sara, ali = world.add_contacts(SARA, ALI)
    world.enroll("coats", sara, ali)
    world.run(frozen, datetime.now(timezone.utc) + timedelta(days=2, hours=1))
    assert status_of(world, sara, "nudge")[0] == "sent"
    assert status_of(world, ali, "nudge") == ("skipped", "not sent: not tags vip")


def test_the_condition_is_read_when_due_not_when_scheduled(make_world, frozen):
    """A click that comes while the nudge waits for the send window still counts."""
    world = make_world([journey({"not": {"clicked": "any"}})])
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    frozen.tick(timedelta(days=1))
    world.tick()
    frozen.tick(timedelta(days=1) - timedelta(minutes=1))
    world.tick()  # the nudge is not due yet
    assert status_of(world, sara, "nudge")[0] == "scheduled"
    engage(world, sara, "hello")
    frozen.tick(timedelta(minutes=2))
    world.tick()
    assert status_of(world, sara, "nudge") == ("skipped", "not sent: clicked any")


def test_a_batch_reads_its_facts_in_one_query(make_world, frozen):
    import sqlalchemy as sa

    world = make_world([journey({"not": {"clicked": "value"}})])
    ids = world.add_contacts(*[{"phone": f"0912000{i:04d}", "first_name": "x"} for i in range(30)])
    world.enroll("coats", *ids)
    world.tick()
    frozen.tick(timedelta(days=1))
    world.tick()
    for cid in ids[:10]:
        engage(world, cid, "value")
    frozen.tick(timedelta(days=1))
    statements = []
    sa.event.listen(world.engine, "before_cursor_execute",
                    lambda conn, cursor, sql, *a: statements.append(sql))
    # the claim's statements run on the driver's cursor: count them there
    import engine.store.driver as driver
    real = driver.run

    def counting(conn, sql, params):
        statements.append(sql)
        return real(conn, sql, params)

    driver.run = counting
    try:
        world.tick()
    finally:
        driver.run = real
    assert sum("FROM engagements" in s for s in statements) == 1
    assert sorted(status_of(world, c, "nudge")[0] for c in ids).count("skipped") == 10


def write(tmp_path, seq) -> None:
    folder = tmp_path / "sequences"
    folder.mkdir(exist_ok=True)
    (folder / "coats.yaml").write_text(yaml.safe_dump(seq, allow_unicode=True, sort_keys=False), encoding="utf-8")


def problems_of(tmp_path, seq) -> list[str]:
    write(tmp_path, seq)
    with pytest.raises(ConfigError) as err:
        load_sequences(tmp_path)
    return [str(p) for p in err.value.problems]


def test_validate_reports_unknown_facts_and_later_touches_with_file_and_line(tmp_path):
    seq = journey({"clickd": "value"})
    seq["touches"][1]["only_if"] = {"clicked": "nudge"}
    found = problems_of(tmp_path, seq)
    assert any("coats.yaml:" in p and "touches[2].only_if.clickd" in p and "is not a fact" in p for p in found), found
    assert any("touches[1].only_if.clicked" in p and "comes at or after" in p for p in found), found
    line = next(p for p in found if "clickd" in p).split("coats.yaml:")[1].split(":")[0]
    assert line.isdigit()


def test_validate_reports_a_condition_that_can_never_be_true(tmp_path):
    found = problems_of(tmp_path, journey({"and": [{"tags": "vip"}, {"not": {"tags": "vip"}}]}))
    assert any("touches[2].only_if" in p and "can never be true" in p for p in found), found


def test_replied_when_a_reply_ends_the_run_can_never_be_true(tmp_path):
    found = problems_of(tmp_path, journey({"replied": "any"}))
    assert any("touches[2].only_if" in p and "replied" in p and "exit_on" in p for p in found), found
    write(tmp_path, journey({"replied": "any"}, exit_on=["converted"]))
    assert load_sequences(tmp_path)["coats"].touches[2].only_if == ["fact", "replied", "any", True]


def branched(n_each: int) -> dict:
    """hello, then n_each touches for clickers and n_each for the others."""
    touches = [{"name": "hello", "after": "0s", "channel": "sms", "template": "plain.sms.j2"}]
    for who, negate in (("yes", False), ("no", True)):
        touches += [{"name": f"{who}{i}", "after": "1d", "channel": "sms", "template": "plain.sms.j2",
                     "only_if": {"not": {"clicked": "hello"}} if negate else {"clicked": "hello"}}
                    for i in range(n_each)]
    return {"name": "coats", "touches": touches}


def test_path_rule_counts_sends_per_path_not_touches(tmp_path):
    write(tmp_path, branched(4))  # 9 touches, 5 on each path
    assert len(load_sequences(tmp_path)["coats"].touches) == 9
    seq = branched(4)
    seq["touches"].insert(1, {"name": "extra", "after": "1h", "channel": "sms", "template": "plain.sms.j2"})
    found = problems_of(tmp_path, seq)
    assert any("coats.yaml:" in p and "touches" in p and "6 touches on one path" in p for p in found), found


def test_a_path_cannot_use_a_fact_of_a_touch_it_did_not_send(tmp_path):
    seq = branched(3)
    # clicking no0 is only possible on the path that did not click hello: yes-touches exclude it
    seq["touches"].append({"name": "late", "after": "1d", "channel": "sms", "template": "plain.sms.j2",
                           "only_if": {"clicked": "no0"}})
    write(tmp_path, seq)
    assert len(load_sequences(tmp_path)["coats"].touches) == 8  # at most 5 on any path
