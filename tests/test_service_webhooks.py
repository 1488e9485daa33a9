"""Provider webhooks and one-click unsubscribe through the ASGI test client.

Each webhook is signed the provider's own way: a bad signature is a 400 and changes nothing, a body that
can't be parsed is a 500 (the provider retries), and the same event twice changes nothing the second time.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from freezegun import freeze_time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from engine.config import load_config
from engine.errors import ConfigError
from engine.models import Contact, ContactEvent, Message, WebhookToken
from engine.service import create_app
from engine.service.options import ServiceOptions, service_options
from engine.tokens import make_token
from engine.validate import validate
from tests.conftest import simple_sequence
from tests.service_support import PASSWORD, SECRET, SERVICE_SETTINGS, api_client

TWILIO_TOKEN = "twilio-auth-token-123"
MAILGUN_KEY = "mailgun-webhook-key-456"
SENDGRID_PRIVATE = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(SENDGRID_PRIVATE.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
PROVIDERS = {
    "sms": [{"name": "tw", "type": "twilio", "account_sid": "AC00000000000000000000000000000001",
             "auth_token": TWILIO_TOKEN, "sender": "+14155552671"}],
    "email": [{"name": "sg", "type": "sendgrid", "api_key": "SG.key", "from": "shop@example.com",
               "webhook_key": SENDGRID_PUBLIC},
              {"name": "mg", "type": "mailgun", "api_key": "key-mailgun", "domain": "mg.example.com",
               "from": "shop@example.com", "webhook_signing_key": MAILGUN_KEY}],
}


def webhook_world(make_world):
    """Twilio, SendGrid and Mailgun configured, Sara enrolled in the SMS drip; returns (world, her id)."""
    world = make_world([simple_sequence("drip"), simple_sequence("news", channel="email")],
                       settings={**SERVICE_SETTINGS, "providers": PROVIDERS})
    (cid,) = world.add_contacts({"phone": "09121234567", "email": "sara@example.com"})
    world.enroll("drip", cid)
    return world, cid


@pytest.fixture
def world(make_world):
    world, cid = webhook_world(make_world)
    world.enroll("news", cid)
    world.contact_id = cid
    return world


def sent(world, touch: str, sequence: str, provider: str, pid: str) -> int:
    """Mark one touch as sent by ``provider`` with the provider's id ``pid``; return our message id."""
    table = Message.__table__
    with world.engine.begin() as conn:
        mid = conn.execute(sa.select(table.c.id).where(table.c.touch == touch, table.c.sequence == sequence)).scalar_one()
        conn.execute(sa.update(table).where(table.c.id == mid).values(status="sent", provider=provider,
                                                                      provider_message_id=pid))
    return mid


def status_of(world, mid: int) -> str:
    return world.messages(id=mid)[0]["status"]


def log_count(world) -> int:
    return len(world.log())


def twilio_sign(url: str, params: dict[str, str]) -> str:
    payload = url + "".join(k + v for k, v in sorted(params.items()))
    return base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def post_twilio(client, params: dict[str, str], url: str = "http://testserver/webhooks/tw", headers=None, sign=True):
    headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    if sign:
        headers["X-Twilio-Signature"] = twilio_sign(url, params)
    return client.post("/webhooks/tw", content=urlencode(params).encode(), headers=headers)


STATUS = {"MessageSid": "SM0001", "MessageStatus": "delivered", "AccountSid": "AC00000000000000000000000000000001"}


def test_twilio_status_callback_delivers_once(world):
    client, _ = api_client(world)
    mid = sent(world, "t0", "drip", "tw", "SM0001")
    before = log_count(world)
    first = post_twilio(client, STATUS)
    assert first.status_code == 200 and first.headers["content-type"].startswith("application/xml")
    assert status_of(world, mid) == "delivered"
    assert log_count(world) == before + 1
    assert post_twilio(client, STATUS).status_code == 200
    assert log_count(world) == before + 1


