"""The worker was stopped for a day: a big backlog is due at once. It drains oldest first, skips urgent
touches whose offer ended meanwhile, and sends nothing at night (the drain runs into 21:00 on purpose)."""
from __future__ import annotations

import os
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from engine.clock import to_utc
from engine.models import Contact, Enrollment, Message

from .conftest import World, simple_sequence

N = int(os.environ.get("FOLLOWUP_CATCHUP_N", "20000"))
TEHRAN = ZoneInfo("Asia/Tehran")
UTC = timezone.utc


def fill_backlog(world: World, n: int, at: datetime, rng: random.Random) -> None:
    """``n`` first touches due over the last 24 hours (ids in random order of due time); 1 in 10 urgent,
    half of those with an offer that ended an hour ago."""
    with world.engine.connect() as conn:
        seq_hash = conn.execute(sa.text("SELECT hash FROM sequence_versions WHERE name = 'c'")).scalar_one()
    dues = [at - timedelta(seconds=rng.randrange(1, 86400)) for _ in range(n)]
    contacts = [dict(id=i + 1, phone=f"+98912{i:07d}", first_name=f"n{i}", last_name="", tags="", attrs={},
                     created_at=at, updated_at=at) for i in range(n)]
    enrollments, messages = [], []
    for i in range(n):
        urgent = i % 10 == 0
        expired = urgent and i % 20 == 0
        enrollments.append(dict(id=i + 1, contact_id=i + 1, sequence="c", sequence_hash=seq_hash, status="active",
                                enrolled_at=dues[i], offer_code=None,
                                offer_expires_at=(at - timedelta(hours=1)) if expired else
                                (at + timedelta(days=3)) if urgent else None))
        messages.append(dict(id=i + 1, enrollment_id=i + 1, contact_id=i + 1, sequence="c", touch_index=0,
                             touch="t0", channel="sms", urgent=urgent, status="scheduled", due_at=dues[i],
                             next_attempt_at=dues[i], attempt=0, polls=0, updated_at=at))
    with world.engine.begin() as conn:
        for table, rows in ((Contact.__table__, contacts), (Enrollment.__table__, enrollments),
                            (Message.__table__, messages)):
            for start in range(0, n, 5000):
                conn.execute(sa.insert(table), rows[start:start + 5000])


@pytest.fixture(scope="module")
def caught_up(tmp_path_factory):
    """Run the catch-up once for the tests below: (world, start, checked parts)."""
    world, start = _catch_up(tmp_path_factory)
    yield world, start, _check(world, start)
    world.close()


def _catch_up(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("catchup")
    rng = random.Random(7)
    # Saturday 2026-12-05, 20:40 in Tehran: twenty minutes of window left tonight
    start = datetime(2026, 12, 5, 20, 40, tzinfo=TEHRAN).astimezone(UTC)
    with freeze_time(start) as clock:
        world = World(tmp_path, f"sqlite:///{tmp_path}/followup.db", [simple_sequence("c", after="1d")], settings={
            "send_window": {"start": "09:00", "end": "21:00", "days": "all"}, "frequency_cap": {"per_day": 3},
            "worker": {"batch_size": 500}})
        fill_backlog(world, N, start, rng)
        # the worker is back: ticks of up to 2 batches of 500, spaced so about half drains before 21:00
        step = timedelta(minutes=20) * (2 * 1000 / N) * 0.95
        ticks = 0
        while True:
            report = world.dispatcher.tick(max_batches=2)
            ticks += 1
            if not report.claimed and ticks > 1:
                if datetime.now(UTC).astimezone(TEHRAN).hour < 9 or datetime.now(UTC).astimezone(TEHRAN).hour >= 21:
                    clock.move_to(datetime(2026, 12, 6, 9, 0, tzinfo=TEHRAN).astimezone(UTC))
                    continue
                break
            clock.tick(step)
            assert ticks < 10_000
    return world, start


def _check(world: World, start: datetime):
    rows = world.messages()
    tonight = [m for m in rows if m["status"] == "sent" and to_utc(m["sent_at"]) < start + timedelta(hours=1)]
    tomorrow = [m for m in rows if m["status"] == "sent" and to_utc(m["sent_at"]) >= start + timedelta(hours=1)]
    return rows, tonight, tomorrow


@pytest.mark.slow
def test_a_day_of_backlog_drains_without_loss_skips_ended_offers_and_never_at_night(caught_up):
    world, start, (rows, tonight, tomorrow) = caught_up
    by_status: dict[str, int] = {}
    for m in rows:
        by_status[m["status"]] = by_status.get(m["status"], 0) + 1
    expired = [m for m in rows if m["urgent"] and m["id"] % 20 == 1]
    assert all(m["status"] == "skipped" and "offer_expired" in m["reason"] for m in expired)
    assert by_status == {"sent": N - len(expired), "skipped": len(expired)}, by_status
    assert len(world.sms.outbox) == N - len(expired)

    window_bad = [m["id"] for m in rows if m["sent_at"] and not (
        9 <= to_utc(m["sent_at"]).astimezone(TEHRAN).hour < 21)]
    assert window_bad == []
    assert tonight and tomorrow, "the drain should cross 21:00 so the night rule is exercised"


def claim_order_backwards(world: World, part: list[dict]) -> list:
    """Pairs of consecutive claims (the `sending` log rows; the threads of one batch reach the provider in
    any order) where a younger message went before an older one."""
    order = {r["message_id"]: i for i, r in enumerate(world.log(event="sending"))}
    dues = [to_utc(m["due_at"]) for m in sorted(part, key=lambda m: order[m["id"]])]
    return [(a, b) for a, b in zip(dues, dues[1:]) if b < a]


@pytest.mark.slow
def test_the_evening_drain_goes_oldest_first(caught_up):
    world, start, (rows, tonight, tomorrow) = caught_up
    backwards = claim_order_backwards(world, tonight)
    assert not backwards, f"{len(backwards)} of {len(tonight)} sent before an older one, e.g. {backwards[:3]}"


@pytest.mark.slow
def test_the_morning_drain_after_the_night_still_goes_oldest_first(caught_up):
    world, start, (rows, tonight, tomorrow) = caught_up
    backwards = claim_order_backwards(world, tomorrow)
    assert not backwards, f"{len(backwards)} of {len(tomorrow)} sent before an older one, e.g. {backwards[:3]}"

