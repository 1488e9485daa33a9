"""Operator hours: a promotional touch on a promotional line outside its hours is deferred, never dropped.

The panel is a real HTTP server on 127.0.0.1 answering in Kavenegar's wire format (tests/data/kavenegar/);
the worker is the real dispatcher under freezegun. The contact's send window is all day, so only the line's
operator hours (Tehran time) hold a message back.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.operator_hours import closed_until, line_for
from providers.base import OutgoingMessage
from providers.errors import ProviderConfigError
from providers.lines import DEFAULT_PROMOTIONAL_HOURS, OperatorHours, parse_lines
from providers.registry import create_provider
from tests.fakes.httpserver import FakeHttpServer

from .test_line_classes import LINES, PROMO, SERVICE, TEMPLATES, Panel

UTC = timezone.utc
ALL_DAY = "00:00-24:00"
#: Saturday 2026-12-05 22:30 in Tehran (UTC+03:30): after 21:00, the default end of a promotional line's hours
NIGHT = datetime(2026, 12, 5, 19, 0, tzinfo=UTC)
#: Sunday 09:00 in Tehran: when the default hours open again
MORNING = datetime(2026, 12, 6, 5, 30, tzinfo=UTC)
SARA = {"phone": "09121234567", "email": "sara@example.com", "first_name": "سارا", "timezone": "Asia/Tehran"}


def sequence(kind: str) -> dict:
    later = [{"name": f"t{i}", "after": "3d", "channel": "sms", "template": "plain.sms.j2"} for i in (1, 2)]
    return {"name": "night", "send_window": {"start": "00:00", "end": "24:00"},
            "touches": [{"name": "t0", "after": "0s", "channel": "sms", "kind": kind,
                         "template": "news.sms.j2" if kind == "informational" else "plain.sms.j2"}, *later]}


def night_world(make_world, server, kind: str, *, lines=LINES, more=()):
    entry = {"name": "kave", "type": "kavenegar", "api_key": "k" * 32, "base_url": server.url, "lines": lines}
    world = make_world([sequence(kind)], templates=TEMPLATES, settings={"providers": {
        "sms": [entry, *more], "email": [{"name": "mem-email", "type": "memory"}]}})
    (sara,) = world.add_contacts(SARA)
    world.enroll("night", sara)
    return world


# -- the hours of a line ------------------------------------------------------------------------
def test_a_promotional_line_has_the_default_hours_and_a_service_line_none():
    promo, service = parse_lines(LINES)
    assert promo.hours == DEFAULT_PROMOTIONAL_HOURS == OperatorHours(9 * 60, 21 * 60)
    assert service.hours is None
    assert DEFAULT_PROMOTIONAL_HOURS.describe() == "09:00–21:00 Tehran time"


@pytest.mark.parametrize("hours, expected", [("08:00-22:00", OperatorHours(480, 1320)),
                                             (" 7:30 - 23:00 ", OperatorHours(450, 1380)),
                                             (ALL_DAY, None)])
def test_hours_are_set_per_promotional_line(hours, expected):
    (line,) = parse_lines([{"number": PROMO, "class": "promotional", "hours": hours}])
    assert line.hours == expected


@pytest.mark.parametrize("item, where", [
    ({"number": PROMO, "class": "promotional", "hours": "22:00-08:00"}, "lines[0].hours"),  # over midnight
    ({"number": PROMO, "class": "promotional", "hours": "9-21"}, "lines[0].hours"),
    ({"number": PROMO, "class": "promotional", "hours": "09:60-21:00"}, "lines[0].hours"),
    ({"number": SERVICE, "class": "service", "hours": "09:00-21:00"}, "lines[0].hours"),
])
def test_bad_hours_are_refused_where_they_are(item, where):
    with pytest.raises(ProviderConfigError) as info:
        parse_lines([item])
    assert info.value.key == where


@pytest.mark.parametrize("at, opens", [
    (datetime(2026, 12, 5, 5, 29, tzinfo=UTC), datetime(2026, 12, 5, 5, 30, tzinfo=UTC)),  # 08:59 Tehran
    (datetime(2026, 12, 5, 5, 30, tzinfo=UTC), None),                                      # 09:00
    (datetime(2026, 12, 5, 17, 29, tzinfo=UTC), None),                                     # 20:59
    (datetime(2026, 12, 5, 17, 30, tzinfo=UTC), datetime(2026, 12, 6, 5, 30, tzinfo=UTC)),  # 21:00: tomorrow
    (datetime(2026, 12, 5, 21, 0, tzinfo=UTC), datetime(2026, 12, 6, 5, 30, tzinfo=UTC)),   # 00:30 next day
])
def test_when_the_default_hours_open(at, opens):
    assert DEFAULT_PROMOTIONAL_HOURS.opens(at) == opens


def test_only_a_promotional_message_on_a_listed_promotional_line_waits():
    listed = create_provider({"name": "kave", "type": "kavenegar", "api_key": "k" * 32, "lines": LINES})
    unlisted = create_provider({"name": "kave2", "type": "kavenegar", "api_key": "k" * 32, "sender": "30001"})
    promo = OutgoingMessage("1", "sms", "+989121234567", "x", metadata={"kind": "promotional"})
    info = OutgoingMessage("2", "sms", "+989121234567", "x", metadata={"kind": "informational"})
    alert = OutgoingMessage("3", "sms", "+989121234567", "x")  # an ops alert: no touch, no kind
    assert line_for(listed, "promotional").number == PROMO
    assert closed_until(listed, promo, NIGHT) == (MORNING, f"operator hours: promotional line {PROMO} of kave "
                                                            "sends 09:00–21:00 Tehran time")
    assert closed_until(listed, promo, MORNING) is None
    assert closed_until(listed, info, NIGHT) is None and closed_until(listed, alert, NIGHT) is None
    assert closed_until(unlisted, promo, NIGHT) is None  # the class of an unlisted sender is unknown


# -- the worker ---------------------------------------------------------------------------------
def test_a_promotional_touch_at_night_is_deferred_to_the_morning_then_sent(make_world, frozen):
    frozen.move_to(NIGHT)
    fake = Panel("kavenegar")
    with FakeHttpServer(fake) as server:
        world = night_world(make_world, server, "promotional")
        world.tick()
        [message] = world.messages(touch="t0")
        assert message["status"] == "scheduled" and fake.lines == []  # the panel was never called
        assert message["reason"].startswith(f"operator hours: promotional line {PROMO} of kave sends "
                                            "09:00–21:00 Tehran time; next attempt at 2026-12-06T05:30")
        assert message["next_attempt_at"].replace(tzinfo=UTC) >= MORNING
        assert message["attempt"] == 0  # a wait for the hours uses no attempt
        assert [r["event"] for r in world.log(message_id=message["id"])][-1] == "deferred"
        world.run(frozen, MORNING - timedelta(minutes=1))
        assert fake.lines == []
        world.run(frozen, MORNING + timedelta(minutes=1), step=timedelta(minutes=1))
    [message] = world.messages(touch="t0")
    assert message["status"] == "sent" and fake.lines == [PROMO]


def test_an_informational_touch_at_night_leaves_from_the_service_line(make_world, frozen):
    frozen.move_to(NIGHT)
    fake = Panel("kavenegar")
    with FakeHttpServer(fake) as server:
        world = night_world(make_world, server, "informational")
        world.tick()
    assert [m["status"] for m in world.messages(touch="t0")] == ["sent"] and fake.lines == [SERVICE]


def test_a_line_with_wider_hours_sends_at_night(make_world, frozen):
    frozen.move_to(NIGHT)  # 22:30 Tehran
    fake = Panel("kavenegar")
    with FakeHttpServer(fake) as server:
        world = night_world(make_world, server, "promotional",
                            lines=[{"number": PROMO, "class": "promotional", "hours": "07:00-23:00"}])
        world.tick()
    assert [m["status"] for m in world.messages(touch="t0")] == ["sent"] and fake.lines == [PROMO]


def test_a_closed_line_fails_over_to_a_provider_whose_line_is_open(make_world, frozen):
    frozen.move_to(NIGHT)
    closed, open_ = Panel("kavenegar"), Panel("kavenegar")
    with FakeHttpServer(closed) as first, FakeHttpServer(open_) as second:
        backup = {"name": "kave-late", "type": "kavenegar", "api_key": "k" * 32, "base_url": second.url,
                  "lines": [{"number": "30001", "class": "promotional", "hours": ALL_DAY}]}
        world = night_world(make_world, first, "promotional", more=[backup])
        world.tick()
    [message] = world.messages(touch="t0")
    assert (message["status"], message["provider"]) == ("sent", "kave-late")
    assert closed.lines == [] and open_.lines == ["30001"]
