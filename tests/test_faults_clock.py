"""Clock faults: jumps of ±1 hour and DST changes around the send window. Nothing goes out of its window."""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from engine.clock import to_utc
from engine.window import WEEKDAYS, SendWindow

from .conftest import World, simple_sequence

ZONES = ["Asia/Tehran", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe"]


def window_of(spec: dict) -> SendWindow:
    def minutes(hhmm: str) -> int:
        h, m = hhmm.split(":")
        return int(h) * 60 + int(m)

    days = range(7) if spec.get("days", "all") == "all" else [WEEKDAYS[d] for d in spec["days"]]
    return SendWindow(minutes(spec["start"]), minutes(spec["end"]), frozenset(days))


def outside_window(world: World, window: SendWindow) -> list[str]:
    """Every sent message whose sent_at, in its contact's own timezone, is outside the window."""
    with world.engine.connect() as conn:
        tz_of = {r.id: r.timezone for r in conn.exec_driver_sql("SELECT id, timezone FROM contacts")}
    bad = []
    for m in world.messages():
        if m["sent_at"] is None or m["status"] not in ("sent", "delivered", "undelivered"):
            continue
        local = to_utc(m["sent_at"]).astimezone(ZoneInfo(tz_of[m["contact_id"]] or "Asia/Tehran"))
        if not window.contains(local):
            bad.append(f"message {m['id']} ({m['touch']}) sent at {local.isoformat()} {local.tzinfo}")
    return bad


def clock_world(tmp_path, window: dict, zones: list[str], after: str = "30m") -> World:
    world = World(tmp_path, f"sqlite:///{tmp_path}/followup.db", [simple_sequence("a", after=after)], settings={
        "send_window": window, "frequency_cap": {"per_day": 10}})
    ids = world.add_contacts(*({"phone": f"0912600{i:04d}", "first_name": f"n{i}", "timezone": tz}
                               for i, tz in enumerate(zones)))
    world.enroll("a", *ids)
    return world


def test_clock_jumps_of_an_hour_either_way_never_send_outside_the_window(tmp_path):
    spec = {"start": "09:00", "end": "21:00", "days": ["sat", "sun", "mon", "tue", "wed", "thu"]}
    # Saturday 20:10 in Tehran: the first touch just fits, the next ones fall at the window's edge
    with freeze_time("2026-12-05 16:40:00", tz_offset=0) as clock:
        world = clock_world(tmp_path, spec, ZONES * 2)
        moves = [10, 60, -60, 60, 60, -60, 45, -60, 120, -60] * 12  # minutes, about 3 days forward in all
        for minutes in moves:
            world.dispatcher.tick()
            clock.tick(timedelta(minutes=minutes))
            world.dispatcher.tick()
        for _ in range(7 * 24):  # then an hour at a time for a week: everything finishes
            clock.tick(timedelta(hours=1))
            world.dispatcher.tick()
    assert outside_window(world, window_of(spec)) == []
    assert {m["status"] for m in world.messages()} == {"sent"}
    assert world.log(event="deferred")  # the jumps really pushed touches out of the window
    assert len(world.sms.outbox) == 30 and len({m.message_id for m in world.sms.outbox}) == 30


@pytest.mark.parametrize("start, spec", [
    # autumn: 2026-10-25 03:00 CEST → 02:00 CET; 02:00–03:00 happens twice that night
    ("2026-10-24 18:00:00", {"start": "09:00", "end": "21:00"}),
    ("2026-10-24 18:00:00", {"start": "02:00", "end": "03:00"}),
    # spring: 2026-03-29 02:00 CET → 03:00 CEST; 02:00–03:00 does not exist that day
    ("2026-03-28 18:00:00", {"start": "02:00", "end": "03:00"}),
    ("2026-03-28 18:00:00", {"start": "09:00", "end": "21:00"}),
])
def test_dst_change_in_berlin_around_the_window(tmp_path, start, spec):
    with freeze_time(start, tz_offset=0) as clock:
        world = clock_world(tmp_path, {**spec, "days": "all"}, ["Europe/Berlin"] * 4, after="20m")
        for _ in range(4 * 24 * 6):  # every 10 minutes for four days, across the change
            world.dispatcher.tick()
            clock.tick(timedelta(minutes=10))
    assert outside_window(world, window_of({**spec, "days": "all"})) == []
    assert {m["status"] for m in world.messages()} == {"sent"}
    assert len({m.message_id for m in world.sms.outbox}) == len(world.sms.outbox) == 12


def test_the_ambiguous_autumn_hour_counts_once_per_local_day_for_the_cap(tmp_path):
    """With a cap of 1 a day, the 02:00–03:00 window that happens twice on 2026-10-25 still sends one touch."""
    with freeze_time("2026-10-24 21:00:00", tz_offset=0) as clock:
        world = World(tmp_path, f"sqlite:///{tmp_path}/followup.db", [simple_sequence("a", after="10m")], settings={
            "send_window": {"start": "02:00", "end": "03:00", "days": "all"}, "frequency_cap": {"per_day": 1}})
        [cid] = world.add_contacts({"phone": "09126009999", "first_name": "x", "timezone": "Europe/Berlin"})
        world.enroll("a", cid)
        for _ in range(3 * 24 * 6):
            world.dispatcher.tick()
            clock.tick(timedelta(minutes=10))
    berlin = ZoneInfo("Europe/Berlin")
    days = [to_utc(m["sent_at"]).astimezone(berlin).date() for m in world.messages() if m["sent_at"]]
    assert len(days) == 3 and len(set(days)) == 3, days
