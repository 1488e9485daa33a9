"""Provider faults against fake panels on 127.0.0.1, driving the real Dispatcher in-process.

``sleep`` is injected (World records it), so tenacity's waits and Retry-After cost no time;
freezegun moves the clock between ticks.
"""
from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.clock import to_utc
from tests.fakes.httpserver import FakeHttpServer, Reply

from .conftest import World, simple_sequence
from .faults import (ANYTIME, KAVE_KEY, SMSIR_KEY, FakeKavenegar, FakeSmsIr, audit_history, kavenegar_entry,
                     smsir_entry)

PHONES = [f"0912100{i:04d}" for i in range(6)]


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    monkeypatch.setenv("KAVENEGAR_API_KEY", KAVE_KEY)
    monkeypatch.setenv("SMSIR_API_KEY", SMSIR_KEY)


def world_with(tmp_path, sms: list[dict], *, contacts: int = 3, worker: dict | None = None, after: str = "1h"):
    world = World(tmp_path, f"sqlite:///{tmp_path}/followup.db", [simple_sequence("a", after=after)], settings={
        "send_window": ANYTIME, "frequency_cap": {"per_day": 50},
        "providers": {"sms": sms, "email": [{"name": "mem-email", "type": "memory"}]},
        "worker": {"max_attempts": 5, "inline_retries": 3, "retry_backoff_seconds": 60, **(worker or {})},
    })
    ids = world.add_contacts(*({"phone": p, "first_name": f"n{i}"} for i, p in enumerate(PHONES[:contacts])))
    world.enroll("a", *ids)
    return world


def sends(server) -> list:
    return [r for r in server.requests if r.path.endswith("/sms/send.json") or r.path.endswith("/send/bulk")]


def first_touch(world):
    return world.messages(touch="t0")


def test_a_burst_of_5xx_is_retried_inline_and_sent_once(tmp_path, frozen):
    fake = FakeKavenegar().then(Reply(503, "<html>Service Unavailable</html>"), times=2)
    with FakeHttpServer(fake) as server:
        world = world_with(tmp_path, [kavenegar_entry(server.url)], contacts=1)
        world.dispatcher.tick()
    assert [m["status"] for m in first_touch(world)] == ["sent"]
    assert len(sends(server)) == 3 and len(fake.accepted) == 1
    assert len(world.sleeps) == 2 and all(s <= 4.0 for s in world.sleeps)  # tenacity's backoff, injected


def test_a_provider_failing_for_days_is_not_hammered(tmp_path, frozen):
    """100% errors for three simulated days: per message at most max_attempts × inline_retries requests."""
    fake = FakeKavenegar()
    fake.always = (Reply(500, {"return": {"status": 500, "message": "err"}}), False)
    with FakeHttpServer(fake) as server:
        world = world_with(tmp_path, [kavenegar_entry(server.url)], contacts=3)
        for _ in range(3 * 24 * 4):  # a tick every 15 minutes for three days
            world.dispatcher.tick()
            frozen.tick(timedelta(minutes=15))
    per_message: dict[str, int] = {}
    for req in sends(server):
        per_message[req.form["localid"]] = per_message.get(req.form["localid"], 0) + 1
    assert per_message and max(per_message.values()) <= 5 * 3
    assert all(m["status"] == "failed" and "retries exhausted after 5 attempts" in m["reason"]
               for m in first_touch(world))
    audit = audit_history(world, outbox=tmp_path / "none.jsonl")
    assert audit.lost == 0 and not [p for p in audit.problems if "provider never got it" not in p]
    # backoff doubles: the five attempts of one message spread over 60+120+240+480 s at least
    log = [r for r in world.log(message_id=first_touch(world)[0]["id"]) if r["event"] in ("retry", "failed")]
    gaps = [(to_utc(b["at"]) - to_utc(a["at"])).total_seconds() for a, b in zip(log, log[1:])]
    assert gaps == sorted(gaps) and gaps[0] >= 60


