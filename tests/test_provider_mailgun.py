"""MailgunProvider against a real HTTP server on 127.0.0.1 speaking Mailgun's wire format."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from freezegun import freeze_time

from providers import (
    AmbiguousSendError,
    DeliveryState,
    OutgoingMessage,
    PermanentContentError,
    PermanentRecipientError,
    ProviderBlockedError,
    ProviderConfigError,
    RateLimitedError,
    TransientError,
    create_provider,
)
from tests.fakes.httpserver import Reply
from tests.provider_support import answering_server_fixtures

DATA = Path(__file__).parent / "data" / "mailgun"
KEY = "key-0123456789abcdef0123456789abcdef"
SIGNING = "whsec-signing-key-abcdef0123456789"


def make(url, **settings):
    base = {"name": "mg", "type": "mailgun", "api_key": KEY, "domain": "mg.shop.example",
            "from": "Shop <news@mg.shop.example>", "base_url": url, "timeout": 0.3}
    return create_provider({**base, **settings})


def mail(**kw):
    fields = {"message_id": "m-1", "channel": "email", "to": "alice@example.org", "subject": "Winter sale",
              "text": "Plain", "html": "<p>Rich</p>",
              "metadata": {"unsubscribe_url": "https://shop.example/u/t"}}
    return OutgoingMessage(**{**fields, **kw})


server, serve = answering_server_fixtures(make)


def test_send_wire_request_and_result(serve):
    p, server = serve(Reply(200, json.loads((DATA / "sent.json").read_text())))
    assert p.send(mail()).provider_message_id == "20231114221320.1.A2B3C4D5E6F7@mg.shop.example"
    req, = server.requests
    assert (req.method, req.path) == ("POST", "/v3/mg.shop.example/messages")
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
    assert req.form == {
        "from": "Shop <news@mg.shop.example>", "to": "alice@example.org", "subject": "Winter sale",
        "text": "Plain", "html": "<p>Rich</p>",
        "h:List-Unsubscribe": "<https://shop.example/u/t>",
        "h:List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "v:followup_id": "m-1",
    }


def test_headers_passed_by_the_engine_are_copied(serve):
    p, server = serve(Reply(200, {"id": "<x@mg>", "message": "Queued. Thank you."}))
    p.send(mail(html=None, metadata={}, headers={"List-Unsubscribe": "<mailto:u@shop.example>", "X-Campaign": "w"}))
    form = server.requests[0].form
    assert form["h:List-Unsubscribe"] == "<mailto:u@shop.example>" and form["h:X-Campaign"] == "w"
    assert "html" not in form and "h:List-Unsubscribe-Post" not in form


@pytest.mark.parametrize("settings, url", [
    ({}, "https://api.mailgun.net"),
    ({"region": "us"}, "https://api.mailgun.net"),
    ({"region": "eu"}, "https://api.eu.mailgun.net"),
    ({"region": "eu", "base_url": "http://127.0.0.1:9/"}, "http://127.0.0.1:9"),
])
def test_region_picks_the_base_url(settings, url):
    assert make(None, **settings).base_url == url


@pytest.mark.parametrize("reply, error", [
    (Reply(400, {"message": "'to' parameter is not a valid address. please check documentation"}),
     PermanentRecipientError),
    (Reply(400, {"message": "Need at least one of 'text' or 'html' parameters specified"}), PermanentContentError),
    (Reply(401, "Forbidden"), ProviderBlockedError),
    (Reply(403, {"message": "Domain mg.shop.example is not allowed to send: Free accounts are for test purposes only"}),
     ProviderBlockedError),
    (Reply(404, {"message": "Domain not found: mg.shop.example"}), ProviderBlockedError),
    (Reply(413, "Request Entity Too Large"), PermanentContentError),
    (Reply(429, {"message": "Too many requests"}), RateLimitedError),
    (Reply(500, "{not json"), TransientError),
    (Reply(502, {"message": "bad gateway"}), TransientError),
])
def test_error_mapping(serve, reply, error):
    p, _ = serve(reply)
    with pytest.raises(error) as info:
        p.send(mail())
    assert type(info.value) is error and info.value.code == str(reply.status)
    assert KEY not in str(info.value)


@pytest.mark.parametrize("headers, retry_after", [({"Retry-After": "3"}, 3.0), ({}, None)])
def test_429_with_and_without_retry_after(serve, headers, retry_after):
    p, _ = serve(Reply(429, {"message": "Too many requests"}, headers))
    with pytest.raises(RateLimitedError) as info:
        p.send(mail())
    assert info.value.retry_after == retry_after


@pytest.mark.parametrize("reply", [
    Reply(200, "<html>Queued?</html>"),              # malformed JSON
    Reply(200, {"message": "Queued. Thank you."}),  # no id
])
def test_ambiguous_outcomes(serve, reply):
    p, _ = serve(reply)
    with pytest.raises(AmbiguousSendError):
        p.send(mail())


def test_settings():
    for bad, key in (({"region": "asia"}, "region"), ({"from": "nobody"}, "from"), ({"domain": ""}, "domain")):
        with pytest.raises(ProviderConfigError) as info:
            make("http://x", **bad)
        assert info.value.key == key
    assert KEY not in repr(make("http://x"))


# -- webhooks -------------------------------------------------------------------------------
# Signature blocks as on Mailgun's "Securing Webhooks" page (documentation.mailgun.com/docs/mailgun/
# user-manual/webhooks/securing-webhooks): delivered_subaccount.json carries its `parent-signature`.
PARENT = "whsec-parent-account-key-9876543210"
SIGNED_AT = "2023-11-14 22:13:20"  # the fixtures' signature timestamp, 1700000000


def signed(name, key=SIGNING, parent_key=None) -> bytes:
    body = json.loads((DATA / name).read_text())
    sig = body["signature"]
    sig["signature"] = hmac.new(key.encode(), (sig["timestamp"] + sig["token"]).encode(), hashlib.sha256).hexdigest()
    if "parent-signature" in sig:
        sig["parent-signature"] = hmac.new((parent_key or PARENT).encode(), (sig["timestamp"] + sig["token"]).encode(),
                                           hashlib.sha256).hexdigest()
    return json.dumps(body).encode()


@freeze_time(SIGNED_AT)
def test_verify_webhook():
    p = make("http://x", webhook_signing_key=SIGNING)
    body = signed("delivered.json")
    assert p.verify_webhook("https://hooks.example/mg", {}, body)
    assert not p.verify_webhook("https://hooks.example/mg", {}, body.replace(b"1700000000", b"1700000001", 1))
    assert not p.verify_webhook("https://hooks.example/mg", {}, signed("delivered.json", key="wrong-key"))
    assert not p.verify_webhook("https://hooks.example/mg", {}, b"not json")
    assert not p.verify_webhook("https://hooks.example/mg", {}, b'{"event-data": {}}')


@freeze_time(SIGNED_AT)
def test_webhook_key_is_an_alias_and_the_api_key_never_signs():
    assert make("http://x", webhook_key=SIGNING).verify_webhook("https://hooks.example/mg", {}, signed("delivered.json"))
    assert not make("http://x").verify_webhook("https://hooks.example/mg", {}, signed("delivered.json", key=KEY))
    assert not make("http://x", webhook_signing_key=SIGNING).verify_webhook("https://hooks.example/mg", {},
                                                                           signed("delivered.json", key=KEY))
    with pytest.raises(ProviderConfigError) as info:
        make("http://x", webhook_signing_key=SIGNING, webhook_key="other")
    assert info.value.key == "webhook_key"
    assert SIGNING not in repr(make("http://x", webhook_signing_key=SIGNING))


@freeze_time(SIGNED_AT)
@pytest.mark.parametrize("configured, accepted", [(SIGNING, True), (PARENT, True), ("a-third-key-0123456789", False)])
def test_a_subaccount_event_is_verified_by_its_own_key_or_the_parent_accounts(configured, accepted):
    body = signed("delivered_subaccount.json")
    assert make("http://x", webhook_signing_key=configured).verify_webhook("https://hooks.example/mg", {}, body) \
        is accepted


@pytest.mark.parametrize("now, accepted", [
    ("2023-11-14 22:18:20", True),    # 5 minutes after signing
    ("2023-11-14 22:18:21", False),   # a second later: a replay
    ("2026-11-14 22:13:20", False),   # three years later
    ("2023-11-14 22:08:20", True),    # Mailgun's clock 5 minutes ahead of ours
    ("2023-11-14 22:08:19", False),
])
def test_a_signature_is_accepted_only_within_five_minutes_of_its_timestamp(now, accepted):
    with freeze_time(now):
        assert make("http://x", webhook_signing_key=SIGNING).verify_webhook(
            "https://hooks.example/mg", {}, signed("delivered.json")) is accepted


def test_webhook_token_is_the_signatures_token():
    token = make("http://x").webhook_token({}, signed("delivered.json"))
    assert token == json.loads((DATA / "delivered.json").read_text())["signature"]["token"]


@pytest.mark.parametrize("fixture, state, reason, blocked, message_id", [
    ("delivered.json", DeliveryState.DELIVERED, "delivered", False, "m-1"),
    ("failed_permanent.json", DeliveryState.UNDELIVERED, "bounced", True, "m-2"),
    ("failed_temporary.json", DeliveryState.PENDING, "deferred", False, "m-3"),
    ("complained.json", DeliveryState.UNDELIVERED, "complained", True, "m-4"),
    ("unsubscribed.json", DeliveryState.UNDELIVERED, "unsubscribed", True, "m-5"),
])
def test_parse_webhook(fixture, state, reason, blocked, message_id):
    report, = make("http://x").parse_webhook({}, (DATA / fixture).read_bytes())
    assert (report.state, report.reason, report.recipient_blocked, report.message_id) == (
        state, reason, blocked, message_id)
    assert report.provider_message_id.endswith("@mg.shop.example")
    assert report.at.tzinfo is timezone.utc


def test_parse_webhook_details():
    p = make("http://x")
    delivered, = p.parse_webhook({}, (DATA / "delivered.json").read_bytes())
    assert delivered.provider_message_id == "20231114221320.1.A2B3C4D5E6F7@mg.shop.example"
    assert delivered.at == datetime(2023, 11, 14, 22, 13, 20, 429000, tzinfo=timezone.utc)
    (opened,) = p.parse_webhook({}, (DATA / "opened.json").read_bytes())
    assert (opened.kind, opened.message_id, opened.event_id) == ("open", "m-1", "X3X4JOhFT")
