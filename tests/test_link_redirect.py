"""GET /l/{code}: the redirect to the stored target, clicks and bots, unknown and expired codes, the pixel."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from engine.models import Engagement, Link
from engine.service.throttle import MISS_LIMIT
from tests.service_support import SERVICE_SETTINGS, api_client
from tests.test_service_webhooks import proxied_client
from tests.test_links import BASE, SARA, TEMPLATES, link_sequence

PHONE = "Mozilla/5.0 (Linux; Android 13; SM-A515F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36"


@pytest.fixture
def world(make_world, frozen):
    world = make_world([link_sequence(), link_sequence("mail", channel="email")], templates=TEMPLATES,
                       settings={**SERVICE_SETTINGS,
                                 "links": {"base_url": BASE, "track_email": True, "track_opens": True}})
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.enroll("mail", sara)
    world.tick()
    return world


def link_of(world, channel: str = "sms", url: str | None = None) -> dict:
    table = Link.__table__
    query = sa.select(table).where(table.c.channel == channel)
    if url:
        query = query.where(table.c.url == url)
    with world.engine.connect() as conn:
        return dict(conn.execute(query.order_by(table.c.url)).mappings().first())


def engagements(world, client) -> list[dict]:
    """The stored engagements, after the app's click writer wrote its queue."""
    client.app.state.ctx.clicks.flush()
    with world.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(Engagement.__table__).order_by(Engagement.__table__.c.id))
                .mappings()]


def test_a_click_redirects_to_the_target_with_utm_and_is_recorded_for_message_and_contact(world):
    client, _ = api_client(world)
    link = link_of(world)
    response = client.get(f"/l/{link['code']}?next=https://evil.example", headers={"User-Agent": PHONE},
                          follow_redirects=False)
    assert response.status_code == 302
    target = response.headers["location"]
    assert target == link["target"] and target.startswith("https://shop.example/coats?size=m&")
    assert parse_qs(urlsplit(target).query)["utm_medium"] == ["sms"]
    assert response.headers["referrer-policy"] == "no-referrer" and response.headers["cache-control"] == "no-store"
    (click,) = engagements(world, client)
    assert (click["kind"], click["message_id"], click["contact_id"], click["touch"], click["source"]) == \
        ("clicked", link["message_id"], link["contact_id"], "t0", "link")


@pytest.mark.parametrize("agent", ["WhatsApp/2.23.20.0", "facebookexternalhit/1.1", "TelegramBot (like TwitterBot)",
                                   "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
                                   "Slackbot-LinkExpanding 1.0", "python-requests/2.31", ""])
def test_link_previews_and_scripts_are_clicked_bot(world, agent):
    client, _ = api_client(world)
    response = client.get(f"/l/{link_of(world)['code']}", headers={"User-Agent": agent}, follow_redirects=False)
    assert response.status_code == 302
    assert [e["kind"] for e in engagements(world, client)] == ["clicked_bot"]


def test_a_head_request_is_answered_and_recorded_as_a_bot(world):
    client, _ = api_client(world)
    response = client.head(f"/l/{link_of(world)['code']}", headers={"User-Agent": PHONE}, follow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == link_of(world)["target"]
    assert [e["kind"] for e in engagements(world, client)] == ["clicked_bot"]


def test_an_email_click_within_seconds_of_the_send_is_a_scanner(world, frozen):
    client, _ = api_client(world)
    code = link_of(world, "email", "https://shop.example/coats")["code"]
    frozen.tick(timedelta(seconds=3))
    client.get(f"/l/{code}", headers={"User-Agent": PHONE}, follow_redirects=False)
    frozen.tick(timedelta(minutes=5))
    client.get(f"/l/{code}", headers={"User-Agent": PHONE}, follow_redirects=False)
    assert [(e["kind"], e["channel"]) for e in engagements(world, client)] == [("clicked_bot", "email"), ("clicked", "email")]


def test_the_open_pixel_answers_a_gif_and_records_an_open(world, frozen):
    client, _ = api_client(world)
    frozen.tick(timedelta(minutes=1))
    response = client.get(f"/l/{link_of(world, 'email', 'pixel:open')['code']}", headers={"User-Agent": PHONE})
    assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    assert [(e["kind"], e["source"]) for e in engagements(world, client)] == [("opened", "pixel")]


@pytest.mark.parametrize("path", ["/l/AAAAAAAAAA", "/l/short", "/l/" + "x" * 300, "/l/ab%20cd%3Cx%3E"])
def test_an_unknown_code_is_a_small_rtl_page_404_and_records_nothing(world, path):
    client, _ = api_client(world)
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 404 and 'dir="rtl"' in response.text and "location" not in response.headers
    assert "این پیوند معتبر نیست" in response.text and not engagements(world, client)


def test_an_expired_code_is_404(world, frozen):
    client, _ = api_client(world)
    code = link_of(world)["code"]
    frozen.tick(timedelta(days=90))
    response = client.get(f"/l/{code}", headers={"User-Agent": PHONE}, follow_redirects=False)
    assert response.status_code == 404 and not engagements(world, client)


@pytest.mark.parametrize("proxied", [False, True])
def test_an_address_guessing_codes_is_answered_429_and_others_are_not(world, proxied):
    """Directly, the address is the peer's; behind a trusted proxy, the one the proxy forwarded."""
    if proxied:
        client = proxied_client(world, "10.0.0.5", ("10.0.0.0/8",))
        guesser, reader = {"X-Forwarded-For": "203.0.113.9"}, {"X-Forwarded-For": "198.51.100.7, 203.0.113.77"}
    else:
        client, reader = proxied_client(world, "203.0.113.9", ()), None
        guesser = {"X-Forwarded-For": "198.51.100.7"}  # not believed: no trusted proxy
    for i in range(MISS_LIMIT):
        assert client.get(f"/l/AAAAAAAA{i:02d}", headers=guesser, follow_redirects=False).status_code == 404
    code = link_of(world)["code"]
    assert client.get(f"/l/{code}", headers=guesser, follow_redirects=False).status_code == 429
    if reader:
        assert client.get(f"/l/{code}", headers={**reader, "User-Agent": PHONE},
                          follow_redirects=False).status_code == 302


def test_a_body_over_the_forms_limit_is_413(world):
    client, _ = api_client(world)
    response = client.request("GET", f"/l/{link_of(world)['code']}", content=b"x" * 20_000, follow_redirects=False)
    assert response.status_code == 413 and not engagements(world, client)