@pytest.mark.parametrize("header, inline_wait, stored_at_least", [
    ({"Retry-After": "3"}, 3.0, 3),
    ({"Retry-After": "120"}, 10.0, 120),   # inline waits are capped; the rest becomes next_attempt_at
    ({}, None, 60),                        # no hint: exponential backoff inline, retry_backoff_seconds after
])
def test_429_honours_retry_after(tmp_path, frozen, header, inline_wait, stored_at_least):
    smsir = FakeSmsIr()
    smsir.script = [Reply(429, {"status": 20, "message": "too many"}, headers=header)] * 3
    with FakeHttpServer(smsir) as server:
        world = world_with(tmp_path, [smsir_entry(server.url)], contacts=1)
        world.dispatcher.tick()
        [message] = first_touch(world)
        assert message["status"] == "scheduled" and message["attempt"] == 1
        wait = (to_utc(message["next_attempt_at"]) - to_utc(message["updated_at"])).total_seconds()
        assert wait >= stored_at_least
        if inline_wait is not None:
            assert world.sleeps == [inline_wait, inline_wait]
        assert len(sends(server)) == 3 and smsir.received == []
        frozen.tick(timedelta(seconds=wait + 1))
        world.dispatcher.tick()
    assert first_touch(world)[0]["status"] == "sent" and len(smsir.received) == 1


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_is_transient_and_nothing_is_sent(tmp_path, frozen):
    world = world_with(tmp_path, [kavenegar_entry(f"http://127.0.0.1:{closed_port()}")], contacts=1)
    world.dispatcher.tick()
    [message] = first_touch(world)
    assert message["status"] == "scheduled" and "cannot connect" in message["reason"]
    assert [r["event"] for r in world.log(message_id=message["id"])][-1] == "retry"


def test_connect_refused_fails_over_to_the_next_provider(tmp_path, frozen):
    smsir = FakeSmsIr()
    with FakeHttpServer(smsir) as server:
        world = world_with(tmp_path, [kavenegar_entry(f"http://127.0.0.1:{closed_port()}"), smsir_entry(server.url)],
                           contacts=2)
        world.dispatcher.tick()
    assert {m["provider"] for m in first_touch(world)} == {"smsir"} and len(smsir.received) == 2


@pytest.mark.parametrize("accepted", [True, False], ids=["panel-took-it", "panel-lost-it"])
def test_read_timeout_is_reconciled_by_localid(tmp_path, frozen, accepted):
    """No answer within the timeout: ambiguous. Kavenegar is asked by localid; found → sent, absent → retry."""
    fake = FakeKavenegar().then(Reply(200, {"return": {"status": 200}, "entries": []}, delay=1.5), record=accepted)
    with FakeHttpServer(fake) as server:
        world = world_with(tmp_path, [kavenegar_entry(server.url, timeout=0.5)], contacts=1)
        world.dispatcher.tick()
        [message] = first_touch(world)
        assert fake.lookups == 1 and len(sends(server)) == 1  # never resent blindly
        if accepted:
            assert message["status"] == "sent" and "found by our id" in message["reason"]
        else:
            assert message["status"] == "scheduled" and "no record of our id" in message["reason"]
            frozen.tick(timedelta(minutes=2))
            world.dispatcher.tick()
            assert first_touch(world)[0]["status"] == "sent"
    assert fake.accepted == [world.reference(message["id"])]  # exactly once at the panel


def test_connection_reset_after_the_request_is_ambiguous_not_resent(tmp_path, frozen):
    fake = FakeKavenegar().then(Reply(drop=True), record=True)
    with FakeHttpServer(fake) as server:
        world = world_with(tmp_path, [kavenegar_entry(server.url)], contacts=1)
        world.dispatcher.tick()
    [message] = first_touch(world)
    assert message["status"] == "sent" and "found by our id" in message["reason"]
    assert len(sends(server)) == 1 and fake.lookups == 1


def test_connection_reset_without_lookup_leaves_unknown(tmp_path, frozen):
    """SMS.ir can't be asked by our id: a reset after the request is `unknown` for ops, not resent."""
    smsir = FakeSmsIr()
    smsir.script = [Reply(drop=True)]
    with FakeHttpServer(smsir) as server:
        world = world_with(tmp_path, [smsir_entry(server.url)], contacts=1)
        world.dispatcher.tick()
        frozen.tick(timedelta(hours=2))
        world.dispatcher.tick()
    [message] = first_touch(world)
    assert message["status"] == "unknown" and "not resent" in message["reason"]
    assert sum("t0" in r.json["messageText"] for r in sends(server)) == 1  # t0 went out once, never again
    assert world.messages(touch="t1")[0]["status"] == "sent"  # the sequence goes on


