"""Event triggers and custom exits: the abandoned cart.

A sequence with ``trigger: {event: cart_abandoned}`` starts one run per event key (a cart); an exit event
with a key ends that key's run only; templates read the triggering event's data, frozen on the run.
Engine tests run on SQLite and, with FOLLOWUP_TEST_POSTGRES_URL, on PostgreSQL.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from engine.cli import cli
from engine.config import load_config
from engine.errors import ConfigError
from engine.enrollment import EventRun, enroll
from engine.errors import InputError
from engine.events import record_event
from engine.models import ContactEvent, Enrollment, Message
from engine.validate import validate
from tests.conftest import simple_sequence
from tests.service_support import SERVICE_SETTINGS, api_client, auth

UTC = timezone.utc
CART_TEMPLATES = {"cart/remind.sms.j2": "{{ contact.first_name }}، سبد {{ event.key }} با {{ event.data.total }} "
                                        "تومان منتظر شماست ({{ touch.name }})"}


def cart_sequence(**extra) -> dict:
    return {"name": "cart", "trigger": {"event": "cart_abandoned", "sample": {"total": 990000}},
            "exit_on": ["order_placed", "unsubscribed"], **extra,
            "touches": [{"name": f"t{i}", "after": "0s" if i == 0 else "2h", "channel": "sms",
                         "template": "cart/remind.sms.j2"} for i in range(3)]}


@pytest.fixture
def world(make_world):
    return make_world([cart_sequence(), simple_sequence("welcome", exit_on=["order_placed", "converted"])],
                      templates=CART_TEMPLATES, settings=SERVICE_SETTINGS)


@pytest.fixture
def sara(world) -> int:
    (cid,) = world.add_contacts({"phone": "09121111111", "first_name": "سارا"})
    return cid


def runs(world, contact_id: int, sequence: str = "cart") -> list[dict]:
    table = Enrollment.__table__
    with world.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).where(table.c.contact_id == contact_id,
                                                                     table.c.sequence == sequence)
                                              .order_by(table.c.id)).mappings()]


def open_messages(world, enrollment_id: int) -> int:
    return sum(m["status"] in ("pending", "scheduled") for m in world.messages(enrollment_id=enrollment_id))


# -- starting runs -----------------------------------------------------------------------------------
def test_an_event_starts_one_run_per_key_with_its_data(world, sara, frozen):
    first = world.event(sara, "cart_abandoned", key="cart-981", data={"total": 1200000})
    assert [(s.sequence, s.outcome) for s in first.started] == [("cart", "enrolled")]
    again = world.event(sara, "cart_abandoned", key="cart-981", data={"total": 5})
    assert [(s.sequence, s.outcome) for s in again.started] == [("cart", "already_active")]
    other = world.event(sara, "cart_abandoned", key="cart-982", data={"total": 450000})
    assert [(s.sequence, s.outcome) for s in other.started] == [("cart", "enrolled")]
    assert [(r["event_key"], r["event_data"], r["status"]) for r in runs(world, sara)] == [
        ("cart-981", {"total": 1200000}, "active"), ("cart-982", {"total": 450000}, "active")]
    assert runs(world, sara, "welcome") == []  # a sequence without the trigger is not started
    world.tick()
    texts = sorted(m.text for m in world.sms.outbox)
    assert len(texts) == 2
    assert "سبد cart-981 با 1200000 تومان" in texts[0] and "(t0)" in texts[0]
    assert "سبد cart-982 با 450000 تومان" in texts[1]


def test_the_same_key_never_starts_a_second_run_even_after_its_run_ended(make_world, frozen):
    world = make_world([cart_sequence(reentry={"after": "1s"})], templates=CART_TEMPLATES)
    (cid,) = world.add_contacts({"phone": "09121111111"})
    world.event(cid, "cart_abandoned", key="cart-981", data={"total": 1})
    world.event(cid, "order_placed", key="cart-981")
    frozen.tick(timedelta(days=1))
    again = world.event(cid, "cart_abandoned", key="cart-981", data={"total": 1})
    [started] = again.started
    assert started.outcome == "finished" and "already had a run for key cart-981" in started.reason
    assert "one run per key" in started.reason and "exited" in started.reason
    assert [r["status"] for r in runs(world, cid)] == ["exited"]


def test_without_a_key_an_event_starts_a_run_as_enroll_does_and_reentry_applies(world, sara, frozen):
    first = world.event(sara, "cart_abandoned", data={"total": 1})
    assert first.started[0].outcome == "enrolled"
    assert world.event(sara, "cart_abandoned").started[0].outcome == "already_active"
    world.event(sara, "order_placed")
    frozen.tick(timedelta(days=400))
    later = world.event(sara, "cart_abandoned")
    assert later.started[0].outcome == "finished" and "reentry is never" in later.started[0].reason
    # a keyed run is not held back by reentry: it is one per key
    keyed = world.event(sara, "cart_abandoned", key="cart-7")
    assert keyed.started[0].outcome == "enrolled"
    assert [(r["event_key"], r["status"]) for r in runs(world, sara)] == [(None, "exited"), ("cart-7", "active")]


def test_an_opted_out_contact_is_not_started_and_a_stopped_sequence_takes_no_run(world, frozen):
    (cid,) = world.add_contacts({"email": "only@example.com"})  # the cart sequence sends SMS only
    [started] = world.event(cid, "cart_abandoned", key="c1").started
    assert started.outcome == "refused" and "no phone" in started.reason
    (sara,) = world.add_contacts({"phone": "09121111111"})
    from engine import control
    with world.engine.begin() as conn:
        control.stop(conn, world.config, "cart")
    result = world.event(sara, "cart_abandoned", key="c2")
    assert result.recorded and result.started[0].outcome == "refused" and "stopped" in result.started[0].reason
    assert runs(world, sara) == []


def test_the_same_idempotency_key_twice_starts_nothing_more(world, sara, frozen):
    first = world.event(sara, "cart_abandoned", key="cart-1", idempotency_key="evt-1")
    second = world.event(sara, "cart_abandoned", key="cart-2", idempotency_key="evt-1")
    assert first.recorded and not second.recorded and second.started == []
    assert [r["event_key"] for r in runs(world, sara)] == ["cart-1"]
    with world.engine.connect() as conn:
        stored = conn.execute(sa.select(ContactEvent.__table__)).mappings().one()
    assert (stored["type"], stored["key"]) == ("cart_abandoned", "cart-1")


def test_an_event_no_sequence_names_is_recorded_with_a_warning(world, sara, frozen):
    typo = world.event(sara, "cart_abandonned", key="cart-1")
    assert typo.recorded and typo.started == []
    assert typo.warning == ("no sequence starts or ends on 'cart_abandonned', so it was only recorded "
                            "(the sequences name cart_abandoned, order_placed)")
    assert "did you mean 'converted'?" in world.event(sara, "convertd").warning
    assert world.event(sara, "order_placed").warning == ""


# -- ending runs ---------------------------------------------------------------------------------------
def test_an_exit_event_with_a_key_ends_only_that_keys_run(world, sara, frozen):
    world.enroll("welcome", sara)
    world.event(sara, "cart_abandoned", key="cart-981", data={"total": 1})
    world.event(sara, "cart_abandoned", key="cart-982", data={"total": 2})
    world.tick()
    result = world.event(sara, "order_placed", key="cart-981")
    assert sorted(result.ended) == ["cart (cart-981)", "welcome"]
    r981, r982 = runs(world, sara)
    assert (r981["status"], r981["ended_reason"]) == ("exited", "contact order_placed (key cart-981)")
    assert open_messages(world, r981["id"]) == 0
    assert {m["reason"] for m in world.messages(enrollment_id=r981["id"], status="cancelled")} == {
        "contact order_placed (key cart-981)"}
    assert r982["status"] == "active" and open_messages(world, r982["id"]) == 2
    # an enrollment without a key is the contact's, not a cart's: a keyed exit event reaches it
    assert runs(world, sara, "welcome")[0]["status"] == "exited"
    world.run(frozen, datetime(2026, 12, 6, 12, 0, tzinfo=UTC))  # past the day's cap of 3
    later = [m.text for m in world.sms.outbox if "(t1)" in m.text]
    assert len(later) == 1 and "cart-982" in later[0]


def test_an_exit_event_without_a_key_ends_every_run(world, sara, frozen):
    world.event(sara, "cart_abandoned", key="cart-981")
    world.event(sara, "cart_abandoned", key="cart-982")
    result = world.event(sara, "order_placed")
    assert sorted(result.ended) == ["cart (cart-981)", "cart (cart-982)"]
    assert [r["status"] for r in runs(world, sara)] == ["exited", "exited"]


def test_a_built_in_exit_keeps_its_own_status_and_a_sequence_not_exiting_on_it_goes_on(world, sara, frozen):
    world.enroll("welcome", sara)
    world.event(sara, "cart_abandoned", key="cart-1")
    result = world.event(sara, "converted", key="cart-1", value=100.0)
    assert result.ended == ["welcome"]  # cart's exit_on is order_placed and unsubscribed, not converted
    assert runs(world, sara, "welcome")[0]["status"] == "converted"
    assert runs(world, sara)[0]["status"] == "active"


# -- event.data in templates --------------------------------------------------------------------------
def test_the_run_keeps_the_data_of_the_event_that_started_it(world, sara, frozen):
    world.event(sara, "cart_abandoned", key="cart-981", data={"total": 1200000})
    world.event(sara, "cart_abandoned", key="cart-981", data={"total": 1})  # same cart: changes nothing
    world.tick()
    [sms] = world.sms.outbox
    assert "1200000" in sms.text


def test_a_run_whose_event_lacks_a_data_entry_skips_the_message_with_the_reason(world, sara, frozen):
    world.event(sara, "cart_abandoned", key="cart-1", data={"items": 2})
    world.tick()
    [first] = [m for m in world.messages() if m["touch"] == "t0"]
    assert first["status"] == "skipped"
    assert "the event that started this run has no data.total" in first["reason"]
    assert world.sms.outbox == []


def test_event_data_names_only_its_entries_never_a_dict_method(make_world, frozen):
    world = make_world([cart_sequence()], templates={
        "cart/remind.sms.j2": "{{ event.data.items | default('چند') }} قلم، {{ event.data.keys | default('-') }}، "
                              "{% for k, v in event.data.size | dictsort %}{{ k }}={{ v }}{% endfor %}"})
    a, b = world.add_contacts({"phone": "09121111111"}, {"phone": "09122222222"})
    world.event(a, "cart_abandoned", key="c", data={"items": 3, "size": {"m": 1, "l": 2}})
    world.event(b, "cart_abandoned", key="c", data={"size": {}})
    world.tick()
    texts = sorted(m.text for m in world.sms.outbox)
    assert len(texts) == 2, [(m["status"], m["reason"]) for m in world.messages()]
    assert texts[0].startswith("3 قلم، -، l=2m=1"), texts
    assert texts[1].startswith("چند قلم، -،"), texts


def test_an_enrollment_by_hand_sees_an_empty_event(make_world, frozen):
    world = make_world([cart_sequence()], templates={
        "cart/remind.sms.j2": "سلام {{ event.data.total | default('') }}{{ event.key or 'بدون سبد' }}"})
    (cid,) = world.add_contacts({"phone": "09121111111"})
    assert world.enroll("cart", cid).enrolled == [cid]
    world.tick()
    assert world.sms.outbox[0].text.startswith("سلام بدون سبد")


# -- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, kw, words", [
    ("Cart Abandoned", {}, "not an event name"),
    ("x" * 51, {}, "at most 50"),
    ("cart_abandoned", {"key": ""}, "event key must be 1 to 200"),
    ("cart_abandoned", {"data": [1, 2]}, "must be a JSON object"),
    ("cart_abandoned", {"data": {"total": float("nan")}}, "total: nan is not a number"),
    ("cart_abandoned", {"data": {"note": "x" * 17000}}, "at most 16,384"),
])
def test_bad_events_are_refused_and_nothing_is_written(world, sara, kind, kw, words):
    with pytest.raises(InputError, match=words):
        world.event(sara, kind, **kw)
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ContactEvent.__table__)).scalar() == 0
    assert runs(world, sara) == []


# -- the database keeps one run per key ----------------------------------------------------------------
def test_the_database_refuses_a_second_run_with_the_same_key(world, sara, frozen):
    world.event(sara, "cart_abandoned", key="cart-1")
    table = Enrollment.__table__
    row = {k: v for k, v in runs(world, sara)[0].items() if k != "id"}
    with pytest.raises(sa.exc.IntegrityError):
        with world.engine.begin() as conn:
            conn.execute(sa.insert(table).values(**{**row, "status": "completed"}))
    with world.engine.begin() as conn:  # another key, or no key, is another run
        conn.execute(sa.insert(table).values(**{**row, "event_key": "cart-2"}))
        conn.execute(sa.insert(table).values(**{**row, "event_key": None, "event_data": None}))


def test_two_transactions_starting_the_same_keyed_run_make_one(world, sara, frozen, db_url):
    """On PostgreSQL the second insert waits on the unique index, then skips: one run, no error."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite takes the write lock at BEGIN: two writers never overlap")
    run = EventRun("cart_abandoned", "cart-1", {"total": 1})
    first = world.engine.connect()
    first.begin()
    assert enroll(first, world.config, "cart", [sara], run).enrolled == [sara]
    outcome = {}

    def second():
        with world.engine.begin() as conn:
            outcome["report"] = enroll(conn, world.config, "cart", [sara], run)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=1.0)
    assert thread.is_alive()  # waiting on the first transaction's row
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert outcome["report"].enrolled == [] and outcome["report"].already_active == [sara]
    assert len(runs(world, sara)) == 1 and len(world.messages()) == 3


