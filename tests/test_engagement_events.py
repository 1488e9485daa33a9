"""SendGrid's and Mailgun's open and click events, through their signed webhooks, recorded as engagements.

The fixtures are the documented event shapes: tests/data/sendgrid/engagement.json follows SendGrid's Event
Webhook reference ("Engagement events": open with ``sg_machine_open``, click with ``url``), and
tests/data/mailgun/clicked.json and opened.json Mailgun's Events API reference ("clicked", "opened").
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from engine.models import Engagement, Link
from tests.service_support import api_client
from tests.test_link_redirect import PHONE
from tests.test_service_webhooks import mailgun_body, post_mailgun, sendgrid_post, sent, world  # noqa: F401

DATA = Path(__file__).parent / "data"


def engagements(world) -> list[tuple]:
    table = Engagement.__table__
    with world.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(table.c.kind, table.c.message_id, table.c.contact_id,
                                                         table.c.touch, table.c.source).order_by(table.c.id))]


def sendgrid_events(world, mid: int) -> list[dict]:
    events = json.loads((DATA / "sendgrid" / "engagement.json").read_text())
    for event in events:
        event["followup_id"] = world.reference(mid)
        event["sg_message_id"] = "SGID1.filter0001.1"
    return events


def test_sendgrid_opens_and_clicks_are_recorded_once_with_apple_privacy_opens_as_machines(world):
    client, _ = api_client(world)
    mid = sent(world, "t0", "news", "sg", "SGID1")
    events = sendgrid_events(world, mid)
    assert sendgrid_post(client, events).status_code == 200
    expected = [("opened", mid, world.contact_id, "t0", "sg"), ("opened_bot", mid, world.contact_id, "t0", "sg"),
                ("clicked", mid, world.contact_id, "t0", "sg")]
    assert engagements(world) == expected
    assert sendgrid_post(client, events).status_code == 200  # posted again: the same event ids
    assert engagements(world) == expected
    assert world.messages(id=mid)[0]["status"] == "sent"  # an open is not a delivery receipt


def test_sendgrid_events_of_another_providers_message_change_nothing(world):
    client, _ = api_client(world)
    mid = sent(world, "t0", "news", "mg", "20231114.1@mg.example.com")
    assert sendgrid_post(client, sendgrid_events(world, mid)).status_code == 200
    assert engagements(world) == []


def mailgun_event(world, mid: int, name: str, at: datetime) -> dict:
    event = json.loads((DATA / "mailgun" / name).read_text())["event-data"]
    event["user-variables"] = {"followup_id": world.reference(mid)}
    event["timestamp"] = at.timestamp()
    return event


def test_mailgun_opened_and_clicked_are_recorded(world):
    client, _ = api_client(world)
    mid = sent(world, "t0", "news", "mg", "20231114221320.1.A2B3C4D5E6F7@mg.shop.example")
    at = datetime.now(timezone.utc)
    for i, name in enumerate(("opened.json", "clicked.json")):
        body = mailgun_body(mid, event_data=mailgun_event(world, mid, name, at), token=f"tok{i}" + "0" * 46)
        assert post_mailgun(client, body).status_code == 200
    assert engagements(world) == [("opened", mid, world.contact_id, "t0", "mg"),
                                  ("clicked", mid, world.contact_id, "t0", "mg")]


def test_a_provider_click_of_a_message_our_link_already_counted_is_not_counted_again(world):
    client, _ = api_client(world)
    mid = sent(world, "t0", "news", "mg", "20231114221320.1.A2B3C4D5E6F7@mg.shop.example")
    msg = world.messages(id=mid)[0]
    with world.engine.begin() as conn:
        conn.execute(sa.insert(Link.__table__).values(
            code="AbCdEfGhIj", message_id=mid, contact_id=msg["contact_id"], sequence="news", touch="t0",
            channel="email", url="https://shop.example/coats", target="https://shop.example/coats?utm_source=followup",
            created_at=datetime.now(timezone.utc) - timedelta(hours=1)))
        conn.execute(sa.update(sa.table("messages", sa.column("id"), sa.column("sent_at")))
                     .where(sa.column("id") == mid).values(sent_at=datetime.now(timezone.utc) - timedelta(hours=1)))
    assert client.get("/l/AbCdEfGhIj", headers={"User-Agent": PHONE}, follow_redirects=False).status_code == 302
    client.app.state.ctx.clicks.flush()
    later = datetime.now(timezone.utc) + timedelta(minutes=2)
    body = mailgun_body(mid, event_data=mailgun_event(world, mid, "clicked.json", later), token="c" * 50)
    assert post_mailgun(client, body).status_code == 200
    assert engagements(world) == [("clicked", mid, world.contact_id, "t0", "link")]
