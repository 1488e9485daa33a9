"""``after: {event: clicked, touch: value, delay: 1h, within: 2d, else: skip}``: a touch that waits for an event.

The wait starts when the previous touch ends (the message becomes ``scheduled`` then, ``due_at`` is that
moment). Each time the message is claimed, :func:`wait_decision` looks at the batch's facts:

* the event happened at T: the touch is due at T + ``delay`` (sent now if that has passed, else deferred to it);
* no event and ``within`` has not passed: deferred to the next look, ``LOOK_EVERY`` later (or the timeout);
  the first look is ``LOOK_EVERY`` after the wait starts (:func:`first_look`);
* no event at the timeout: ``skipped`` with the reason, or sent (``else: send``). The next touch's ``after``
  counts from that moment, as after any touch.

Everything the wait needs is on the message row (its ``due_at`` and ``next_attempt_at``) and in the facts, so a
worker that dies in the middle of a wait leaves nothing to repair: the next claim decides again.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from .conditions import ANY, ENGAGEMENT_FACTS
from .durations import format_duration, parse_duration

__all__ = ["EventWait", "parse_wait", "wait_decision", "first_look", "LOOK_EVERY", "WAIT_KEYS"]

#: how often a waiting message looks for its event: its delay counts from the event itself, so a delay of at
#: least this long is kept exactly; a shorter one ends at most this much late
LOOK_EVERY = timedelta(minutes=5)
WAIT_KEYS = {"event", "touch", "delay", "within", "else"}
Report = Callable[[str, str], None]


@dataclass(frozen=True)
class EventWait:
    event: str
    touch: str
    delay: timedelta
    within: timedelta
    #: what happens when the event has not come ``within``: skip (the default) or send
    otherwise: str = "skip"

    @classmethod
    def from_json(cls, data: dict) -> "EventWait":
        """A wait as :meth:`engine.sequences.Sequence.to_json` stored it."""
        return cls(data["event"], data["touch"], parse_duration(data["delay"]), parse_duration(data["within"]),
                   data.get("otherwise", "skip"))

    def words(self) -> str:
        return f"{self.event} {self.touch}"


def parse_wait(raw: dict, key: str, report: Report, earlier: list[str], channels: dict[str, str]) -> EventWait | None:
    """The wait written at ``key`` (a touch's ``after`` mapping), or None with each problem reported."""
    ok = True
    for extra in sorted(set(raw) - WAIT_KEYS):
        report(f"{key}.{extra}", f"unknown key; a wait takes {', '.join(sorted(WAIT_KEYS))}")
        ok = False
    event = raw.get("event")
    if event not in ENGAGEMENT_FACTS:
        report(f"{key}.event", f"{event!r}: wait for one of {', '.join(ENGAGEMENT_FACTS)}")
        return None
    touch = raw.get("touch", ANY)
    if event == "replied":
        touch = ANY
    elif touch != ANY and touch not in earlier:
        where = "comes at or after this one" if touch in channels else "is not a touch of this sequence"
        report(f"{key}.touch", f"{touch!r} {where}; wait for an event of an earlier touch "
                               f"({', '.join(earlier) or 'none'}) or any")
        return None
    elif event == "opened" and channels.get(touch) == "sms":
        report(f"{key}.event", f"an SMS is never opened (touch {touch!r} is an SMS), so this wait always times out; "
                               "wait for clicked or delivered")
        return None
    durations = {}
    for name, default in (("delay", "0s"), ("within", None)):
        value = raw.get(name, default)
        if value is None:
            report(f"{key}.{name}", "is required: how long to wait for the event, e.g. within: 2d")
            return None
        try:
            durations[name] = parse_duration(value)
        except ValueError as err:
            report(f"{key}.{name}", str(err))
            ok = False
    otherwise = raw.get("else", "skip")
    if otherwise not in ("skip", "send"):
        report(f"{key}.else", f"{otherwise!r}: write skip (the default) or send (sent at the timeout anyway)")
        ok = False
    if not ok:
        return None
    return EventWait(event, str(touch), durations["delay"], durations["within"], otherwise)


def first_look(touch) -> timedelta:
    """How long after its wait starts a waiting touch is first claimed (0 for any other touch): an event can
    hardly have come at the very moment the previous touch ended."""
    return min(LOOK_EVERY, touch.wait.within) if touch.wait is not None else timedelta(0)


@dataclass(frozen=True)
class WaitDecision:
    """``action``: send (the event came ``delay`` ago, or timed out with else: send), wait, or skipped."""

    action: str
    reason: str | None = None
    until: datetime | None = None


def wait_decision(wait: EventWait, started: datetime, now: datetime, facts: Any) -> WaitDecision:
    """What a waiting message does now; ``started`` is when its wait began (its ``due_at``)."""
    happened = facts.when(wait.event, wait.touch)
    timeout = started + wait.within
    if happened is not None and happened <= timeout:
        due = happened + wait.delay
        if due <= now:
            return WaitDecision("send")
        return WaitDecision("wait", f"{wait.words()} at {happened.isoformat()}; due {format_duration(wait.delay)} "
                                    f"after it, at {due.isoformat()}", due)
    if now < timeout:
        return WaitDecision("wait", f"waiting for {wait.words()} until {timeout.isoformat()}",
                            min(timeout, now + LOOK_EVERY))
    if wait.otherwise == "send":
        return WaitDecision("send", f"no {wait.words()} within {format_duration(wait.within)}; sent anyway (else: send)")
    return WaitDecision("skipped", f"not sent: no {wait.words()} within {format_duration(wait.within)}")