# -- validate -------------------------------------------------------------------------------------------
def _validate(make_world, sequence: dict, template: str = CART_TEMPLATES["cart/remind.sms.j2"]) -> list[str]:
    world = make_world([simple_sequence("plain")], templates={"cart/remind.sms.j2": template})
    path = world.config.dir / "sequences" / "cart.yaml"
    path.write_text(yaml.safe_dump(sequence, allow_unicode=True, sort_keys=False), encoding="utf-8")
    _, problems = validate(world.config.dir)
    return [str(p) for p in problems if not p.warning]


def test_validate_accepts_the_abandoned_cart(make_world):
    assert _validate(make_world, cart_sequence()) == []


@pytest.mark.parametrize("change, where, words", [
    ({"trigger": {"event": "cart_abandoned", "when": "now"}}, "trigger.when", "unknown key; a trigger takes event, sample"),
    ({"trigger": {"event": "Cart-Abandoned"}}, "trigger.event", "not an event name"),
    ({"trigger": {"sample": {}}}, "trigger", "trigger.event: is required"),
    ({"trigger": "cart_abandoned"}, "trigger", "must be a mapping such as trigger: {event: cart_abandoned}"),
    ({"trigger": {"event": "order_placed"}}, "trigger.event", "also in exit_on"),
    ({"trigger": {"event": "unsubscribed"}, "exit_on": []}, "trigger.event", "can't start a sequence"),
    ({"exit_on": ["order_placed", "convertd"]}, "exit_on[1]", "did you mean 'converted'?"),
    ({"exit_on": ["order placed"]}, "exit_on[0]", "not an event name"),
    ({"exit_on": "order_placed"}, "exit_on", "must be a list of event names"),
])
def test_validate_names_the_line_of_a_bad_trigger_or_exit(make_world, change, where, words):
    problems = _validate(make_world, {**cart_sequence(), **change})
    text = "\n".join(problems)
    assert words in text, text
    line = next(p for p in problems if words in p)
    # FILE:LINE: KEY.PATH: the line is where the key is written in cart.yaml
    assert line.split(":")[0].endswith("cart.yaml") and line.split(":")[1].isdigit(), line
    assert where.split("[")[0].split(".")[0] in line


