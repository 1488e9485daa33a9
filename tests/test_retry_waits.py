"""A send waiting between tries gives its thread back: the real timer, not an injected sleep."""
from __future__ import annotations

import threading

from engine.dispatch import Dispatcher
from engine.sending import MAX_INLINE_WAIT
from engine.timer import Timer
from providers.errors import RateLimitedError

from .conftest import simple_sequence

ALL_DAY = {"send_window": {"start": "00:00", "end": "24:00", "days": "all"}, "frequency_cap": {"per_day": 10},
           "worker": {"concurrency": 1}}


def real_time_dispatcher(world) -> Dispatcher:
    """A dispatcher that waits on the clock (the world's own one records the waits instead)."""
    world.dispatcher.close()
    world.dispatcher = Dispatcher(world.config, world.providers, engine=world.engine)
    return world.dispatcher


def test_timer_runs_callbacks_in_the_order_they_fall_due_and_close_runs_the_rest():
    timer = Timer()
    ran: list[str] = []
    done = threading.Event()
    timer.later(0.04, lambda: (ran.append("second"), done.set()))
    timer.later(0.0, lambda: ran.append("first"))
    timer.later(3600, lambda: ran.append("on close"))
    assert done.wait(5)
    timer.close()
    assert ran == ["first", "second", "on close"]


def test_a_retry_after_does_not_hold_the_only_send_thread(make_world):
    world = make_world([simple_sequence("a")], settings=ALL_DAY)
    dispatcher = real_time_dispatcher(world)
    first = world.add_contacts({"phone": "09121234567", "first_name": "سارا"},
                               {"phone": "09351234567", "first_name": "علی"},
                               {"phone": "09131234567", "first_name": "مریم"})
    world.enroll("a", *first)
    busy = [True]

    def once_busy(message):
        if message.to == "+989121234567" and busy[0]:
            busy[0] = False
            return RateLimitedError("slow down", retry_after=0.2)
        return None

    world.sms.fail_when(once_busy)
    report = dispatcher.tick()
    # concurrency 1: had the wait slept on the send thread, Sara's retry would come before Ali and Maryam
    assert [m.to for m in world.sms.attempts] == ["+989121234567", "+989351234567", "+989131234567",
                                                  "+989121234567"]
    assert report.counts.get("sent") == 3
    assert {m["status"] for m in world.messages(touch="t0")} == {"sent"}
    assert [r["attempt"] for r in world.log(event="sent")] == [1, 1, 1]


def test_stopping_ends_a_long_wait_and_schedules_the_message_again(make_world):
    world = make_world([simple_sequence("a")], settings=ALL_DAY)
    dispatcher = real_time_dispatcher(world)
    (sara,) = world.add_contacts({"phone": "09121234567", "first_name": "سارا"})
    world.enroll("a", sara)
    asked = threading.Event()

    def busy(message):
        asked.set()
        return RateLimitedError("slow down", retry_after=3600.0)  # waited inline for at most MAX_INLINE_WAIT

    world.sms.fail_when(busy)
    ticking = threading.Thread(target=dispatcher.tick)
    ticking.start()
    assert asked.wait(30)
    dispatcher.stop()
    ticking.join(MAX_INLINE_WAIT / 2)  # a liveness bound: without stop() ending it, the wait runs its full 10 s
    assert not ticking.is_alive()
    (row,) = world.messages(touch="t0")
    assert row["status"] == "scheduled" and row["attempt"] == 1 and len(world.sms.attempts) == 1
    assert "slow down" in row["reason"] and "the worker is stopping" in row["reason"]
    assert [r["event"] for r in world.log(message_id=row["id"])][-1] == "retry"
