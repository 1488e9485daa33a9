"""Provider webhooks and one-click unsubscribe through the ASGI test client.

Each webhook is signed the provider's own way: a bad signature is a 400 and changes nothing, a body that
can't be parsed is a 500 (the provider retries), and the same event twice changes nothing the second time.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from engine.models import Contact, ContactEvent, Message
from engine.tokens import make_token
from tests.conftest import simple_sequence
from tests.service_support import SECRET, SERVICE_SETTINGS, api_client

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
               "from": "shop@example.com", "webhook_key": MAILGUN_KEY}],
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


def test_twilio_signature_is_checked_against_the_public_url(world):
    mid = sent(world, "t0", "drip", "tw", "SM0001")
    client, _ = api_client(world)
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.shop.example"}
    wrong = post_twilio(client, STATUS, url="https://hooks.shop.example/webhooks/tw", sign=True)
    assert wrong.status_code == 400  # no proxy headers: the request's own URL was signed differently
    response = post_twilio(client, STATUS, url="https://hooks.shop.example/webhooks/tw", headers=proxied)
    assert response.status_code == 200 and status_of(world, mid) == "delivered"
    configured, _ = api_client(world, public_url="https://api.shop.example")
    params = {**STATUS, "MessageSid": "SM0002"}
    mid2 = sent(world, "t0", "news", "tw", "SM0002")
    assert post_twilio(configured, params, url="https://api.shop.example/webhooks/tw").status_code == 200
    assert status_of(world, mid2) == "delivered"


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


def mailgun_body(mid: int, key: str = MAILGUN_KEY, event_data=None) -> bytes:
    timestamp, token = "1700000000", "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    data = event_data if event_data is not None else {
        "event": "delivered", "timestamp": 1700000000.4, "user-variables": {"followup_id": str(mid)},
        "message": {"headers": {"message-id": "20231114.1@mg.example.com"}}}
    return json.dumps({"signature": {"timestamp": timestamp, "token": token, "signature": signature},
                       "event-data": data}).encode()


def test_mailgun_hmac(world):
    client, _ = api_client(world)
    mid = sent(world, "t0", "news", "mg", "20231114.1@mg.example.com")
    headers = {"Content-Type": "application/json"}
    assert client.post("/webhooks/mg", content=mailgun_body(mid, key="wrong"), headers=headers).status_code == 400
    assert status_of(world, mid) == "sent"
    assert client.post("/webhooks/mg", content=mailgun_body(mid), headers=headers).status_code == 200
    assert status_of(world, mid) == "delivered"
    before = log_count(world)
    assert client.post("/webhooks/mg", content=mailgun_body(mid), headers=headers).status_code == 200
    assert log_count(world) == before
    garbage = mailgun_body(mid, event_data="not an object")
    assert client.post("/webhooks/mg", content=garbage, headers=headers).status_code == 500


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


@pytest.mark.parametrize("token", ["x", make_token("another-secret", 1, "email"), "A" * 300])
def test_forged_or_damaged_tokens_change_nothing(world, token):
    client, _ = api_client(world)
    response = client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 404
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ContactEvent.__table__)).scalar_one() == 0
