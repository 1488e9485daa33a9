"""A provider's ``rate`` shared by every worker on one database (engine/ratebuckets.py, providers/ratelimit.py)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from engine.db import make_engine, upgrade
from engine.dispatch import Dispatcher
from engine.timer import Immediate
from engine.ratebuckets import RateBucket
from providers.errors import TransientError
from providers.ratelimit import LeasedRateLimiter, RateLimiter

from .conftest import PG_URL, World, simple_sequence
from .faults import ANYTIME, reset_postgres


class FakeClock:
    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sqlite_engine(tmp_path) -> sa.Engine:
    url = f"sqlite:///{tmp_path}/followup.db"
    upgrade(url)
    return make_engine(url)


def tat(engine: sa.Engine, provider: str) -> float:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT tat FROM rate_buckets WHERE provider = :p"), {"p": provider}).scalar_one()


# -- the bucket's math, on a frozen clock ---------------------------------------------------------------
def test_a_lease_begins_where_the_last_one_ended_whichever_worker_took_it(sqlite_engine):
    clock = FakeClock(1000.0)
    one, two = RateBucket(sqlite_engine, "panel", wall=clock), RateBucket(sqlite_engine, "panel", wall=clock)
    assert one.lease(3, 0.1) == 0.0  # the first lease: slots at 1000.0, 1000.1, 1000.2
    assert tat(sqlite_engine, "panel") == pytest.approx(1000.3)
    assert two.lease(3, 0.1) == pytest.approx(0.3)  # another worker: its slots follow, 1000.3 to 1000.5
    clock.now = 1000.1
    assert one.lease(5, 0.1) == pytest.approx(0.5)  # 1000.6 is 0.5 s away
    assert tat(sqlite_engine, "panel") == pytest.approx(1001.1)
    assert RateBucket(sqlite_engine, "other", wall=clock).lease(1, 1.0) == 0.0  # each provider has its own row


def test_an_idle_bucket_saves_nothing_up(sqlite_engine):
    clock = FakeClock(1000.0)
    bucket = RateBucket(sqlite_engine, "panel", wall=clock)
    bucket.lease(10, 0.1)
    clock.now = 5000.0  # an hour idle: the next lease begins now and is as long as ever
    assert bucket.lease(10, 0.1) == 0.0
    assert tat(sqlite_engine, "panel") == pytest.approx(5001.0)
    assert bucket.lease(1, 0.1) == pytest.approx(1.0)


def test_leased_slots_are_spent_locally_one_lease_per_batch():
    clock = FakeClock(0.0)
    leases: list[tuple[int, float]] = []

    def lease(n: int, interval: float) -> float:
        leases.append((n, interval))
        return 2.0 * (len(leases) - 1)  # another worker holds the 2 s after each of ours

    limiter = LeasedRateLimiter(20, lease, clock=clock)  # 20/s: leases of 0.25 s = 5 slots
    delays = [limiter.reserve() for _ in range(8)]
    assert leases == [(5, 0.05), (5, 0.05)]
    assert delays == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2, 2.0, 2.05, 2.1])


def test_leased_slots_that_passed_unused_are_dropped_not_burst():
    clock = FakeClock(0.0)
    leases = []
    limiter = LeasedRateLimiter(10, lambda n, i: leases.append(n) or 0.0, lease_seconds=1.0, clock=clock)
    assert limiter.reserve() == 0.0  # slots at 0.0 … 0.9
    clock.now = 0.55  # the slots at 0.1 … 0.4 passed unused; the one at 0.5 is still this interval's
    assert [limiter.reserve() for _ in range(5)] == pytest.approx([0.0, 0.05, 0.15, 0.25, 0.35])
    assert leases == [10]
    clock.now = 100.0  # the rest of the lease is long gone: a new one, not five sends at once
    assert limiter.reserve() == 0.0 and limiter.reserve() == pytest.approx(0.1)
    assert leases == [10, 10]


def test_two_workers_on_one_bucket_never_share_a_slot(sqlite_engine):
    """The point of the bucket: their sends interleave at the rate, as one worker's would."""
    clock = FakeClock(1000.0)

    def worker() -> LeasedRateLimiter:
        return LeasedRateLimiter(10, RateBucket(sqlite_engine, "panel", wall=clock).lease, clock=clock)

    shared = [worker(), worker()]
    alone = [RateLimiter(10, clock=clock), RateLimiter(10, clock=clock)]
    for limiters in (shared, alone):
        slots = []
        for i in range(20):  # the two take turns, 10 sends each
            slots.append(clock.now + limiters[i % 2].reserve())
        gaps = [b - a for a, b in zip(sorted(slots), sorted(slots)[1:])]
        if limiters is shared:
            assert min(gaps) >= 0.1 - 1e-6  # 20 sends take 2 s between them: the rate is the panel's
        else:
            assert min(gaps) == 0.0  # each with its own limiter: two sends in the same slot


def test_a_database_error_is_transient_and_nothing_is_sent(tmp_path):
    url = f"sqlite:///{tmp_path}/empty.db"  # never migrated: no rate_buckets table
    bucket = RateBucket(make_engine(url), "panel", wall=FakeClock())
    with pytest.raises(TransientError) as caught:
        bucket.lease(1, 0.1)
    assert caught.value.provider == "panel" and "shared rate" in str(caught.value)


# -- PostgreSQL: three workers, one rate --------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="FOLLOWUP_TEST_POSTGRES_URL is not set")
def test_three_workers_on_postgresql_take_turns_at_the_providers_rate(tmp_path, frozen):
    url = reset_postgres(PG_URL, "rate_buckets")
    world = World(tmp_path, url, [simple_sequence("a")], settings={
        "send_window": ANYTIME, "worker": {"batch_size": 12},
        # one send every 5 s: the real time the test takes is small beside the slots it checks
        "providers": {"sms": [{"name": "panel", "type": "memory", "rate": "12/m"}],
                      "email": [{"name": "mem-email", "type": "memory"}]}})
    ids = world.add_contacts(*({"phone": f"09120000{i:03d}"} for i in range(36)))
    world.enroll("a", *ids)
    others = [sa.create_engine(url) for _ in range(2)]  # each worker has its own connections
    waits: list[list[float]] = [world.sleeps, [], []]
    dispatchers = [world.dispatcher] + [Dispatcher(world.config, world.providers, engine=e, sleep=w.append,
                                                   timer=Immediate(w.append)) for e, w in zip(others, waits[1:])]
    try:
        for dispatcher in dispatchers:  # a batch of 12 each
            assert dispatcher.tick(max_batches=1).counts.get("sent") == 12
    finally:
        for dispatcher in dispatchers[1:]:
            dispatcher.close()
        for engine in others:
            engine.dispose()
    assert len(world.sms.outbox) == 36
    assert all(waits), "every worker sent some"
    # 36 sends, 5 s apart, in one line: the first at once (no sleep), the last 175 s after it
    assert sorted(w for ws in waits for w in ws) == pytest.approx([5.0 * i for i in range(1, 36)], abs=3.0)
