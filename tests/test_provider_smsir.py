"""SMS.ir adapter against a real HTTP server on 127.0.0.1 speaking its wire format."""
from __future__ import annotations

import socket
from datetime import datetime, timezone

import pytest

from providers.base import DeliveryState, OutgoingMessage
from providers.errors import (
    AmbiguousSendError,
    PermanentContentError,
    PermanentRecipientError,
    ProviderBlockedError,
    RateLimitedError,
    RecipientBlacklistedError,
    TransientError,
)
from providers.registry import create_provider
from providers.smsir import SmsIrProvider
from tests.fakes.httpserver import Reply
from tests.provider_support import load_payload, routed_server_fixtures

KEY = "smsir-Xk29vL0pQw7TzR8m"
MSG = OutgoingMessage(message_id="msg-1", channel="sms", to="+989121234567", text="سلام\nلغو11")


def load(name):
    return load_payload("smsir", name)


def error_body(code, text="خطا"):
    return {"status": code, "message": text, "data": None}


_server, server = routed_server_fixtures("suffix")


def make(url, **settings):
    return create_provider({"name": "smsir", "type": "smsir", "api_key": KEY, "sender": "30007732000000",
                            "base_url": url, **settings})


def test_send_accepted_and_the_exact_wire_request(server):
    server.routes["/send/bulk"] = Reply(200, load("send_ok.json"))
    provider = make(server.url)
    assert isinstance(provider, SmsIrProvider)
    result = provider.send(MSG)
    assert (result.provider_message_id, result.cost) == ("89545112", 2.0)
    [req] = server.requests
    assert (req.method, req.path) == ("POST", "/send/bulk")
    assert req.headers["X-API-KEY"] == KEY
    assert req.json == {"lineNumber": 30007732000000, "messageText": MSG.text, "mobiles": ["09121234567"],
                        "sendDateTime": None}


def test_a_blacklisted_recipient_in_an_accepted_reply(server):
    server.routes["/send/bulk"] = Reply(200, load("send_blacklisted.json"))
    with pytest.raises(RecipientBlacklistedError) as info:
        make(server.url).send(MSG)
    assert info.value.code == "0"


def test_a_null_message_id_fails_this_message_and_says_nothing_of_the_contact(server):
    # SMS.ir: null is "an invalid number or an invalid/overlong text"; our numbers are validated before
    server.routes["/send/bulk"] = Reply(200, load("send_invalid.json"))
    with pytest.raises(PermanentContentError) as info:
        make(server.url).send(MSG)
    assert type(info.value) is PermanentContentError and info.value.code == "null"


@pytest.mark.parametrize("code, error", [
    (0, AmbiguousSendError),  # "system problem" on a send without an idempotency key: it may have gone
    (10, ProviderBlockedError), (11, ProviderBlockedError), (12, ProviderBlockedError),
    (13, ProviderBlockedError), (14, ProviderBlockedError), (20, RateLimitedError),
    (101, ProviderBlockedError), (102, ProviderBlockedError), (103, PermanentContentError),
    (104, PermanentRecipientError), (105, PermanentContentError), (107, PermanentContentError),
    (113, PermanentContentError), (115, RecipientBlacklistedError), (117, PermanentContentError),
    (119, ProviderBlockedError), (123, ProviderBlockedError),
    (777, PermanentContentError),  # unknown: defensive
])
@pytest.mark.parametrize("http_status", [400, 200])
def test_body_status_maps(server, code, error, http_status):
    server.routes["/send/bulk"] = Reply(http_status, error_body(code))
    with pytest.raises(error) as info:
        make(server.url).send(MSG)
    assert type(info.value) is error
    assert info.value.code == str(code)


@pytest.mark.parametrize("headers, retry_after", [({"Retry-After": "12"}, 12.0), ({}, None)])
def test_http_429_is_rate_limited(server, headers, retry_after):
    server.routes["/send/bulk"] = Reply(429, error_body(20, "too many"), headers=headers)
    with pytest.raises(RateLimitedError) as info:
        make(server.url).send(MSG)
    assert info.value.retry_after == retry_after


def test_http_429_without_a_body(server):
    server.routes["/send/bulk"] = Reply(429, "", headers={"Retry-After": "3"})
    with pytest.raises(RateLimitedError) as info:
        make(server.url).send(MSG)
    assert info.value.retry_after == 3.0