@pytest.mark.parametrize("status, outcome", [(418, "deferred"), (414, "failed"), (411, "failed")])
def test_http_200_with_an_error_body_is_read_from_the_body(tmp_path, frozen, status, outcome):
    fake = FakeKavenegar()
    fake.always = (Reply(200, {"return": {"status": status, "message": "خطا"}, "entries": None}), False)
    with FakeHttpServer(fake) as server:
        world = world_with(tmp_path, [kavenegar_entry(server.url)], contacts=1)
        world.dispatcher.tick()
    [message] = first_touch(world)
    events = [r["event"] for r in world.log(message_id=message["id"])]
    assert events[-1] == outcome and message["reason"]
    if status == 418:  # out of credit: the provider pauses, the message waits
        assert message["status"] == "scheduled" and world.log(event="provider_paused")
    if status == 411:  # a bad recipient: suppressed on sms
        assert world.messages()[0]["contact_id"] and "411" in message["reason"]


@pytest.mark.parametrize("accepted", [True, False])
def test_malformed_json_on_200_is_ambiguous_and_reconciled(tmp_path, frozen, accepted):
    fake = FakeKavenegar().then(Reply(200, "{'return': oops", headers={"Content-Type": "application/json"}),
                                record=accepted)
    with FakeHttpServer(fake) as server:
        world = world_with(tmp_path, [kavenegar_entry(server.url)], contacts=1)
        world.dispatcher.tick()
    [message] = first_touch(world)
    assert fake.lookups == 1 and len(sends(server)) == 1
    assert message["status"] == ("sent" if accepted else "scheduled")


def test_credit_runs_out_without_failover_defers_then_resume_sends_the_rest_once(tmp_path, frozen, monkeypatch):
    fake = FakeKavenegar(credit=2)
    with FakeHttpServer(fake) as server:
        world = world_with(tmp_path, [kavenegar_entry(server.url)], contacts=6)
        world.dispatcher.tick()
        t0 = first_touch(world)
        assert sum(m["status"] == "sent" for m in t0) == 2
        waiting = [m for m in t0 if m["status"] != "sent"]
        assert {m["status"] for m in waiting} == {"scheduled"}  # defer, don't drop
        assert all(m["attempt"] == 0 for m in waiting)  # a paused provider does not use up attempts
        for _ in range(5):  # still paused: ticks send nothing, fail nothing
            frozen.tick(timedelta(minutes=2))
            world.dispatcher.tick()
        assert {m["status"] for m in first_touch(world)} == {"sent", "scheduled"}
        fake.credit = None  # the owner topped up the account
        monkeypatch.setenv("FOLLOWUP_CONFIG", str(world.root / "config"))
        result = CliRunner().invoke(cli, ["providers", "resume", "kavenegar"])
        assert result.exit_code == 0, result.output
        frozen.tick(timedelta(minutes=2))
        world.dispatcher.tick()
    assert {m["status"] for m in first_touch(world)} == {"sent"}
    assert sorted(fake.accepted[:6]) == sorted(world.reference(m["id"]) for m in first_touch(world))
    assert len(set(fake.accepted)) == len(fake.accepted)


def test_credit_runs_out_and_the_pause_ends_by_itself(tmp_path, frozen):
    fake = FakeKavenegar(credit=1)
    with FakeHttpServer(fake) as server:
        world = world_with(tmp_path, [kavenegar_entry(server.url)], contacts=3,
                           worker={"provider_pause_seconds": 600})
        world.dispatcher.tick()
        fake.credit = None
        frozen.tick(timedelta(minutes=5))
        world.dispatcher.tick()
        assert sum(m["status"] == "sent" for m in first_touch(world)) == 1  # still paused
        frozen.tick(timedelta(minutes=6))
        world.dispatcher.tick()
    assert {m["status"] for m in first_touch(world)} == {"sent"}
    assert len(fake.accepted) == len(set(fake.accepted)) == 3 + sum(
        m["status"] == "sent" for m in world.messages(touch="t1"))


def test_credit_runs_out_with_a_failover_the_rest_go_there_once(tmp_path, frozen):
    fake, smsir = FakeKavenegar(credit=2), FakeSmsIr()
    with FakeHttpServer(fake) as k_server, FakeHttpServer(smsir) as s_server:
        world = world_with(tmp_path, [kavenegar_entry(k_server.url), smsir_entry(s_server.url)], contacts=6)
        world.dispatcher.tick()
    t0 = first_touch(world)
    assert {m["status"] for m in t0} == {"sent"}
    assert sum(m["provider"] == "kavenegar" for m in t0) == 2 and len(smsir.received) == 4
    assert len({p for p, _ in smsir.received}) == 4