def test_validate_reports_a_data_entry_the_trigger_sample_lacks(make_world):
    sequence = cart_sequence()
    sequence["trigger"] = {"event": "cart_abandoned"}
    problems = _validate(make_world, sequence)
    assert any("event.data.total: not in the sample event data" in p and "sample: {total: ...}" in p
               for p in problems), problems


EVENT_WORDS = st.sampled_from(["cart_abandoned", "order_placed", "converted", "convertd", "Cart", "", "event",
                                "sample", "x" * 60])
ANY = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), EVENT_WORDS,
                             st.dates()),
                   lambda inner: st.one_of(st.lists(inner, max_size=3),
                                           st.dictionaries(st.one_of(EVENT_WORDS, st.text(max_size=5)), inner,
                                                           max_size=3)), max_leaves=10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(trigger=ANY, exit_on=ANY)
def test_any_trigger_or_exit_on_loads_or_is_a_config_error(tmp_path, trigger, exit_on):
    folder = tmp_path / "config"
    (folder / "sequences").mkdir(parents=True, exist_ok=True)
    (folder / "settings.yaml").write_text(yaml.safe_dump({
        "database_url": "sqlite:///x.db", "templates_dir": ".",
        "providers": {"sms": [{"name": "m", "type": "memory"}]}}), encoding="utf-8")
    (folder / "sequences" / "cart.yaml").write_text(yaml.safe_dump(
        {**cart_sequence(), "trigger": trigger, "exit_on": exit_on}, allow_unicode=True), encoding="utf-8")
    try:
        config = load_config(folder)
    except ConfigError as err:
        assert all(p.file.endswith("cart.yaml") and p.line for p in err.problems), str(err)
    else:
        seq = config.sequences["cart"]
        assert seq.trigger is None or seq.trigger.event not in seq.exit_on
        json.loads(seq.to_json())