@pytest.mark.parametrize("headers", [{}, {"X-Twilio-Signature": "AAAA"}])
def test_twilio_bad_signature_is_400_and_changes_nothing(world, headers):
    client, _ = api_client(world)
    mid = sent(world, "t0", "drip", "tw", "SM0001")
    before = log_count(world)
    response = post_twilio(client, STATUS, headers=headers, sign=False)
    assert response.status_code == 400
    assert status_of(world, mid) == "sent" and log_count(world) == before


PROXIED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.shop.example"}


def proxied_client(world, client_host: str, trusted: tuple[str, ...], public_url: str | None = None) -> TestClient:
    """A TestClient whose requests come from ``client_host``, with ``trusted`` as service.trusted_proxies."""
    options = ServiceOptions(dashboard_password=PASSWORD, public_url=public_url,
                             trusted_proxies=tuple(ipaddress.ip_network(t) for t in trusted))
    return TestClient(create_app(world.config, engine=world.engine, options=options),
                      raise_server_exceptions=False, client=(client_host, 40000))


def test_twilio_forwarded_headers_from_an_untrusted_client_are_ignored(world):
    mid = sent(world, "t0", "drip", "tw", "SM0001")
    for client in (api_client(world)[0], proxied_client(world, "203.0.113.9", trusted=("10.0.0.0/8",))):
        # a signature made for another URL (captured elsewhere) can't be pointed at by the headers
        assert post_twilio(client, STATUS, url="https://hooks.shop.example/webhooks/tw", headers=PROXIED).status_code == 400
        assert status_of(world, mid) == "sent"
    client = proxied_client(world, "203.0.113.9", trusted=("10.0.0.0/8",))
    assert post_twilio(client, STATUS, url="http://testserver/webhooks/tw", headers=PROXIED).status_code == 200
    assert status_of(world, mid) == "delivered"  # the request's own URL, headers ignored


@pytest.mark.parametrize("client_host, trusted", [("10.1.2.3", ("10.0.0.0/8",)), ("127.0.0.1", ("127.0.0.1",)),
                                                  ("::1", ("10.0.0.0/8", "::1"))])
def test_twilio_forwarded_headers_from_a_trusted_proxy_give_the_signed_url(world, client_host, trusted):
    mid = sent(world, "t0", "drip", "tw", "SM0001")
    client = proxied_client(world, client_host, trusted)
    assert post_twilio(client, STATUS, url="http://testserver/webhooks/tw", headers=PROXIED).status_code == 400
    assert post_twilio(client, STATUS, url="https://hooks.shop.example/webhooks/tw", headers=PROXIED).status_code == 200
    assert status_of(world, mid) == "delivered"


def test_twilio_public_url_wins_over_every_header(world):
    mid = sent(world, "t0", "drip", "tw", "SM0001")
    client = proxied_client(world, "10.1.2.3", ("10.0.0.0/8",), public_url="https://api.shop.example")
    assert post_twilio(client, STATUS, url="https://hooks.shop.example/webhooks/tw", headers=PROXIED).status_code == 400
    assert status_of(world, mid) == "sent"
    configured, _ = api_client(world, public_url="https://api.shop.example")
    assert post_twilio(configured, STATUS, url="https://api.shop.example/webhooks/tw", headers=PROXIED).status_code == 200
    assert status_of(world, mid) == "delivered"


def test_trusted_proxies_setting_is_read_and_checked(make_world):
    world = make_world([simple_sequence("drip")], settings={
        **SERVICE_SETTINGS, "service": {"trusted_proxies": ["10.0.0.0/8", "127.0.0.1"]}})
    assert service_options(world.config).trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"),
                                                             ipaddress.ip_network("127.0.0.1/32"))
    (world.root / "config" / "settings.yaml").write_text(
        (world.root / "config" / "settings.yaml").read_text() + "service:\n  trusted_proxies: [10.0.0.0/8, proxy.lan]\n")
    with pytest.raises(ConfigError) as info:
        load_config(world.root / "config")
    problem, = info.value.problems
    assert problem.key == "service.trusted_proxies[1]" and "'proxy.lan' is not an IP address" in problem.message


