"""TwilioProvider against a real HTTP server on 127.0.0.1 speaking Twilio's wire format."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from providers import (
    AmbiguousSendError,
    DeliveryState,
    InboundMessage,
    OutgoingMessage,
    PermanentContentError,
    PermanentError,
    PermanentRecipientError,
    ProviderBlockedError,
    ProviderConfigError,
    ProviderSetupError,
    RateLimitedError,
    TransientError,
    create_provider,
)
from tests.fakes.httpserver import Reply
from tests.provider_support import answering_server_fixtures

DATA = Path(__file__).parent / "data" / "twilio"
SID = "AC00000000000000000000000000000001"
TOKEN = "tw-auth-token-0123456789abcdef"
BASIC = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"


def load(name):
    text = (DATA / name).read_text()
    return json.loads(text) if name.endswith(".json") else text.encode()


def make(url, **settings):
    base = {"name": "tw", "type": "twilio", "account_sid": SID, "auth_token": TOKEN, "sender": "+14155552671",
            "base_url": url, "timeout": 0.3}
    return create_provider({**base, **settings})


def sms(to="+989121234567", text="Winter sale ends Friday"):
    return OutgoingMessage(message_id="m-1", channel="sms", to=to, text=text)


server, serve = answering_server_fixtures(make)


def test_send_wire_request_and_result(serve):
    p, server = serve(Reply(201, load("message_queued.json")),
                      status_callback="https://hooks.example/twilio/status", default_region="IR")
    result = p.send(sms(to="0912 123 4567"))
    assert (result.provider_message_id, result.segments, result.cost) == ("SM1f0e8ae6ade43cb3c0ce4525424e404f", 2,
                                                                           0.0158)
    req, = server.requests
    assert (req.method, req.path) == ("POST", MESSAGES)
    assert req.headers["Authorization"] == BASIC
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert req.form == {"To": "+989121234567", "From": "+14155552671", "Body": "Winter sale ends Friday",
                        "StatusCallback": "https://hooks.example/twilio/status"}


def test_messaging_service_replaces_from(serve):
    p, server = serve(Reply(201, load("message_queued.json")), sender=None, messaging_service_sid="MG123")
    p.send(sms(to="+1 (415) 555-2671"))
    form = server.requests[0].form
    assert form["MessagingServiceSid"] == "MG123" and "From" not in form
    assert form["To"] == "+14155552671"


def test_not_a_phone_number_is_refused_before_any_request(serve):
    p, server = serve(Reply(201, load("message_queued.json")))
    with pytest.raises(PermanentRecipientError):
        p.send(sms(to="12"))
    assert server.requests == []


def _error(code, status):
    return {"code": code, "message": f"error {code}", "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


@pytest.mark.parametrize("status, code, error", [
    (429, 20429, RateLimitedError),
    (401, 20003, ProviderBlockedError),
    (400, 21211, PermanentRecipientError),
    (400, 21610, PermanentRecipientError),
    (400, 21612, ProviderSetupError),  # sender/route: pause and fail over, never suppress
    (400, 21614, PermanentRecipientError),
    (400, 21635, PermanentRecipientError),
    (400, 21606, ProviderBlockedError),
    (400, 21608, ProviderBlockedError),
    (403, 30002, ProviderBlockedError),
    (400, 30007, PermanentContentError),
    (400, 21999, PermanentContentError),  # unknown code: HTTP status decides
    (503, 20500, TransientError),
    (500, None, TransientError),
])
def test_error_mapping(serve, status, code, error):
    p, _ = serve(Reply(status, _error(code, status) if code else "Internal Server Error"))
    with pytest.raises(error) as info:
        p.send(sms())
    assert type(info.value) is error
    assert info.value.code == str(code or status)
    assert TOKEN not in str(info.value)


def test_error_fixture_body(serve):
    p, _ = serve(Reply(400, load("error_21211.json")))
    with pytest.raises(PermanentRecipientError, match="not a valid phone number"):
        p.send(sms())


def test_201_that_already_failed_maps_its_error_code(serve):
    body = {**load("message_queued.json"), "status": "failed", "error_code": 30007, "error_message": "filtered"}
    p, _ = serve(Reply(201, body))
    with pytest.raises(PermanentContentError):
        p.send(sms())
    p, _ = serve(Reply(201, {**body, "error_code": 39999}))
    with pytest.raises(PermanentError):
        p.send(sms())
    p, _ = serve(Reply(200, load("error_21211.json")))  # an error body under a success status
    with pytest.raises(PermanentRecipientError):
        p.send(sms())


@pytest.mark.parametrize("reply", [
    Reply(201, "<html>ok</html>"),       # not JSON
    Reply(201, {"status": "queued"}),   # JSON without a sid
])
def test_ambiguous_outcomes(serve, reply):
    p, server = serve(reply)
    with pytest.raises(AmbiguousSendError):
        p.send(sms())
    assert len(server.requests) == 1


@pytest.mark.parametrize("headers, retry_after", [({"Retry-After": "7"}, 7.0), ({}, None)])
def test_429_with_and_without_retry_after(serve, headers, retry_after):
    p, _ = serve(Reply(429, _error(20429, 429), headers))
    with pytest.raises(RateLimitedError) as info:
        p.send(sms())
    assert info.value.retry_after == retry_after


def test_malformed_json_on_5xx_is_transient(serve):
    p, _ = serve(Reply(502, "{not json"))
    with pytest.raises(TransientError):
        p.send(sms())


def test_delivery_status_polls_each_message(serve):
    replies = {"SM1f0e8ae6ade43cb3c0ce4525424e404f": Reply(200, {**load("message_queued.json"), "status": "sent"}),
               "SM2a0e8ae6ade43cb3c0ce4525424e4050": Reply(200, load("message_undelivered.json"))}
    p, server = serve(lambda req: replies.get(req.path.rsplit("/", 1)[1][:-5], Reply(404, {"code": 20404})))
    reports = p.delivery_status([*replies, "SMmissing"])
    assert [(r.provider_message_id, r.state, r.recipient_blocked) for r in reports] == [
        ("SM1f0e8ae6ade43cb3c0ce4525424e404f", DeliveryState.PENDING, False),
        ("SM2a0e8ae6ade43cb3c0ce4525424e4050", DeliveryState.UNDELIVERED, True),
    ]
    assert reports[1].reason == "30006"
    assert all(r.method == "GET" and r.headers["Authorization"] == BASIC for r in server.requests)


def test_delivery_status_timeout_is_transient_not_ambiguous(serve):
    p, _ = serve(Reply(200, load("message_undelivered.json"), delay=1.0))
    with pytest.raises(TransientError) as info:
        p.delivery_status(["SM2a0e8ae6ade43cb3c0ce4525424e4050"])
    assert type(info.value) is TransientError


def test_check_reports_active_account_and_balance(serve):
    def handler(req):
        return Reply(200, load("balance.json") if req.path.endswith("/Balance.json") else load("account.json"))

    p, server = serve(handler)
    state = p.check()
    assert state.ok and state.credit == 12.34 and "followup prod" in state.detail
    assert [r.path for r in server.requests] == [f"/2010-04-01/Accounts/{SID}.json",
                                                 f"/2010-04-01/Accounts/{SID}/Balance.json"]


@pytest.mark.parametrize("reply, detail", [
    (Reply(401, {"code": 20003, "message": "Authenticate", "status": 401}), "credentials refused"),
    (Reply(200, {"status": "suspended"}), "suspended"),
    (Reply(500, "oops"), "HTTP 500"),
])
def test_check_failures(serve, reply, detail):
    p, _ = serve(reply)
    state = p.check()
    assert state.ok is False and detail in state.detail and TOKEN not in state.detail


# -- webhooks -------------------------------------------------------------------------
def sign(url, body, token=TOKEN):
    payload = url + "".join(k + v for k, v in sorted(parse_qsl(body.decode(), keep_blank_values=True)))
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def test_signature_matches_twilios_published_example():
    p = make("http://127.0.0.1:1", auth_token="12345")
    body = b"To=%2B18005551212&CallSid=CA1234567890ABCDE&Digits=1234&From=%2B12349013030&Caller=%2B12349013030"
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert p.verify_webhook(url, {"X-Twilio-Signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ="}, body)
    assert not p.verify_webhook(url.replace("bar=2", "bar=3"), {"X-Twilio-Signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ="},
                                body)


VECTORS = json.loads((DATA / "request_validator_vectors.json").read_text())


def vector_provider():
    return make("http://127.0.0.1:1", auth_token=VECTORS["token"])


def test_signature_matches_the_sdks_own_test_vectors():
    p, uri, body = vector_provider(), VECTORS["uri"], VECTORS["params"].encode()
    assert p.verify_webhook(uri, {"X-Twilio-Signature": VECTORS["expected"]}, body)
    assert p.verify_webhook(uri, {"X-Twilio-Signature": VECTORS["duplicate_expected"]},
                            VECTORS["duplicate_params"].encode())
    assert not p.verify_webhook(uri, {"X-Twilio-Signature": VECTORS["expected"]}, body.replace(b"1234", b"1235"))


@pytest.mark.parametrize("uri, expected", [
    ("https://mycompany.com:1234/myapp.php?foo=1&bar=2", "expected"),                # port removed (https)
    ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "expected_http_port_1234"),  # as given
    ("https://mycompany.com/myapp.php?foo=1&bar=2", "expected_https_port_443"),      # :443 added
    ("http://mycompany.com/myapp.php?foo=1&bar=2", "expected_http_port_80"),         # :80 added
])
def test_the_url_is_tried_with_and_without_its_port(uri, expected):
    assert vector_provider().verify_webhook(uri, {"X-Twilio-Signature": VECTORS[expected]},
                                            VECTORS["params"].encode())


def test_a_json_body_is_checked_by_its_bodysha256():
    p, body = vector_provider(), VECTORS["body"].encode()
    uri = VECTORS["uri"] + "&bodySHA256=" + VECTORS["body_hash"]
    assert p.verify_webhook(uri, {"X-Twilio-Signature": VECTORS["body_expected"]}, body)
    assert not p.verify_webhook(uri, {"X-Twilio-Signature": VECTORS["body_expected"]}, body.replace(b"true", b"false"))
    assert not p.verify_webhook(uri.replace("0a1f", "0a1e"), {"X-Twilio-Signature": VECTORS["body_expected"]}, body)


def test_verify_webhook_valid_tampered_wrong_key():
    p = make("http://127.0.0.1:1")
    url, body = "https://hooks.example/twilio/status?p=tw", load("status_delivered.form")
    assert p.verify_webhook(url, {"x-twilio-signature": sign(url, body)}, body)
    assert not p.verify_webhook(url, {"X-Twilio-Signature": sign(url, body)}, body.replace(b"delivered", b"failed"))
    assert not p.verify_webhook(url, {"X-Twilio-Signature": sign(url, body, token="another-token")}, body)
    assert not p.verify_webhook(url, {}, body)


@pytest.mark.parametrize("fixture, state, blocked, reason", [
    ("status_delivered.form", DeliveryState.DELIVERED, False, "delivered"),
    ("status_sent.form", DeliveryState.PENDING, False, "sent"),
    ("status_undelivered_30006.form", DeliveryState.UNDELIVERED, True, "30006"),
    ("status_failed_30003.form", DeliveryState.UNDELIVERED, False, "30003"),
])
def test_parse_status_callbacks(fixture, state, blocked, reason):
    report, = make("http://127.0.0.1:1").parse_webhook({}, load(fixture))
    assert (report.state, report.recipient_blocked, report.reason) == (state, blocked, reason)
    assert report.provider_message_id.startswith("SM")


def test_parse_inbound_sms():
    inbound, = make("http://127.0.0.1:1").parse_webhook({}, load("inbound_sms.form"))
    assert inbound == InboundMessage(sender="+989121234567", text="STOP please",
                                     provider_message_id="SM9c2f0e8ae6ade43cb3c0ce4525424e41")


def test_settings_and_secrets():
    with pytest.raises(ProviderConfigError) as info:
        make("http://x", sender=None)
    assert info.value.key == "sender"
    with pytest.raises(ProviderConfigError):
        make("http://x", auth_token="")
    assert TOKEN not in repr(make("http://x"))