# -- the command line -----------------------------------------------------------------------------------
def test_the_event_command_starts_and_ends_keyed_runs(world, sara, frozen):
    runner = CliRunner()
    config = str(world.config.dir)
    started = runner.invoke(cli, ["--config", config, "event", "09121111111", "cart_abandoned", "--key", "cart-981",
                                  "--data", '{"total": 1200000}'])
    assert started.exit_code == 0, started.output
    assert f"contact {sara}: cart_abandoned recorded; 0 pending touch(es) cancelled" in started.stdout
    assert "cart: enrolled: key cart-981" in started.stdout
    runner.invoke(cli, ["--config", config, "event", "09121111111", "cart_abandoned", "--key", "cart-982"])
    ended = runner.invoke(cli, ["--config", config, "event", "09121111111", "order_placed", "--key", "cart-981"])
    assert ended.exit_code == 0, ended.output
    assert "order_placed recorded; ended cart (cart-981); 3 pending touch(es) cancelled" in ended.stdout
    assert [(r["event_key"], r["event_data"], r["status"]) for r in runs(world, sara)] == [
        ("cart-981", {"total": 1200000}, "exited"), ("cart-982", None, "active")]


@pytest.mark.parametrize("data, words", [
    ('{"total": 1200000,}', "--data: not valid JSON at line 1 column 19"),
    ("{'total': 1}", "--data: not valid JSON at line 1 column 2"),
    ("[1, 2]", "--data: must be a JSON object"),
    ('{"total": NaN}', "--data: NaN is not a number JSON can store"),
])
def test_bad_data_on_the_command_line_is_one_clear_error(world, sara, data, words):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, "-c", "from engine.cli import main; main()", "--config",
                           str(world.config.dir), "event", "09121111111", "cart_abandoned", "--key", "c1",
                           "--data", data], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2, done
    assert words in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ContactEvent.__table__)).scalar() == 0


