"""Turning a claimed message into what a provider sends: context, template, footer, headers."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from providers.base import OutgoingMessage

from .clock import to_utc
from .config import Config
from .installation import client_reference
from .links import LinkBook, LinkError, SampleLinks, rewrite_email
from .sms import over_max_segments, sms_info, with_footer
from .templates import (Attrs, ContactView, EventData, EventView, MissingAttr, MissingData, OfferView, Rendered,
                        RenderError, SequenceView, TouchView)
from .tokens import make_token

__all__ = ["template_context", "build_message", "event_view", "unsubscribe_url", "NotSent"]


@dataclass(frozen=True)
class NotSent:
    """A message that is not sent, and why: ``status`` is failed (its template broke) or skipped."""

    status: str
    reason: str


def unsubscribe_url(config: Config, contact_id: int, channel: str) -> str | None:
    settings = config.settings
    if not settings.unsubscribe_url or not settings.secret_key:
        return None
    return settings.unsubscribe_url.replace("{token}", make_token(settings.secret_key, contact_id, channel))


def event_view(enrollment: dict) -> EventView:
    """The event that started an enrollment, as templates see it (its data as stored, frozen)."""
    data = enrollment.get("event_data")
    if isinstance(data, str):  # SQLite hands JSON back as its text to a plain query
        data = json.loads(data)
    return EventView(enrollment.get("event_key"), EventData.of(data or {}))


def template_context(config: Config, *, contact: dict, offer_spec_title: str | None, offer_row: dict | None,
                     deadline: datetime | None, tz: ZoneInfo, at: datetime, sequence: SequenceView,
                     touch: TouchView, event: EventView | None = None, links: Any = None,
                     offer_url: str | None = None) -> dict[str, Any]:
    """What a template sees. ``offer`` numbers always come from the stored offer and the frozen deadline.

    ``links`` makes the message's short links (``link(url)``, ``offer.link``): :class:`engine.links.MessageLinks`
    when sending, :class:`engine.links.SampleLinks` for a preview."""
    offer = None
    if offer_row is not None or offer_spec_title is not None:
        stock = offer_row.get("stock") if offer_row else None
        offer = OfferView(
            code=(offer_row or {}).get("code", ""),
            title=(offer_row or {}).get("title") or offer_spec_title or "",
            expires_at=deadline.astimezone(tz) if deadline else None,
            time_left=(deadline - at) if deadline else None,
            stock_left=None if stock is None else max(0, stock - offer_row.get("redeemed", 0)),
            url=offer_url, _links=links,
        )
    view = ContactView(
        first_name=contact.get("first_name") or "", last_name=contact.get("last_name") or "",
        phone=contact.get("phone") or "", email=contact.get("email") or "",
        locale=contact.get("locale") or config.settings.locale, timezone=tz.key,
        attrs=Attrs(contact.get("attrs") or {}),
        tags=tuple(filter(None, (contact.get("tags") or "").split(";"))),
    )
    return {"contact": view, "offer": offer, "sequence": sequence, "touch": touch, "event": event or EventView(),
            "link": _link_function(links),
            "unsubscribe_url": unsubscribe_url(config, contact["id"], touch.channel) if contact.get("id") else None}


def _link_function(links: Any):
    if links is not None:
        return links.link

    def link(url: Any) -> str:
        raise LinkError("link() is not available here")
    return link


def build_message(config: Config, row: dict, touch, plan, enrollment: dict, contact: dict, offer: dict | None,
                  tz: ZoneInfo, at: datetime, reference_prefix: int,
                  links: LinkBook | None = None) -> OutgoingMessage | NotSent:
    """The message to send, or why it is not sent: its template failed, the contact lacks a column the
    template reads (skipped), or the SMS is over the sequence's ``max_sms_segments`` (skipped).

    Its ``message_id`` is the client reference of the row (:mod:`engine.installation`). Its short links
    come from ``links`` (the claimed batch's :class:`~engine.links.LinkBook`); without one (a preview) they
    are samples, never stored."""
    maker = links.message(row, plan.utm) if links is not None else SampleLinks(config.settings)
    ctx = template_context(config, contact=contact, offer_spec_title=plan.offer_title, offer_row=offer,
                           deadline=to_utc(enrollment.get("offer_expires_at")), tz=tz, at=at,
                           event=event_view(enrollment), links=maker, offer_url=plan.offer_url,
                           sequence=SequenceView(plan.name, plan.description),
                           touch=TouchView(touch.name, touch.channel, touch.index))
    try:
        rendered = config.renderer.render(touch.template, touch.channel, ctx)
        if touch.channel == "email" and (config.settings.links.track_email or config.settings.links.track_opens):
            rendered = _tracked(config, rendered, maker, ctx["unsubscribe_url"])
    except (MissingAttr, MissingData) as err:  # this contact (or its event) lacks what the template reads
        return NotSent("skipped", f"template: {err}")
    except RenderError as err:
        return NotSent("failed", f"template: {err}")
    except LinkError as err:  # tracked email with no address for its links
        return NotSent("failed", f"links: {err}")
    if touch.channel == "sms":
        text = with_footer(rendered.text, config.settings.footer(contact.get("locale")))
        info = sms_info(text)
        too_long = over_max_segments(info, plan.max_sms_segments)
        if too_long:
            return NotSent("skipped", too_long)
        return OutgoingMessage(client_reference(reference_prefix, row["id"]), "sms", contact["phone"], text,
                               metadata={"segments": info.segments, "encoding": info.encoding, "kind": touch.kind})
    headers = {}
    url = ctx["unsubscribe_url"]
    if url:
        headers = {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    return OutgoingMessage(client_reference(reference_prefix, row["id"]), "email", contact["email"], rendered.text, subject=rendered.subject,
                           html=rendered.html, headers=headers,
                           metadata={"unsubscribe_url": url} if url else {})


def _tracked(config: Config, rendered: Rendered, maker: Any, unsubscribe: str | None) -> Rendered:
    """An email with its links through short links (``links.track_email``) and an open pixel (``track_opens``)."""
    track = config.settings.links
    html, text = rewrite_email(rendered.html, rendered.text, maker, keep=[unsubscribe], rewrite=track.track_email,
                               pixel=track.track_opens)
    return Rendered(text=text, subject=rendered.subject, html=html)
