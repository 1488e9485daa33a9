"""IPPanel Edge adapter against a real HTTP server on 127.0.0.1 speaking its wire format."""
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
    ProviderConfigError,
    RateLimitedError,
    TransientError,
)
from providers.ippanel import IPPanelProvider
from providers.registry import create_provider
from tests.fakes.httpserver import FakeHttpServer, Reply
from tests.provider_support import load_payload, routed_server_fixtures

KEY = "OWZkNmJhZTQtN2U4Ni00MGQ0LWE2"
MSG = OutgoingMessage(message_id="msg-1", channel="sms", to="+989121234567", text="سلام\nلغو11")


def load(name):
    return load_payload("ippanel", name)


_server, server = routed_server_fixtures("exact")


def make(url, **settings):
    return create_provider({"name": "ipp", "type": "ippanel", "api_key": KEY, "sender": "3000505",
                            "base_url": url, **settings})


@pytest.mark.parametrize("scheme, header", [(None, KEY), ("raw", KEY), ("bearer", f"Bearer {KEY}")])
def test_send_accepted_and_the_exact_wire_request(server, scheme, header):
    server.routes["/api/send"] = Reply(200, load("send_ok.json"))
    provider = make(server.url, **({"auth_scheme": scheme} if scheme else {}))
    assert isinstance(provider, IPPanelProvider) and provider.supports_lookup is False
    assert provider.send(MSG).provider_message_id == "1123544244"
    [req] = server.requests
    assert (req.method, req.headers["Authorization"]) == ("POST", header)
    assert req.json == {"sending_type": "webservice", "from_number": "+983000505", "message": MSG.text,
                        "params": {"recipients": ["+989121234567"]}}


def test_unknown_auth_scheme_is_a_config_error():
    with pytest.raises(ProviderConfigError):
        make("http://127.0.0.1:1", auth_scheme="basic")


@pytest.mark.parametrize("sender, expected", [("+983000505", "+983000505"), ("983000505", "+983000505"),
                                              ("03000505", "+983000505")])
def test_from_number_is_e164(sender, expected):
    assert make("http://127.0.0.1:1", sender=sender).from_number == expected


@pytest.mark.parametrize("reply, error", [
    (Reply(401, load("error_401.json")), ProviderBlockedError),
    (Reply(200, load("error_401.json")), ProviderBlockedError),  # HTTP 200, error body
    (Reply(422, load("error_422.json")), PermanentContentError),
    (Reply(429, {"data": None, "meta": {"status": False, "message": "slow", "message_code": "429-1"}}),
     RateLimitedError),
    # a server error on a send without an idempotency key: it may have gone, so it is never resent
    (Reply(500, {"data": None, "meta": {"status": False, "message": "oops", "message_code": "500-1"}}),
     AmbiguousSendError),
    (Reply(200, {"data": None, "meta": {"status": False, "message": "?", "message_code": "400-99"}}),
     PermanentContentError),  # unknown code: defensive
    (Reply(502, "<html>Bad Gateway</html>"), AmbiguousSendError),
    (Reply(200, "<html>ok?</html>"), AmbiguousSendError),
    (Reply(200, {"data": {"message_outbox_ids": []}, "meta": {"status": True}}), AmbiguousSendError),
])
def test_error_and_malformed_replies(server, reply, error):
    server.routes["/api/send"] = reply
    with pytest.raises(error) as info:
        make(server.url).send(MSG)
    assert type(info.value) is error


@pytest.mark.parametrize("http_status", [200, 400, 402, 422])
def test_no_credit_pauses_the_provider_and_never_drops_the_message(server, http_status):
    server.routes["/api/send"] = Reply(http_status, load("error_credit.json"))
    with pytest.raises(ProviderBlockedError) as info:
        make(server.url).send(MSG)
    assert type(info.value) is ProviderBlockedError and info.value.code == "10006"


def test_invalid_number_never_leaves(server):
    with pytest.raises(PermanentRecipientError):
        make(server.url).send(OutgoingMessage("m", "sms", "+98211234567", "landline"))
    assert server.requests == []


