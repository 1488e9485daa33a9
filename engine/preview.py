"""``followup preview``: every touch as it would go out — when, where, what, and what it costs."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from .clock import now
from .config import Config
from .plan import unreachable
from .sequences import Sequence
from .sms import SmsInfo, over_max_segments, sms_info, with_footer
from .templates import RenderError, Rendered
from .samples import sample_contact
from .validate import render_touch_sample
from .window import closed_reason, describe_holidays, holidays_between, local_day_bounds, next_allowed

__all__ = ["PreviewRow", "preview", "segment_price", "sms_text"]


@dataclass
class PreviewRow:
    touch: str
    channel: str
    when: datetime  # in the contact's timezone
    note: str
    rendered: Rendered | None
    error: str | None = None
    sms: SmsInfo | None = None
    cost: float | None = None
    #: the stored message's status, for a contact already enrolled (None in a plan)
    status: str | None = None


def preview(config: Config, seq: Sequence, contact: dict | None = None, start: datetime | None = None,
            sent_before: list[datetime] | None = None) -> list[PreviewRow]:
    """Plan the sequence for one contact from ``start``, applying send window and frequency cap."""
    contact = contact or sample_contact(config, seq)
    tz = ZoneInfo(contact.get("timezone") or config.settings.timezone.key)
    window = seq.send_window or config.settings.send_window
    cap = seq.frequency_cap or config.settings.frequency_cap
    begun = at = start or now()
    sent = list(sent_before or [])
    price = segment_price(config)
    rows = []
    deadline = seq.offer.deadline_for(begun) if seq.offer else None
    for touch in seq.touches:
        planned = at + touch.after
        when = next_allowed(planned, tz, window)
        notes = []
        if when > planned:
            notes.append(f"deferred: {closed_reason(planned, when, tz, window)}")
        while cap.per_day and sum(1 for t in sent if local_day_bounds(when, tz)[0] <= t < local_day_bounds(when, tz)[1]) >= cap.per_day:
            moved = next_allowed(when, tz, window, skip_today=True)
            notes.append(f"moved by the frequency cap ({cap.per_day}/day)")
            skipped = holidays_between(local_day_bounds(when, tz)[1], moved, tz, window)
            if skipped:
                notes.append(f"then past the {describe_holidays(skipped, window)}")
            when = moved
        blocked = unreachable(contact, touch.channel, touch.kind)
        if blocked:
            notes.append(f"will be skipped: {blocked}")
        if touch.urgent and deadline is not None and when >= deadline:
            notes.append("SKIPPED: the offer ends before this touch can go out")
        try:
            rendered, error = render_touch_sample(config, seq, touch, contact, at=when,
                                                  enrolled_at=begun), None
        except RenderError as err:
            rendered, error = None, str(err)
        info = cost = None
        if rendered is not None and touch.channel == "sms":
            info = sms_info(with_footer(rendered.text, config.settings.footer(contact.get("locale"))))
            cost = price * info.segments if price is not None else None
            too_long = over_max_segments(info, seq.max_sms_segments)
            if too_long:
                notes.append(f"SKIPPED: {too_long}")
        rows.append(PreviewRow(touch.name, touch.channel, when.astimezone(tz), "; ".join(notes), rendered, error, info, cost))
        sent.append(when)
        at = when
    return rows


def segment_price(config: Config) -> float | None:
    """The first SMS provider's ``price_per_segment``, if it has one."""
    providers = config.settings.providers.get("sms") or []
    value = providers[0].get("price_per_segment") if providers else None
    return float(value) if value is not None else None


def sms_text(config: Config, rendered: Rendered, locale: str | None = None) -> str:
    """The SMS as it goes out: the text with the opt-out footer for ``locale``."""
    return with_footer(rendered.text, config.settings.footer(locale))
