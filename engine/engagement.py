"""Clicks and opens of sent messages: from our short links and pixels, and from SendGrid and Mailgun events.

This is the one module that writes :class:`~engine.models.Engagement` rows. A follow of a short link is a
person's ``clicked`` unless it looks like a machine's (``clicked_bot``): a link-preview or mail-scanner user
agent, a ``HEAD`` request, or, on email, a click within :data:`SCANNER_SECONDS` of the send (mail gateways
follow every link of a message as it arrives). Only the human kinds count as engagement.

A provider's event is recorded once (its own event id), and not at all when our own link already recorded
the same kind for the same message within :data:`SAME_EVENT_WINDOW` (its click tracking wraps our link, so
one tap reaches both).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from providers.base import EngagementEvent

from .clock import now, to_utc
from .installation import message_id_of, reference_prefix
from .handoff import on_facts
from .links import PIXEL_URL
from .outbox import emit
from .models import Engagement, EngagementKind, Link, Message

__all__ = ["classify", "follow_row", "insert_follows", "record_follow", "apply_engagements", "find_link",
           "SCANNER_SECONDS", "HUMAN_KINDS"]

engagements_t = Engagement.__table__
links_t = Link.__table__
messages = Message.__table__
#: an email link followed this soon after the send is a mail scanner's, not the reader's
SCANNER_SECONDS = 10
SAME_EVENT_WINDOW = timedelta(minutes=10)
HUMAN_KINDS = (EngagementKind.CLICKED.value, EngagementKind.OPENED.value)
#: user agents of link previews (chat apps, social sites), crawlers and mail security scanners
BOT_AGENTS = re.compile(
    r"bot\b|bot/|crawler|spider|preview|facebookexternalhit|facebookcatalog|whatsapp|telegram|slack|discord|"
    r"skypeuripreview|linkedin|embedly|pinterest|vkshare|redditbot|applebot|bingpreview|google-safety|"
    r"googleimageproxy|yahoo! slurp|headlesschrome|phantomjs|python-requests|python-urllib|httpx|curl/|wget/|"
    r"go-http-client|java/|libwww|okhttp|proofpoint|mimecast|barracuda|symantec|trendmicro|forcepoint|"
    r"microsoft office|ms-office|safelinks|zgrab|masscan|nmap",
    re.IGNORECASE)


def classify(*, method: str, user_agent: str | None, channel: str | None, sent_at: datetime | None,
             at: datetime, pixel: bool = False) -> str:
    """``clicked``/``opened`` for a person, ``clicked_bot``/``opened_bot`` for a machine."""
    human, bot = ((EngagementKind.OPENED, EngagementKind.OPENED_BOT) if pixel
                  else (EngagementKind.CLICKED, EngagementKind.CLICKED_BOT))
    if method == "HEAD" or not user_agent or BOT_AGENTS.search(user_agent):
        return bot.value
    if (not pixel and channel == "email" and sent_at is not None
            and at - sent_at < timedelta(seconds=SCANNER_SECONDS)):
        return bot.value
    return human.value


def find_link(conn: sa.Connection, code: str) -> dict | None:
    """The link of ``code`` with its message's ``sent_at``, or None."""
    row = conn.execute(sa.select(links_t, messages.c.sent_at)
                       .select_from(links_t.outerjoin(messages, messages.c.id == links_t.c.message_id))
                       .where(links_t.c.code == code)).mappings().first()
    return dict(row) if row else None


def follow_row(link: dict, *, method: str, user_agent: str | None, at: datetime | None = None) -> dict:
    """The engagement row of one follow of ``link`` (a click, or an open for a pixel), classified, not yet stored."""
    at = at or now()
    pixel = link["url"] == PIXEL_URL
    kind = classify(method=method, user_agent=user_agent, channel=link["channel"], sent_at=to_utc(link["sent_at"]),
                    at=at, pixel=pixel)
    return {"at": at, "kind": kind, "message_id": link["message_id"], "contact_id": link["contact_id"],
            "sequence": link["sequence"], "touch": link["touch"], "channel": link["channel"],
            "source": "pixel" if pixel else "link", "code": link["code"]}


