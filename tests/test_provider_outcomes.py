"""What a panel's answer makes of a send: real adapters against local HTTP servers, the engine's Sender
choosing between pausing the provider (and failing over), failing the message, suppressing the contact,
or recording the send as unknown. Payload sources: tests/data/<provider>/SOURCES.md.
"""
from __future__ import annotations

import json

import pytest

from engine.sending import Sender
from providers import OutgoingMessage, ProviderSetupError, create_provider
from tests.fakes.httpserver import Reply
from tests.provider_support import DATA, answering_server_fixtures, load_payload

MSG = OutgoingMessage(message_id="41", channel="sms", to="+989121234567", text="سلام\nلغو11")
KAVENEGAR_KEY = "4A6B7A5A3171523444654B6C6F4F"
SETTINGS = {
    "kavenegar": {"api_key": KAVENEGAR_KEY, "sender": "10004346"},
    "smsir": {"api_key": "smsir-Xk29vL0pQw7TzR8m", "sender": "30007732000000"},
    "ippanel": {"api_key": "OWZkNmJhZTQtN2U4Ni00MGQ0LWE2", "sender": "3000505"},
    "melipayamak": {"api_key": "meli-token-0123456789", "sender": "50004001"},
    "ghasedak": {"api_key": "gh-2f8a9c1b7e6d4a30b5c9", "sender": "30005006"},
    "twilio": {"account_sid": "AC00000000000000000000000000000001", "auth_token": "tw-auth-token-0123456789abcdef",
               "sender": "+14155552671"},
}


def make(url, type="kavenegar"):
    return create_provider({"name": type, "type": type, "base_url": url, "timeout": 2, **SETTINGS[type]})


server, serve = answering_server_fixtures(make)


def send_with_fallback(provider):
    """Send MSG through ``provider`` with a memory provider behind it; return (outcome, fallback)."""
    fallback = create_provider({"name": "backup", "type": "memory"})
    outcome = Sender({"sms": [provider, fallback]}, sleep=lambda s: None).send(MSG, set())
    return outcome, fallback


def test_twilio_21612_pauses_the_sender_and_fails_over_without_suppressing(serve):
    # twilio.com/docs/api/errors/21612: the To/From combination, i.e. the sender or route
    provider, _ = serve(Reply(400, json.loads((DATA / "twilio" / "error_21612.json").read_text())), type="twilio")
    outcome, fallback = send_with_fallback(provider)
    assert (outcome.kind, outcome.provider, outcome.suppress) == ("sent", "backup", False)
    assert "twilio" in outcome.blocked and "21612" in outcome.blocked["twilio"]
    assert [m.message_id for m in fallback.outbox] == ["41"]


@pytest.mark.parametrize("http_status", [200, 400])
def test_ippanel_without_credit_pauses_and_fails_over(serve, http_status):
    provider, _ = serve(Reply(http_status, load_payload("ippanel", "error_credit.json")), type="ippanel")
    outcome, fallback = send_with_fallback(provider)
    assert (outcome.kind, outcome.provider) == ("sent", "backup")
    assert "ippanel" in outcome.blocked and len(fallback.outbox) == 1


def test_smsir_null_message_id_fails_the_message_and_keeps_the_contact(serve):
    provider, _ = serve(Reply(200, load_payload("smsir", "send_invalid.json")), type="smsir")
    outcome, fallback = send_with_fallback(provider)
    assert (outcome.kind, outcome.suppress) == ("failed", False)
    assert outcome.reason.startswith("content:") and fallback.outbox == []


@pytest.mark.parametrize("type, reply", [
    ("smsir", Reply(500, "<html>Internal Server Error</html>")),
    ("smsir", Reply(200, {"status": 0, "message": "خطای سیستمی", "data": None})),
    ("melipayamak", Reply(502, "<html>Bad Gateway</html>")),
    ("ippanel", Reply(503, "<html>Service Unavailable</html>")),
])
def test_a_server_error_without_an_idempotency_key_is_unknown_and_never_resent(serve, type, reply):
    provider, server = serve(reply, type=type)
    outcome, fallback = send_with_fallback(provider)
    assert outcome.kind == "unknown" and "no idempotency key" in outcome.reason
    assert len(server.requests) == 1 and fallback.outbox == []


def test_a_ghasedak_duplicate_that_cannot_be_found_is_unknown_not_sent_nor_retried(serve):
    def panel(req):
        if req.path == "/SendSingleSMS":
            return Reply(200, {"isSuccess": False, "statusCode": 451, "message": "DuplicateRequest", "data": None})
        return Reply(200, load_payload("ghasedak", "check_status_empty.json"))

    provider, server = serve(panel, type="ghasedak")
    outcome, fallback = send_with_fallback(provider)
    assert (outcome.kind, outcome.provider) == ("unknown", "ghasedak") and "clientReferenceId" in outcome.reason
    assert [r.path for r in server.requests] == ["/SendSingleSMS", "/CheckSmsStatus"] and fallback.outbox == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirected_send_is_not_followed_and_names_the_location(serve, status):
    moved = "https://api.example.test/v2/"
    provider, server = serve(Reply(status, "", headers={"Location": moved}), type="smsir")
    with pytest.raises(ProviderSetupError) as info:
        provider.send(MSG)
    assert moved in str(info.value) and str(status) in str(info.value)
    assert [(r.method, r.path) for r in server.requests] == [("POST", "/send/bulk")]  # no GET without the body


def test_a_redirect_pauses_the_provider_and_the_message_fails_over(serve):
    provider, server = serve(Reply(302, "", headers={"Location": "/elsewhere"}), type="kavenegar")
    outcome, fallback = send_with_fallback(provider)
    assert (outcome.kind, outcome.provider) == ("sent", "backup")
    assert "/elsewhere" in outcome.blocked["kavenegar"] and KAVENEGAR_KEY not in outcome.blocked["kavenegar"]
    assert len(server.requests) == 1


def test_a_redirect_location_never_shows_the_key(serve):
    # Kavenegar's key is a path segment; a redirect that echoes the path must not reveal it
    provider, server = serve(lambda req: Reply(301, "", headers={"Location": f"https://other.test{req.path}"}))
    with pytest.raises(ProviderSetupError) as info:
        provider.send(MSG)
    assert KAVENEGAR_KEY not in str(info.value) and "https://other.test/" in str(info.value)
