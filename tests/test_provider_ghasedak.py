"""Ghasedak gateway adapter against a real HTTP server on 127.0.0.1 speaking its wire format."""
from __future__ import annotations

import socket
from datetime import datetime, timezone

import pytest

from providers.base import DeliveryState, OutgoingMessage
from providers.errors import (
    AmbiguousSendError,
    PermanentContentError,
    ProviderBlockedError,
    RateLimitedError,
    TransientError,
)
from providers.ghasedak import GhasedakProvider
from providers.registry import create_provider
from tests.fakes.httpserver import Reply
from tests.provider_support import load_payload, routed_server_fixtures

KEY = "gh-2f8a9c1b7e6d4a30b5c9"
MSG = OutgoingMessage(message_id="msg-1", channel="sms", to="+989121234567", text="سلام\nلغو11")


def load(name):
    return load_payload("ghasedak", name)


def error_body(code, text="error"):
    return {"isSuccess": False, "statusCode": code, "message": text, "data": None}


_server, server = routed_server_fixtures("exact")


def make(url, **settings):
    return create_provider({"name": "gh", "type": "ghasedak", "api_key": KEY, "sender": "30005006",
                            "base_url": url, **settings})


def test_send_accepted_and_the_exact_wire_request(server):
    server.routes["/SendSingleSMS"] = Reply(200, load("send_ok.json"))
    provider = make(server.url)
    assert isinstance(provider, GhasedakProvider)
    result = provider.send(MSG)
    assert (result.provider_message_id, result.cost) == ("4248", 3537.0)
    [req] = server.requests
    assert (req.method, req.headers["ApiKey"]) == ("POST", KEY)
    assert req.json == {"message": MSG.text, "receptor": "09121234567", "lineNumber": "30005006",
                        "clientReferenceId": "msg-1"}


@pytest.mark.parametrize("code, error", [
    (400, PermanentContentError), (401, ProviderBlockedError), (402, TransientError),
    (406, ProviderBlockedError), (412, ProviderBlockedError), (413, PermanentContentError),
    (416, ProviderBlockedError), (418, ProviderBlockedError), (419, ProviderBlockedError),
    (420, PermanentContentError), (422, PermanentContentError), (426, ProviderBlockedError),
    (428, PermanentContentError), (429, PermanentContentError),  # "missed params", not a rate limit
    (500, TransientError), (437, PermanentContentError),  # unknown: defensive
])
@pytest.mark.parametrize("http_status", ["mirrors", 200])
def test_status_code_maps_on_any_http_status(server, code, error, http_status):
    server.routes["/SendSingleSMS"] = Reply(code if http_status == "mirrors" else 200, error_body(code))
    with pytest.raises(error) as info:
        make(server.url).send(MSG)
    assert type(info.value) is error and info.value.code == str(code)


def test_duplicate_request_is_accepted_and_found_by_our_id(server):
    server.routes["/SendSingleSMS"] = Reply(451, error_body(451, "DuplicateRequest"))
    server.routes["/CheckSmsStatus"] = Reply(200, load("check_status.json"))
    result = make(server.url).send(MSG)
    assert result.provider_message_id == "4248"
    lookup = server.requests[1]
    assert lookup.method == "GET" and lookup.query == {"Ids": ["msg-1"], "Type": ["2"]}


@pytest.mark.parametrize("lookup", [Reply(200, load("check_status_empty.json")), Reply(503, "<html>busy</html>")],
                         ids=["not-found", "lookup-fails"])
def test_duplicate_request_that_cannot_be_found_is_unknown_not_sent(server, lookup):
    server.routes["/SendSingleSMS"] = Reply(200, error_body(451, "DuplicateRequest"))
    server.routes["/CheckSmsStatus"] = lookup
    with pytest.raises(AmbiguousSendError) as info:
        make(server.url).send(MSG)
    assert info.value.code == "451" and "fate unknown" in str(info.value)
    assert [r.path for r in server.requests] == ["/SendSingleSMS", "/CheckSmsStatus"]


@pytest.mark.parametrize("reply, error", [
    (Reply(503, "<html>Service Unavailable</html>"), TransientError),
    (Reply(429, "", headers={"Retry-After": "4"}), RateLimitedError),
    (Reply(200, "<html>ok?</html>"), AmbiguousSendError),
    (Reply(200, {"something": "else"}), AmbiguousSendError),
    (Reply(200, {"isSuccess": True, "statusCode": 200, "data": {}}), AmbiguousSendError),
])
def test_http_failures_and_malformed_replies(server, reply, error):
    server.routes["/SendSingleSMS"] = reply
    with pytest.raises(error) as info:
        make(server.url).send(MSG)
    assert type(info.value) is error