@pytest.mark.parametrize("text, kind", [("11", "unsubscribed"), ("لغو", "unsubscribed"), ("STOP", "unsubscribed"),
                                        ("سلام، قیمت چنده؟", "replied")])
def test_twilio_inbound_sms_becomes_an_event_once(world, text, kind):
    client, _ = api_client(world)
    params = {"MessageSid": "SMin1", "From": "+989121234567", "To": "+14155552671", "Body": text}
    assert post_twilio(client, params).status_code == 200
    assert post_twilio(client, params).status_code == 200
    with world.engine.connect() as conn:
        events = conn.execute(sa.select(ContactEvent.__table__.c.type)).scalars().all()
        contact = conn.execute(sa.select(Contact.__table__)).mappings().one()
    assert events == [kind]
    assert bool(contact["sms_suppressed"]) is (kind == "unsubscribed")


def sendgrid_post(client, events, sign=True, body: bytes | None = None, timestamp: int | None = None):
    body = body if body is not None else json.dumps(events).encode()
    timestamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = SENDGRID_PRIVATE.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {"Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
               "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode() if sign else "MEUCIQ=="}
    return client.post("/webhooks/sg", content=body, headers=headers)


def test_sendgrid_signed_events_apply_once_and_bad_signature_is_400(world):
    client, _ = api_client(world)
    mid = sent(world, "t0", "news", "sg", "SGID1")
    events = [{"event": "delivered", "sg_message_id": "SGID1.filter0001.1", "timestamp": 1700000000,
               "followup_id": str(mid), "email": "sara@example.com"}]
    assert sendgrid_post(client, events, sign=False).status_code == 400
    assert status_of(world, mid) == "sent"
    assert sendgrid_post(client, events).status_code == 200
    assert status_of(world, mid) == "delivered"
    before = log_count(world)
    assert sendgrid_post(client, events).status_code == 200
    assert log_count(world) == before


def test_sendgrid_signed_garbage_is_500_so_it_is_retried(world):
    client, _ = api_client(world)
    response = sendgrid_post(client, None, body=b"{not json")
    assert response.status_code == 500 and "not json" not in response.text


MAILGUN_TOKEN = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"


def mailgun_body(mid: int, key: str = MAILGUN_KEY, event_data=None, timestamp: int | None = None,
                 token: str = MAILGUN_TOKEN) -> bytes:
    timestamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    data = event_data if event_data is not None else {
        "event": "delivered", "timestamp": 1700000000.4, "user-variables": {"followup_id": str(mid)},
        "message": {"headers": {"message-id": "20231114.1@mg.example.com"}}}
    return json.dumps({"signature": {"timestamp": timestamp, "token": token, "signature": signature},
                       "event-data": data}).encode()


def post_mailgun(client, body: bytes):
    return client.post("/webhooks/mg", content=body, headers={"Content-Type": "application/json"})


def test_mailgun_hmac(world):
    client, _ = api_client(world)
    mid = sent(world, "t0", "news", "mg", "20231114.1@mg.example.com")
    assert post_mailgun(client, mailgun_body(mid, key="wrong")).status_code == 400
    assert post_mailgun(client, mailgun_body(mid, key="key-mailgun")).status_code == 400  # the API key signs nothing
    assert status_of(world, mid) == "sent"
    assert post_mailgun(client, mailgun_body(mid)).status_code == 200
    assert status_of(world, mid) == "delivered"
    garbage = mailgun_body(mid, event_data="not an object", token="another-token-" + "0" * 36)
    assert post_mailgun(client, garbage).status_code == 500


def unsubscribed_event(mid: int) -> dict:
    return {"event": "unsubscribed", "timestamp": 1700000000.4, "user-variables": {"followup_id": str(mid)}}


def test_a_captured_mailgun_signature_is_refused_three_years_later(world):
    """Mailgun signs timestamp + token only: an old signed block must not carry a forged event."""
    client, _ = api_client(world)
    mid = sent(world, "t0", "news", "mg", "20231114.1@mg.example.com")
    captured = int(time.time()) - 3 * 365 * 24 * 3600
    before = log_count(world)
    response = post_mailgun(client, mailgun_body(mid, timestamp=captured, event_data=unsubscribed_event(mid)))
    assert response.status_code == 400
    assert status_of(world, mid) == "sent" and log_count(world) == before
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(Contact.__table__.c.email_suppressed)).scalar() is None


