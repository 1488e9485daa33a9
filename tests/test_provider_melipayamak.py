"""Melipayamak console adapter against a real HTTP server on 127.0.0.1 speaking its wire format."""
from __future__ import annotations

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
from providers.melipayamak import MelipayamakProvider
from providers.registry import create_provider
from tests.fakes.httpserver import Reply
from tests.provider_support import closed_port_url, load_payload, routed_server_fixtures

TOKEN = "b7f3c1d2e4a54f6f9e8d7c6b5a493827"
MSG = OutgoingMessage(message_id="msg-1", channel="sms", to="+989121234567", text="سلام\nلغو11")


def load(name):
    return load_payload("melipayamak", name)


_server, server = routed_server_fixtures("prefix")


def make(url, **settings):
    return create_provider({"name": "meli", "type": "melipayamak", "api_key": TOKEN, "sender": "50004001",
                            "base_url": url, **settings})


def test_send_accepted_and_the_exact_wire_request(server):
    server.routes["/send/simple/"] = Reply(200, load("send_ok.json"))
    provider = make(server.url)
    assert isinstance(provider, MelipayamakProvider) and provider.supports_lookup is False
    assert provider.send(MSG).provider_message_id == "4353453453451"
    [req] = server.requests
    assert (req.method, req.path) == ("POST", f"/send/simple/{TOKEN}")
    assert req.json == {"from": "50004001", "to": "09121234567", "text": MSG.text}


@pytest.mark.parametrize("rec_id, error", [
    (0, ProviderBlockedError), (2, ProviderBlockedError), (3, RateLimitedError), (5, ProviderBlockedError),
    (6, AmbiguousSendError),  # "system error" on a send without an idempotency key: it may have gone
    (7, PermanentContentError), (10, ProviderBlockedError), (11, PermanentContentError),
    (14, PermanentContentError), (15, PermanentContentError), (35, RecipientBlacklistedError),
    (None, PermanentContentError),  # no recId, only a free-text status: unknown, defensive
])
def test_small_rec_id_or_missing_rec_id_on_http_200_is_an_error(server, rec_id, error):
    server.routes["/send/simple/"] = Reply(200, {"recId": rec_id, "status": "خطا"})
    with pytest.raises(error) as info:
        make(server.url).send(MSG)
    assert type(info.value) is error


@pytest.mark.parametrize("reply, error", [
    (Reply(401, {"status": "توکن نامعتبر"}), ProviderBlockedError),
    (Reply(400, {"status": "bad request"}), PermanentContentError),
    (Reply(429, {"status": "slow down"}, headers={"Retry-After": "7"}), RateLimitedError),
    (Reply(503, "<html>down</html>"), AmbiguousSendError),  # may have gone: never resent
    (Reply(200, "<html>ok?</html>"), AmbiguousSendError),
    (Reply(200, {}), AmbiguousSendError),
])
def test_http_failures_and_malformed_replies(server, reply, error):
    server.routes["/send/simple/"] = reply
    with pytest.raises(error) as info:
        make(server.url).send(MSG)
    assert type(info.value) is error


def test_the_token_in_the_path_never_shows():
    provider = make(closed_port_url())
    with pytest.raises(TransientError) as info:
        provider.send(MSG)
    assert TOKEN not in str(info.value) and "b7********27" in str(info.value)
    assert TOKEN not in repr(provider)
    with pytest.raises(TransientError):
        provider.check()  # unreachable: raises, never "ok=False"


def test_the_token_never_shows_in_a_4xx_text(server):
    server.routes["/send/simple/"] = Reply(403, f"<html>forbidden: /api/send/simple/{TOKEN}</html>")
    with pytest.raises(ProviderBlockedError) as info:
        make(server.url).send(MSG)
    assert TOKEN not in str(info.value)


def test_delivery_status_is_positional(server):
    server.routes["/receive/status/"] = Reply(200, load("status.json"))
    reports = make(server.url).delivery_status(["111111", "222222", "333333"])
    assert [(r.provider_message_id, r.state, r.recipient_blocked) for r in reports] == [
        ("111111", DeliveryState.DELIVERED, False),
        ("222222", DeliveryState.UNDELIVERED, False),
        ("333333", DeliveryState.UNDELIVERED, True),
    ]
    [req] = server.requests
    assert (req.method, req.path, req.json) == ("POST", f"/receive/status/{TOKEN}",
                                                {"recIds": ["111111", "222222", "333333"]})


def test_delivery_status_short_answer_stays_pending(server):
    server.routes["/receive/status/"] = Reply(200, {"results": [], "resultsAsCode": [8], "status": ""})
    first, second = make(server.url).delivery_status(["1", "2"])
    assert (first.state, second.state) == (DeliveryState.PENDING, DeliveryState.PENDING)
    assert "unknown" in second.reason


def test_check_credit(server):
    server.routes["/receive/credit/"] = Reply(200, load("credit.json"))
    state = make(server.url).check()
    assert (state.ok, state.credit) == (True, 1234.5)
    assert (server.requests[0].method, server.requests[0].path) == ("GET", f"/receive/credit/{TOKEN}")


@pytest.mark.parametrize("reply", [Reply(401, {"status": "توکن نامعتبر"}),
                                   Reply(200, {"amount": None, "status": f"token {TOKEN} invalid"})])
def test_check_bad_token(server, reply):
    server.routes["/receive/credit/"] = reply
    state = make(server.url).check()
    assert state.ok is False and TOKEN not in state.detail


def test_inbound_reads_the_messages_of_our_line(server):
    server.routes["/receive/messages/"] = Reply(200, load("receive_messages.json"))
    first, second = make(server.url).inbound()
    assert (first.sender, first.text) == ("+989121234567", "STOP")
    assert first.at == datetime(2024, 7, 2, 14, 0, 34, 975000, tzinfo=timezone.utc)  # Tehran is UTC+3:30
    (request,) = server.requests
    assert request.method == "POST" and request.path == f"/receive/messages/{TOKEN}"
    assert request.json == {"type": "in", "number": "50004001", "index": 0, "count": 100}
    # no id in the reply: the same message read again keeps the same id, a different one gets another
    again, _ = make(server.url).inbound()
    assert again.provider_message_id == first.provider_message_id != second.provider_message_id


def test_inbound_uses_the_panels_id_where_given(server):
    body = load("receive_messages.json")
    body["messages"][0]["msgID"] = 98765
    server.routes["/receive/messages/"] = Reply(200, body)
    assert make(server.url).inbound()[0].provider_message_id == "98765"


def test_inbound_error_text(server):
    server.routes["/receive/messages/"] = Reply(200, {"messages": None, "status": "کاربر نامعتبر"})
    with pytest.raises(TransientError, match="کاربر نامعتبر"):
        make(server.url).inbound()
    server.routes["/receive/messages/"] = Reply(200, {"messages": None, "status": ""})
    assert make(server.url).inbound() == []