def test_the_key_never_shows(server):
    server.routes["/SendSingleSMS"] = Reply(401, error_body(401, f"ApiKey {KEY} is not valid"))
    provider = make(server.url)
    with pytest.raises(ProviderBlockedError) as info:
        provider.send(MSG)
    assert KEY not in str(info.value) and KEY not in repr(provider)


def test_lookup_by_our_id(server):
    server.routes["/CheckSmsStatus"] = Reply(200, load("check_status.json"))
    provider = make(server.url)
    assert provider.supports_lookup
    assert provider.lookup("msg-2").provider_message_id == "4249"
    server.routes["/CheckSmsStatus"] = Reply(200, load("check_status_empty.json"))
    assert provider.lookup("msg-9").found is False


def test_delivery_status(server):
    server.routes["/CheckSmsStatus"] = Reply(200, load("check_status.json"))
    reports = make(server.url).delivery_status(["4248", "4249", "4250"])
    assert [(r.provider_message_id, r.message_id, r.state, r.recipient_blocked) for r in reports] == [
        ("4248", "msg-1", DeliveryState.DELIVERED, False),
        ("4249", "msg-2", DeliveryState.UNDELIVERED, True),
        ("4250", "msg-3", DeliveryState.PENDING, False),
    ]
    assert server.requests[0].query == {"Ids": ["4248,4249,4250"], "Type": ["1"]}


P, D, U = DeliveryState.PENDING, DeliveryState.DELIVERED, DeliveryState.UNDELIVERED


# the SendStatus enum of Ghasedak's Python SDK (ghasedak_sms/enums/send_status.py, ghasedak-sms 1.0.3)
@pytest.mark.parametrize("status, state, blocked", [
    (0, P, False),  # TO_BE_CONFIRMED
    (1, U, False),  # REJECTED
    (2, P, False),  # TO_BE_SENT
    (3, P, False),  # SENDING
    (4, P, False),  # SENT
    (5, U, False),  # DEBUG_MODE: never reaches a handset
    (6, U, False),  # INTERNAL_FAILED
    (7, U, False),  # CANCELED
    (8, U, True),   # INTERNAL_BLACKLISTED
    (9, P, False), (10, P, False), (11, P, False),  # PAUSED, SENT_TO_PROVIDER, DELIVERED_TO_PROVIDER
    (12, U, True),  # BLACKLISTED
    (13, U, False), (14, D, False), (15, U, False), (16, U, False), (17, P, False),
    (99, P, False),  # unknown: keep polling
])
def test_delivery_states_of_the_sdk_enum(server, status, state, blocked):
    server.routes["/CheckSmsStatus"] = Reply(200, {"isSuccess": True, "statusCode": 200,
                                                   "data": [{"messageId": "1", "status": status}]})
    [report] = make(server.url).delivery_status(["1"])
    assert (report.state, report.recipient_blocked) == (state, blocked)


def test_delivery_status_batches_of_100(server):
    server.routes["/CheckSmsStatus"] = Reply(200, load("check_status_empty.json"))
    make(server.url).delivery_status([str(i) for i in range(101)])
    assert [len(r.query["Ids"][0].split(",")) for r in server.requests] == [100, 1]


def test_check(server):
    server.routes["/GetAccountInformation"] = Reply(200, load("account.json"))
    assert make(server.url).check().credit == 120000.0
    server.routes["/GetAccountInformation"] = Reply(401, error_body(401, "Unauthorized"))
    assert make(server.url).check().ok is False
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(TransientError):
        make(url).check()


def test_inbound_reads_unread_messages_of_our_line(server):
    server.routes["/GetReceivedSmses"] = Reply(200, load("received_smses.json"))
    first, second = make(server.url).inbound()
    assert (first.sender, first.text, first.provider_message_id) == ("+989121234567", "۱۱", "12345")
    assert first.at == datetime(2024, 7, 2, 14, 0, 34, 975000, tzinfo=timezone.utc)
    assert second.provider_message_id == "12346"
    (request,) = server.requests
    assert request.method == "GET" and request.headers["ApiKey"] == KEY
    assert request.query == {"lineNumber": ["30005006"], "isRead": ["false"]}


def test_inbound_empty_and_failing(server):
    server.routes["/GetReceivedSmses"] = Reply(200, {"isSuccess": True, "statusCode": 200, "message": "",
                                                     "data": {"items": []}})
    assert make(server.url).inbound() == []
    server.routes["/GetReceivedSmses"] = Reply(401, error_body(401, "invalid api key"))
    with pytest.raises(ProviderBlockedError):
        make(server.url).inbound()