def test_a_reused_mailgun_token_is_refused_even_within_the_window(world):
    client, _ = api_client(world)
    mid = sent(world, "t0", "news", "mg", "20231114.1@mg.example.com")
    signed_at = int(time.time())
    assert post_mailgun(client, mailgun_body(mid, timestamp=signed_at)).status_code == 200
    before = log_count(world)
    # the same signed block with a forged event in place of the real one
    replay = post_mailgun(client, mailgun_body(mid, timestamp=signed_at, event_data=unsubscribed_event(mid)))
    assert replay.status_code == 400 and "replayed" in replay.text
    assert status_of(world, mid) == "delivered" and log_count(world) == before
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(Contact.__table__.c.email_suppressed)).scalar() is None


def test_a_mailgun_token_is_claimed_only_when_its_event_is_applied(world, monkeypatch):
    """A 500 makes Mailgun send the webhook again: its token must still be good then."""
    import engine.receipts

    client, _ = api_client(world)
    mid = sent(world, "t0", "news", "mg", "20231114.1@mg.example.com")
    body = mailgun_body(mid)
    real = engine.receipts.apply_reports

    def broken(*_a, **_kw):
        raise RuntimeError("database went away")

    monkeypatch.setattr(engine.receipts, "apply_reports", broken)
    assert post_mailgun(client, body).status_code == 500
    monkeypatch.setattr(engine.receipts, "apply_reports", real)
    assert post_mailgun(client, body).status_code == 200
    assert status_of(world, mid) == "delivered"


def test_mailgun_tokens_are_forgotten_once_their_window_has_passed(world):
    client, _ = api_client(world)
    mid = sent(world, "t0", "news", "mg", "20231114.1@mg.example.com")
    tokens = WebhookToken.__table__
    with freeze_time("2026-12-05 06:30:00") as clock:
        assert post_mailgun(client, mailgun_body(mid, token="t" * 50)).status_code == 200
        clock.tick(timedelta(minutes=9))
        assert post_mailgun(client, mailgun_body(mid, token="u" * 50)).status_code == 200
        with world.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(tokens)).scalar_one() == 2
        clock.tick(timedelta(minutes=2))  # the first is 11 minutes old: past twice the 5-minute window
        assert post_mailgun(client, mailgun_body(mid, token="v" * 50)).status_code == 200
        with world.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(tokens)).scalar_one() == 2


def test_a_signed_event_only_touches_messages_its_provider_sent_on_its_channel(world):
    """Mailgun's events name our message id: a signed one must not reach an SMS, nor another provider's email."""
    client, _ = api_client(world)
    sms = sent(world, "t0", "drip", "tw", "SM0001")
    email = sent(world, "t0", "news", "sg", "SGID1")
    before = log_count(world)
    for mid, token in ((sms, "s" * 50), (email, "e" * 50)):
        response = post_mailgun(client, mailgun_body(mid, token=token, event_data=unsubscribed_event(mid)))
        assert response.status_code == 200 and response.json() == {"result": "0 applied"}
    assert (status_of(world, sms), status_of(world, email)) == ("sent", "sent") and log_count(world) == before
    with world.engine.connect() as conn:
        contact = conn.execute(sa.select(Contact.__table__)).mappings().one()
    assert contact["sms_suppressed"] is None and contact["email_suppressed"] is None


