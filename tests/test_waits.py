"""Event waits on a frozen clock: due `delay` after the event, skipped (or sent with else: send) at the timeout,
the next touch counted from that moment, and a worker that dies in the middle of a wait."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.dispatch import Dispatcher
from engine.journey_checks import JourneyChecks
from engine.waits import EventWait, wait_decision
from tests.journey_support import engage, status_of

SARA = {"phone": "09121234567", "first_name": "سارا"}


def waiting(**wait) -> dict:
    return {"name": "coats", "touches": [
        {"name": "hello", "after": "0s", "channel": "sms", "template": "plain.sms.j2"},
        {"name": "value", "after": "1h", "channel": "sms", "template": "plain.sms.j2"},
        {"name": "saw-it", "channel": "sms", "template": "plain.sms.j2",
         "after": {"event": "clicked", "touch": "value", "delay": "1h", "within": "2d", **wait}},
        {"name": "bye", "after": "1d", "channel": "sms", "template": "plain.sms.j2"},
    ]}


def message(world, contact: int, touch: str) -> dict:
    return next(m for m in world.messages(contact_id=contact) if m["touch"] == touch)


def utc(value) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def start(make_world, frozen, **wait):
    world = make_world([waiting(**wait)])
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    frozen.tick(timedelta(hours=1))
    world.tick()  # value sent: the wait starts now
    assert status_of(world, sara, "value")[0] == "sent"
    return world, sara


def step(world, frozen, delta: timedelta, every=timedelta(minutes=5)) -> None:
    end = datetime.now(timezone.utc) + delta
    while datetime.now(timezone.utc) < end:
        frozen.tick(min(every, end - datetime.now(timezone.utc)))
        world.tick()


def test_the_touch_is_due_its_delay_after_the_event(make_world, frozen):
    world, sara = start(make_world, frozen)
    step(world, frozen, timedelta(hours=3))
    assert status_of(world, sara, "saw-it")[0] == "scheduled"
    assert "waiting for clicked value" in status_of(world, sara, "saw-it")[1]
    clicked_at = datetime.now(timezone.utc)
    engage(world, sara, "value")
    step(world, frozen, timedelta(minutes=59))
    assert status_of(world, sara, "saw-it")[0] == "scheduled"
    step(world, frozen, timedelta(minutes=1))
    row = message(world, sara, "saw-it")
    assert row["status"] == "sent" and utc(row["sent_at"]) == clicked_at + timedelta(hours=1)
    bye = message(world, sara, "bye")
    assert utc(bye["due_at"]) == clicked_at + timedelta(hours=1, days=1)


def test_no_event_within_the_window_skips_and_the_next_touch_counts_from_the_timeout(make_world, frozen):
    world, sara = start(make_world, frozen)
    began = datetime.now(timezone.utc)
    engage(world, sara, "hello")  # a click on another touch is not the one waited for
    step(world, frozen, timedelta(days=2) - timedelta(minutes=5), every=timedelta(hours=1))
    assert status_of(world, sara, "saw-it")[0] == "scheduled"
    step(world, frozen, timedelta(minutes=5))
    assert status_of(world, sara, "saw-it") == ("skipped", "not sent: no clicked value within 2d")
    assert utc(message(world, sara, "bye")["due_at"]) == began + timedelta(days=3)


def test_else_send_sends_at_the_timeout(make_world, frozen):
    world, sara = start(make_world, frozen, **{"else": "send"})
    began = datetime.now(timezone.utc)
    step(world, frozen, timedelta(days=2), every=timedelta(hours=1))
    row = message(world, sara, "saw-it")
    assert row["status"] == "sent" and began + timedelta(days=2) <= utc(row["sent_at"])
    assert utc(row["sent_at"]) < began + timedelta(days=2, hours=13)  # the next open send window at the latest


def test_a_worker_that_dies_in_the_middle_of_a_wait_leaves_it_to_the_next(make_world, frozen, monkeypatch):
    world, sara = start(make_world, frozen)
    step(world, frozen, timedelta(hours=2))
    before = message(world, sara, "saw-it")
    engage(world, sara, "value")
    clicked_at = datetime.now(timezone.utc)
    frozen.tick(timedelta(minutes=5))

    def dies(*args, **kwargs):
        raise SystemExit("killed in the claim")

    monkeypatch.setattr(JourneyChecks, "check", dies)
    with pytest.raises(SystemExit):
        world.tick()
    monkeypatch.undo()
    after = message(world, sara, "saw-it")
    assert (after["status"], after["next_attempt_at"], after["reason"]) == \
        (before["status"], before["next_attempt_at"], before["reason"])  # the claim's transaction never committed
    world.dispatcher.close()
    world.dispatcher = Dispatcher(world.config, world.providers, engine=world.engine, sleep=world.sleeps.append)
    world.tick()
    assert status_of(world, sara, "saw-it")[0] == "scheduled"
    assert "due 1h after it" in status_of(world, sara, "saw-it")[1]
    step(world, frozen, clicked_at + timedelta(hours=1) - datetime.now(timezone.utc))
    row = message(world, sara, "saw-it")
    assert row["status"] == "sent" and utc(row["sent_at"]) == clicked_at + timedelta(hours=1)


class Seen:
    def __init__(self, at):
        self.at = at

    def when(self, name, touch):
        return self.at


def test_wait_decision_table():
    t0 = datetime(2026, 12, 5, 6, 30, tzinfo=timezone.utc)
    wait = EventWait("clicked", "value", timedelta(hours=1), timedelta(days=2))
    assert wait_decision(wait, t0, t0 + timedelta(hours=1), Seen(None)).until == t0 + timedelta(hours=1, minutes=5)
    assert wait_decision(wait, t0, t0 + timedelta(days=2) - timedelta(minutes=1), Seen(None)).until == \
        t0 + timedelta(days=2)
    assert wait_decision(wait, t0, t0 + timedelta(hours=3), Seen(t0 + timedelta(hours=2))).action == "send"
    late = wait_decision(wait, t0, t0 + timedelta(days=3), Seen(t0 + timedelta(days=2, hours=1)))
    assert late.action == "skipped"  # an event after the timeout does not count