def test_the_key_never_shows(server):
    body = load("error_401.json")
    body["meta"]["message"] = f"bad key {KEY}"
    server.routes["/api/send"] = Reply(401, body)
    provider = make(server.url)
    with pytest.raises(ProviderBlockedError) as info:
        provider.send(MSG)
    assert KEY not in str(info.value) and KEY not in repr(provider)


@pytest.mark.parametrize("status, state, blocked", [
    ("0", DeliveryState.PENDING, False), ("1", DeliveryState.PENDING, False), ("2", DeliveryState.DELIVERED, False),
    ("3", DeliveryState.UNDELIVERED, False), (4, DeliveryState.UNDELIVERED, True),
])
def test_delivery_status(server, status, state, blocked):
    body = load("recipients.json")
    body["data"][0]["message_status"] = status
    server.routes["/api/report/recipients"] = Reply(200, body)
    server.routes["/api/report/by_bulk"] = Reply(200, load("by_bulk.json"))  # a pending recipient: the bulk's state
    [report] = make(server.url).delivery_status(["1123544244"])
    assert (report.provider_message_id, report.state, report.recipient_blocked) == ("1123544244", state, blocked)
    req = server.requests[0]
    assert req.method == "GET" and req.query["bulk_id"] == ["1123544244"]
    assert req.headers["Authorization"] == KEY


def test_delivery_status_before_the_bulk_is_final(server):
    server.routes["/api/report/recipients"] = Reply(200, {"data": [], "meta": {"status": True}})
    server.routes["/api/report/by_bulk"] = Reply(200, load("by_bulk.json"))
    [report] = make(server.url).delivery_status(["9"])
    assert report.state == DeliveryState.PENDING and report.error is None


def test_one_bulk_that_fails_does_not_sink_the_others():
    def panel(req):
        if req.query["bulk_id"] == ["500"]:
            return Reply(500, "<html>Internal Server Error</html>")
        return Reply(200, load("recipients.json"))

    with FakeHttpServer(panel) as srv:
        busy, fine = make(srv.url).delivery_status(["500", "1123544244"])
    assert busy.state == DeliveryState.PENDING and isinstance(busy.error, TransientError)
    assert fine.error is None and fine.provider_message_id == "1123544244"


def test_check(server):
    server.routes["/api/payment/credit/mine"] = Reply(200, load("credit.json"))
    assert make(server.url).check().credit == pytest.approx(6084722932.705052)
    server.routes["/api/payment/credit/mine"] = Reply(401, load("error_401.json"))
    state = make(server.url).check()
    assert state.ok is False and "400-1" in state.detail
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(TransientError):
        make(url).check()


def test_inbound_reads_the_newest_page_then_only_what_came_after(server):
    server.routes["/api/report/messages-inbox"] = Reply(200, load("messages_inbox.json"))
    provider = make(server.url)
    first, second = provider.inbound()
    assert (first.sender, first.text, first.provider_message_id) == ("+989121234567", "لغو", "123")
    assert first.at == datetime.fromtimestamp(1747808125, tz=timezone.utc)
    assert second.provider_message_id == "122"
    assert server.requests[0].method == "POST" and server.requests[0].headers["Authorization"] == KEY
    assert server.requests[0].json == {"page": 1, "per_page": 100}
    provider.inbound()
    assert server.requests[1].json == {"page": 1, "per_page": 100, "filters": {"from_id": 123}}


def test_inbound_after_a_cursor_reads_every_page(server):
    provider = make(server.url)
    server.routes["/api/report/messages-inbox"] = Reply(200, load("messages_inbox.json"))
    provider.inbound()
    page = load("messages_inbox.json")
    page["meta"]["last_page"] = 2
    server.routes["/api/report/messages-inbox"] = Reply(200, page)
    provider.inbound()
    assert [r.json["page"] for r in server.requests[1:]] == [1, 2]


def test_inbound_with_a_bad_key(server):
    server.routes["/api/report/messages-inbox"] = Reply(401, load("error_401.json"))
    with pytest.raises(ProviderBlockedError):
        make(server.url).inbound()