def test_a_twilio_receipt_does_not_touch_another_providers_message_with_the_same_id(world):
    client, _ = api_client(world)
    theirs = sent(world, "t0", "news", "sg", "SM0001")  # an email whose provider id happens to match
    assert post_twilio(client, STATUS).status_code == 200
    assert status_of(world, theirs) == "sent"


def test_validate_says_a_mailgun_provider_needs_its_webhook_signing_key(make_world):
    unkeyed = [{k: v for k, v in p.items() if k != "webhook_signing_key"} for p in PROVIDERS["email"]]
    world = make_world([simple_sequence("drip")],
                       settings={**SERVICE_SETTINGS, "providers": {**PROVIDERS, "email": unkeyed}})
    _, problems = validate(world.root / "config")
    problem, = [p for p in problems if "webhook_signing_key" in p.key]
    assert problem.key == "providers.email[1].webhook_signing_key" and "not the API key" in problem.message
    assert problem.line is not None
    keyed = make_world([simple_sequence("drip")], settings={**SERVICE_SETTINGS, "providers": PROVIDERS})
    assert not [p for p in validate(keyed.root / "config")[1] if "webhook_signing_key" in p.key]


def test_a_database_failure_while_applying_is_500(world, monkeypatch):
    import engine.receipts

    def broken(*_a, **_kw):
        raise RuntimeError("database went away")

    monkeypatch.setattr(engine.receipts, "apply_reports", broken)
    client, _ = api_client(world)
    mid = sent(world, "t0", "drip", "tw", "SM0001")
    response = post_twilio(client, STATUS)
    assert response.status_code == 500 and "went away" not in response.text
    assert status_of(world, mid) == "sent"


def test_unknown_provider_is_404(world):
    client, _ = api_client(world)
    assert client.post("/webhooks/nope", content=b"x").status_code == 404


# -- one-click unsubscribe ---------------------------------------------------------------------
def test_unsubscribe_page_is_bilingual_rtl_and_reveals_nothing(world):
    client, _ = api_client(world)
    token = make_token(SECRET, world.contact_id, "email")
    page = client.get(f"/u/{token}")
    assert page.status_code == 200
    assert 'dir="rtl"' in page.text and "لغو اشتراک" in page.text and "Unsubscribe" in page.text
    for secret in ("sara", "09121234567", "+989121234567", SECRET, str(world.contact_id) + ":"):
        assert secret not in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(Contact.__table__.c.email_suppressed)).scalar() is None  # GET changes nothing


def test_one_click_post_unsubscribes_that_channel_at_once_and_once(world):
    client, _ = api_client(world)
    token = make_token(SECRET, world.contact_id, "email")
    one_click = {"Content-Type": "application/x-www-form-urlencoded"}
    assert client.post(f"/u/{token}", content=b"", headers=one_click).status_code == 400
    for _ in range(2):
        response = client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click", headers=one_click)
        assert response.status_code == 200 and 'id="done"' in response.text
    with world.engine.connect() as conn:
        contact = conn.execute(sa.select(Contact.__table__)).mappings().one()
        events = conn.execute(sa.select(ContactEvent.__table__)).mappings().all()
    assert contact["email_suppressed"] and not contact["sms_suppressed"]
    assert [(e["type"], e["channel"], e["source"]) for e in events] == [("unsubscribed", "email", "link")]


@pytest.mark.parametrize("token", ["x", make_token("another-secret", 1, "email"), "A" * 300],
                         ids=["short", "another-secret", "long"])  # ids that every xdist worker collects alike
def test_forged_or_damaged_tokens_change_nothing(world, token):
    client, _ = api_client(world)
    response = client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 404
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ContactEvent.__table__)).scalar_one() == 0