def insert_follows(conn: sa.Connection, rows: list[dict], config: Any = None) -> None:
    """Store rows of :func:`follow_row` in one statement.

    With ``config``, what follows from each is done in the same transaction: a person's click goes out to the
    webhooks that take ``clicked`` (:mod:`engine.outbox`), and every follow counts towards the lead score and
    the sequence's handoff rule (:func:`engine.handoff.on_facts`)."""
    if not rows:
        return
    conn.execute(sa.insert(engagements_t), rows)
    if config is None:
        return
    urls = _link_urls(conn, [r["code"] for r in rows if r["kind"] == EngagementKind.CLICKED.value])
    for row in rows:
        if row["kind"] == EngagementKind.CLICKED.value:
            _click_out(conn, config, row, urls.get(row["code"]))
    on_facts(conn, config, rows)


def _link_urls(conn: sa.Connection, codes: list[str]) -> dict[str, str]:
    if not codes:
        return {}
    return dict(conn.execute(sa.select(links_t.c.code, links_t.c.url).where(links_t.c.code.in_(set(codes)))).all())


def record_follow(conn: sa.Connection, link: dict, *, method: str, user_agent: str | None,
                  at: datetime | None = None, config: Any = None) -> str:
    """Record one follow of ``link`` now, in ``conn``'s transaction; return the kind recorded."""
    row = follow_row(link, method=method, user_agent=user_agent, at=at)
    insert_follows(conn, [row], config)
    return row["kind"]


def _click_out(conn: sa.Connection, config: Any, row: dict, url: str | None) -> None:
    """A person's click of message ``row`` (its contact, sequence, touch, channel), for the webhooks."""
    emit(conn, config, "clicked", row["contact_id"], {"sequence": row["sequence"], "touch": row["touch"],
                                                      "channel": row["channel"], "url": url})


def apply_engagements(conn: sa.Connection, provider_name: str, events: list[EngagementEvent],
                      recorded_facts: list[dict] | None = None, *, config: Any = None) -> int:
    """Record a provider's open and click events of the messages it sent; return how many were recorded.

    Each one recorded is also appended to ``recorded_facts`` (its contact_id, kind, at, sequence and touch). With
    ``config``, a person's click goes out to the webhooks that take ``clicked``."""
    prefix = reference_prefix(conn)
    ours = {e: i for e in events if e.message_id and (i := message_id_of(prefix, e.message_id)) is not None}
    pids = [e.provider_message_id for e in events if e.provider_message_id and e not in ours]
    rows: dict[int, dict] = {}
    if ours:
        rows.update({r["id"]: dict(r) for r in conn.execute(sa.select(messages).where(
            messages.c.id.in_(set(ours.values())), messages.c.provider == provider_name)).mappings()})
    by_pid: dict[str, dict] = {}
    if pids:
        for r in conn.execute(sa.select(messages).where(messages.c.provider_message_id.in_(pids),
                                                        messages.c.provider == provider_name)).mappings():
            by_pid[r["provider_message_id"]] = rows[r["id"]] = dict(r)
    recorded = 0
    for event in events:
        row = rows.get(ours[event]) if event in ours else by_pid.get(event.provider_message_id or "")
        if row is None:
            continue
        human, bot = ((EngagementKind.OPENED, EngagementKind.OPENED_BOT) if event.kind == "open"
                      else (EngagementKind.CLICKED, EngagementKind.CLICKED_BOT))
        kind = (bot if event.machine else human).value
        at = event.at or now()
        external = f"{provider_name}:{event.event_id}" if event.event_id else None
        if external and conn.execute(sa.select(engagements_t.c.id)
                                     .where(engagements_t.c.external_id == external)).first():
            continue
        if conn.execute(sa.select(engagements_t.c.id).where(
                engagements_t.c.message_id == row["id"], engagements_t.c.kind == kind,
                engagements_t.c.source.in_(("link", "pixel")),
                engagements_t.c.at.between(at - SAME_EVENT_WINDOW, at + SAME_EVENT_WINDOW))).first():
            continue
        conn.execute(sa.insert(engagements_t).values(
            at=at, kind=kind, message_id=row["id"], contact_id=row["contact_id"], sequence=row["sequence"],
            touch=row["touch"], channel=row["channel"], source=provider_name, external_id=external))
        if config is not None and kind == EngagementKind.CLICKED.value:
            _click_out(conn, config, row, getattr(event, "url", None))
        recorded += 1
        if recorded_facts is not None:
            recorded_facts.append({"contact_id": row["contact_id"], "kind": kind, "at": at,
                                   "sequence": row["sequence"], "touch": row["touch"]})
    return recorded