# -- the API ---------------------------------------------------------------------------------------------
@pytest.fixture
def api(world):
    client, key = api_client(world)
    client.headers.update(auth(key))
    return client


def test_the_api_starts_and_ends_keyed_runs(world, api, sara, frozen):
    body = {"contact": "09121111111", "type": "cart_abandoned", "key": "cart-981", "data": {"total": 1200000}}
    first = api.post("/api/v1/events", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["started"] == [{"sequence": "cart", "outcome": "enrolled", "reason": "key cart-981"}]
    assert api.post("/api/v1/events", json=body).json()["started"][0]["outcome"] == "already_active"
    api.post("/api/v1/events", json={**body, "key": "cart-982"})
    ended = api.post("/api/v1/events", json={"contact": "09121111111", "type": "order_placed", "key": "cart-981"})
    assert ended.json()["ended"] == ["cart (cart-981)"] and ended.json()["cancelled"] == 3
    assert [(r["event_key"], r["status"]) for r in runs(world, sara)] == [("cart-981", "exited"), ("cart-982", "active")]
    timeline = api.get("/api/v1/contacts/09121111111/timeline").json()
    assert [(e["sequence"], e["event_key"], e["status"]) for e in timeline["enrollments"]] == [
        ("cart", "cart-981", "exited"), ("cart", "cart-982", "active")]
    assert [(i["event"], i["key"]) for i in timeline["items"] if i["kind"] == "event"] == [
        ("cart_abandoned", "cart-981"), ("cart_abandoned", "cart-981"), ("cart_abandoned", "cart-982"),
        ("order_placed", "cart-981")]


@pytest.mark.parametrize("body, field, words", [
    ('{"contact": "09121111111", "type": "cart_abandoned", "data": [1]}', "data", "valid dictionary"),
    ('{"contact": "09121111111", "type": "cart_abandoned", "data": {"total": NaN}}', "data", "not a number"),
    ('{"contact": "09121111111", "type": "cart abandoned"}', "type", "not an event name"),
    ('{"contact": "09121111111", "type": "cart_abandoned", "key": ""}', "key", "at least 1"),
    # the position of the mistake in the body, as for every route
    ('{"contact": "09121111111", "type": "cart_abandoned", "data": {"total": 1}', "[73]", "JSON decode error"),
])
def test_bad_event_bodies_are_a_422_naming_the_field(world, api, sara, body, field, words):
    response = api.post("/api/v1/events", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(e["field"] == field and words in e["message"] for e in errors), errors
    assert runs(world, sara) == []


def test_the_events_api_needs_a_key_and_limits_the_body(world, sara):
    client, key = api_client(world)
    body = {"contact": "09121111111", "type": "cart_abandoned", "key": "c"}
    assert client.post("/api/v1/events", json=body).status_code == 401
    huge = json.dumps({**body, "data": {"note": "x" * (2 * 1024 * 1024)}})
    response = client.post("/api/v1/events", content=huge, headers={**auth(key), "Content-Type": "application/json"})
    assert response.status_code == 413
    assert runs(world, sara) == []
