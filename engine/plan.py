"""The checks made at claim time, as plain functions of what was read: cancel, skip, defer or send.

1. the enrollment is still active                → else ``cancelled``
2. the sequence is not paused or orphaned        → else ``deferred`` by ``hold`` (see :mod:`engine.control`)
3. the contact is not suppressed on the channel  → else ``skipped`` (a suppression for promotional
   SMS only, :mod:`engine.kinds`, lets informational touches through)
4. an urgent touch's offer is live               → else ``skipped`` (offer_expired / sold_out)
5. send window and frequency cap                 → else ``deferred`` to the next allowed moment,
   unless that passes an urgent touch's deadline → then ``skipped`` (a holiday the window skips is
   named in the reason)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .addresses import landline
from .clock import to_utc
from .durations import parse_duration
from .kinds import PROMOTIONAL, blocks
from .sms import DEFAULT_MAX_SEGMENTS
from .offdays import NO_OVERRIDES, HolidayOverrides
from .variants import AbSpec, Variant
from .waits import EventWait
from .window import FrequencyCap, SendWindow, closed_reason, local_day_bounds, next_allowed

__all__ = ["TouchPlan", "SequencePlan", "Decision", "decide", "plan_from_json", "unreachable"]


@dataclass(frozen=True)
class TouchPlan:
    index: int
    name: str
    after: timedelta
    channel: str
    template: str
    urgent: bool
    kind: str = PROMOTIONAL
    #: journeys: see :mod:`engine.conditions`, :mod:`engine.waits`, :mod:`engine.variants`
    only_if: list | None = None
    wait: EventWait | None = None
    variants: tuple[Variant, ...] = ()
    ab: AbSpec | None = None


@dataclass(frozen=True)
class SequencePlan:
    """The version of a sequence an enrollment follows, as stored when it enrolled."""

    name: str
    description: str
    touches: tuple[TouchPlan, ...]
    send_window: SendWindow | None
    frequency_cap: FrequencyCap | None
    offer_title: str | None
    max_sms_segments: int = DEFAULT_MAX_SEGMENTS
    #: the offer's ``url:`` (what ``offer.link`` points to) and the sequence's own UTM parameters
    offer_url: str | None = None
    utm: tuple[tuple[str, str], ...] = ()


def plan_from_json(text: str, holidays: HolidayOverrides = NO_OVERRIDES) -> SequencePlan:
    """A stored definition; its send window skips holidays with the dates of ``holidays`` (holidays.yaml)."""
    data = json.loads(text)
    window = data.get("send_window")
    cap = data.get("frequency_cap")
    return SequencePlan(
        name=data["name"],
        description=data.get("description", ""),
        touches=tuple(TouchPlan(t["index"], t["name"], parse_duration(t["after"]), t["channel"], t["template"],
                                t["urgent"], t.get("kind", PROMOTIONAL), t.get("only_if"),
                                EventWait.from_json(t["wait"]) if t.get("wait") else None,
                                tuple(Variant(**v) for v in t.get("variants") or ()),
                                AbSpec(**t["ab"]) if t.get("ab") else None) for t in data["touches"]),
        send_window=SendWindow(window["start"], window["end"], frozenset(window["days"]),
                               window.get("skip_holidays"), window.get("skip_mourning", False),
                               holidays) if window else None,
        frequency_cap=FrequencyCap(cap["per_day"]) if cap else None,
        offer_title=(data.get("offer") or {}).get("title"),
        max_sms_segments=data.get("max_sms_segments", DEFAULT_MAX_SEGMENTS),
        offer_url=(data.get("offer") or {}).get("url"),
        utm=tuple(sorted((data.get("utm") or {}).items())),
    )


@dataclass(frozen=True)
class Decision:
    """``action`` is one of send, cancelled, skipped, deferred; ``until`` is set for deferred."""

    action: str
    reason: str | None = None
    until: datetime | None = None


SEND = Decision("send")  # the common answer, made once


def _cap_reached(sent_times: list[datetime], at: datetime, tz: ZoneInfo, per_day: int | None) -> bool:
    if not per_day or len(sent_times) < per_day:
        return False
    start, end = local_day_bounds(at, tz)
    return sum(1 for t in sent_times if start <= t < end) >= per_day


def unreachable(contact: dict, channel: str, kind: str = PROMOTIONAL) -> str | None:
    """Why no ``kind`` message on ``channel`` reaches ``contact`` (suppressed, no address, a landline), or None."""
    suppressed = contact.get(f"{channel}_suppressed")
    if suppressed and blocks(suppressed, kind):
        return f"suppressed on {channel}: {suppressed}"
    if not contact.get("phone" if channel == "sms" else "email"):
        return f"no {'phone number' if channel == 'sms' else 'email address'} for this contact"
    if channel == "sms" and landline(contact["phone"]):
        return "the contact's phone is a landline (or another number no SMS reaches)"
    return None


def decide(*, now: datetime, message: dict, enrollment: dict, contact: dict, offer: dict | None,
           tz: ZoneInfo, window: SendWindow, cap: FrequencyCap, sent_times: list[datetime],
           opens: datetime | None = None, held: str | None = None,
           hold: timedelta = timedelta(hours=1), kind: str = PROMOTIONAL) -> Decision:
    """Decide what happens to one claimed message, now.

    ``opens`` is ``next_allowed(now, tz, window)`` when the caller has it already: it is the same for
    every message of a batch in one time zone and window. ``held`` is why the message's sequence holds
    its messages (paused, orphaned), if it does: the message waits ``hold`` and is looked at again.
    ``kind`` is the touch's (promotional or informational).
    """
    if enrollment["status"] != "active":
        return Decision("cancelled", f"enrollment {enrollment['status']}: {enrollment.get('ended_reason') or ''}".strip())
    if held:
        return Decision("deferred", held, now + hold)
    blocked = unreachable(contact, message["channel"], kind)
    if blocked:
        return Decision("skipped", blocked)
    deadline = to_utc(enrollment.get("offer_expires_at"))
    if message["urgent"]:
        if deadline is not None and now >= deadline:
            return Decision("skipped", f"offer_expired: the offer ended at {deadline.isoformat()}")
        if offer and offer.get("stock") is not None and offer["stock"] - offer["redeemed"] <= 0:
            return Decision("skipped", "sold_out: no stock left for the offer")
    allowed = next_allowed(now, tz, window) if opens is None else opens
    why = closed_reason(now, allowed, tz, window) if allowed > now else None
    for _ in range(30):
        if not _cap_reached(sent_times, allowed, tz, cap.per_day):
            break
        why = f"frequency cap: {cap.per_day} touches already sent on that local day"
        allowed = next_allowed(allowed, tz, window, skip_today=True)
    if allowed <= now:
        return SEND
    if message["urgent"] and deadline is not None and allowed >= deadline:
        return Decision("skipped", f"offer_expired: {why}, and the offer ends at {deadline.isoformat()} "
                                   "before the next allowed moment")
    return Decision("deferred", f"{why}; deferred to {allowed.astimezone(tz).isoformat()}", allowed)