@pytest.mark.parametrize("reply, error", [
    (Reply(401, ""), ProviderBlockedError),
    (Reply(500, "<html>Internal Server Error</html>"), AmbiguousSendError),
    (Reply(503, error_body(0, "خطای سیستمی")), AmbiguousSendError),
    (Reply(200, "<html>ok?</html>"), AmbiguousSendError),
    (Reply(200, {"status": 1, "message": "موفق", "data": {"messageIds": []}}), AmbiguousSendError),
])
def test_http_failures_and_malformed_replies(server, reply, error):
    server.routes["/send/bulk"] = reply
    with pytest.raises(error) as info:
        make(server.url).send(MSG)
    assert type(info.value) is error
    assert len(server.requests) == 1  # never resent inside the adapter


def test_a_server_error_on_a_send_is_unknown_and_says_why(server):
    server.routes["/send/bulk"] = Reply(500, "<html>Internal Server Error</html>")
    with pytest.raises(AmbiguousSendError, match="no idempotency key"):
        make(server.url).send(MSG)


def test_the_key_never_shows(server):
    server.routes["/send/bulk"] = Reply(400, error_body(10, f"invalid key {KEY}"))
    provider = make(server.url)
    with pytest.raises(ProviderBlockedError) as info:
        provider.send(MSG)
    assert KEY not in str(info.value) and KEY not in repr(provider)


def test_no_lookup_by_our_id():
    assert make("http://127.0.0.1:1").supports_lookup is False


def test_delivery_status_one_call_per_message(server):
    server.routes["/send/89545112"] = Reply(200, load("report.json"))
    blacklisted = {"status": 1, "message": "موفق", "data": {"messageId": 7, "deliveryState": 7,
                                                              "deliveryDateTime": None}}
    server.routes["/send/7"] = Reply(200, blacklisted)
    first, second = make(server.url).delivery_status(["89545112", "7"])
    assert (first.state, first.recipient_blocked) == (DeliveryState.DELIVERED, False)
    assert first.at == datetime.fromtimestamp(1700000060, tz=timezone.utc)
    assert (second.state, second.recipient_blocked, second.at) == (DeliveryState.UNDELIVERED, True, None)
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/send/89545112"), ("GET", "/send/7")]


def test_one_id_that_fails_does_not_sink_the_others(server):
    server.routes["/send/89545112"] = Reply(200, load("report.json"))
    server.routes["/send/404"] = Reply(400, load("report_not_found.json"))
    server.routes["/send/500"] = Reply(500, "<html>Internal Server Error</html>")
    gone, busy, delivered = make(server.url).delivery_status(["404", "500", "89545112"])
    assert (gone.state, gone.error) == (DeliveryState.UNTRACKED, None)
    assert "111" in gone.reason
    assert busy.state == DeliveryState.PENDING and isinstance(busy.error, TransientError)
    assert delivered.state == DeliveryState.DELIVERED


def test_a_refused_key_while_polling_fails_the_whole_poll(server):
    server.routes["/send/1"] = Reply(401, error_body(10, "کلید نامعتبر"))
    with pytest.raises(ProviderBlockedError):
        make(server.url).delivery_status(["1", "2"])
    assert len(server.requests) == 1


@pytest.mark.parametrize("state, expected", [(2, DeliveryState.UNDELIVERED), (3, DeliveryState.PENDING),
                                             (4, DeliveryState.UNDELIVERED), (5, DeliveryState.PENDING),
                                             (6, DeliveryState.UNDELIVERED), (42, DeliveryState.PENDING)])
def test_delivery_state_table(server, state, expected):
    server.routes["/send/1"] = Reply(200, {"status": 1, "message": "", "data": {"deliveryState": state}})
    [report] = make(server.url).delivery_status(["1"])
    assert report.state == expected and report.recipient_blocked is False


def test_inbound_latest(server):
    server.routes["/receive/latest"] = Reply(200, load("receive_latest.json"))
    [msg] = make(server.url).inbound()
    assert (msg.sender, msg.text, msg.provider_message_id) == ("+989121234567", "11", "1001")
    assert msg.at == datetime.fromtimestamp(1700000100, tz=timezone.utc)
    assert server.requests[0].query == {"count": ["100"]}


def test_check_credit(server):
    server.routes["/credit"] = Reply(200, load("credit.json"))
    assert make(server.url).check().credit == 2534.5
    assert server.requests[0].headers["X-API-KEY"] == KEY


def test_check_bad_key_and_unreachable(server):
    server.routes["/credit"] = Reply(401, error_body(10, "کلید نامعتبر"))
    state = make(server.url).check()
    assert state.ok is False and "10" in state.detail
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(TransientError):
        make(url).check()
