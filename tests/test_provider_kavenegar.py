"""Kavenegar adapter against a real HTTP server on 127.0.0.1 speaking its wire format."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from providers.base import DeliveryState, OutgoingMessage, mask_secret
from providers.errors import (
    AmbiguousSendError,
    PermanentContentError,
    PermanentRecipientError,
    ProviderBlockedError,
    RateLimitedError,
    TransientError,
)
from providers.kavenegar import KavenegarProvider
from providers.registry import create_provider
from tests.fakes.httpserver import Reply
from tests.provider_support import closed_port_url, load_payload, routed_server_fixtures

KEY = "4A6B7A5A3171523444654B6C6F4F"
MSG = OutgoingMessage(message_id="msg-1", channel="sms", to="+989121234567", text="سلام\nلغو11")


def load(name):
    return load_payload("kavenegar", name)


def error_body(code, text="خطا"):
    return {"return": {"status": code, "message": text}, "entries": None}


_server, server = routed_server_fixtures("suffix")


def make(url, **settings):
    return create_provider({"name": "kav", "type": "kavenegar", "api_key": KEY, "sender": "10004346",
                            "base_url": url, **settings})


def test_registry_builds_it():
    assert isinstance(make("http://127.0.0.1:1"), KavenegarProvider)


def test_send_accepted_and_the_exact_wire_request(server):
    server.routes["sms/send.json"] = Reply(200, load("send_ok.json"))
    result = make(server.url).send(MSG)
    assert (result.provider_message_id, result.cost) == ("8792343", 120.0)
    [req] = server.requests
    assert (req.method, req.path) == ("POST", f"/{KEY}/sms/send.json")
    assert req.form == {"receptor": "09121234567", "message": MSG.text, "sender": "10004346", "localid": "msg-1"}
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize("code, error", [
    (400, PermanentContentError), (401, ProviderBlockedError), (402, TransientError),
    (403, ProviderBlockedError), (407, ProviderBlockedError), (409, TransientError),
    (411, PermanentRecipientError), (412, ProviderBlockedError), (413, PermanentContentError),
    (414, PermanentContentError), (416, ProviderBlockedError), (418, ProviderBlockedError),
    (420, PermanentContentError), (422, PermanentContentError), (424, PermanentContentError),
    (426, ProviderBlockedError), (429, ProviderBlockedError), (451, RateLimitedError),
    (501, ProviderBlockedError), (607, PermanentContentError),
    (499, PermanentContentError),  # unknown: defensive
])
@pytest.mark.parametrize("http_status", ["mirrors", 200])
def test_return_status_maps_on_any_http_status(server, code, error, http_status):
    status = code if http_status == "mirrors" and code < 600 else 200
    server.routes["sms/send.json"] = Reply(status, error_body(code))
    with pytest.raises(error) as info:
        make(server.url).send(MSG)
    assert type(info.value) is error  # exactly that outcome, not a parent
    assert info.value.code == str(code)


def test_429_in_the_body_is_an_ip_block_not_a_rate_limit(server):
    server.routes["sms/send.json"] = Reply(429, error_body(429, "IP محدود"), headers={"Retry-After": "5"})
    with pytest.raises(ProviderBlockedError):
        make(server.url).send(MSG)


def test_451_is_rate_limited_and_honours_retry_after(server):
    server.routes["sms/send.json"] = Reply(451, error_body(451), headers={"Retry-After": "30"})
    with pytest.raises(RateLimitedError) as info:
        make(server.url).send(MSG)
    assert info.value.retry_after == 30.0


def test_unknown_code_on_a_5xx_is_transient(server):
    server.routes["sms/send.json"] = Reply(503, error_body(999, "unknown"))
    with pytest.raises(TransientError) as info:
        make(server.url).send(MSG)
    assert "999" in str(info.value) and not isinstance(info.value, RateLimitedError)


@pytest.mark.parametrize("reply, error", [
    (Reply(200, "<html>ok?</html>"), AmbiguousSendError),
    (Reply(502, "<html>Bad Gateway</html>"), TransientError),
    (Reply(200, {"unexpected": True}), AmbiguousSendError),
    (Reply(200, {"return": {"status": 200}, "entries": []}), AmbiguousSendError),  # accepted but no id
])
def test_malformed_replies(server, reply, error):
    server.routes["sms/send.json"] = reply
    with pytest.raises(error):
        make(server.url).send(MSG)


def test_the_key_never_shows_refused_connection():
    provider = make(closed_port_url())
    with pytest.raises(TransientError) as info:
        provider.send(MSG)
    assert "cannot connect" in str(info.value)
    assert KEY not in str(info.value) and KEY[:2] + "********" + KEY[-2:] in str(info.value)
    assert KEY not in repr(provider)


def test_the_key_never_shows_in_urllib3s_own_log_lines(server, caplog):
    """urllib3 logs each request's path at DEBUG, and Kavenegar's key is in the path: masked there too."""
    server.routes["sms/send.json"] = Reply(200, load("send_ok.json"))
    with caplog.at_level(logging.DEBUG, logger="urllib3"):
        make(server.url).send(MSG)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("/sms/send.json" in line for line in lines)  # the line that would carry the key is there
    assert not any(KEY in line for line in lines), lines
    assert any(mask_secret(KEY) in line for line in lines)


def test_the_key_never_shows_in_4xx_texts(server):
    server.routes["sms/send.json"] = Reply(403, error_body(403, f"key {KEY} is not valid"))
    with pytest.raises(ProviderBlockedError) as info:
        make(server.url).send(MSG)
    assert KEY not in str(info.value) and "key 4A****" in str(info.value)
    server.routes["sms/send.json"] = Reply(404, f"<html>no page /v1/{KEY}/sms</html>")
    with pytest.raises(PermanentContentError) as info:
        make(server.url).send(MSG)
    assert KEY not in str(info.value)


def test_non_iranian_number_is_refused_before_sending(server):
    with pytest.raises(PermanentRecipientError):
        make(server.url).send(OutgoingMessage("m", "sms", "+14155550100", "hi"))
    assert server.requests == []


def test_delivery_status_polls_in_one_batch_and_maps_states(server):
    server.routes["sms/status.json"] = Reply(200, load("status.json"))
    reports = make(server.url).delivery_status(["85463238", "85463239", "85463240", "85463241"])
    assert [(r.provider_message_id, r.state, r.recipient_blocked) for r in reports] == [
        ("85463238", DeliveryState.DELIVERED, False),
        ("85463239", DeliveryState.UNDELIVERED, True),
        ("85463240", DeliveryState.PENDING, False),
        ("85463241", DeliveryState.UNDELIVERED, False),
    ]
    [req] = server.requests
    assert req.path == f"/{KEY}/sms/status.json"
    assert req.form == {"messageid": "85463238,85463239,85463240,85463241"}


def test_status_100_means_no_longer_tracked_not_undelivered(server):
    # Kavenegar answers 100 for any message older than 48 hours and for an unknown id
    server.routes["sms/status.json"] = Reply(200, load("status_unknown.json"))
    [report] = make(server.url).delivery_status(["85463238"])
    assert (report.state, report.recipient_blocked) == (DeliveryState.UNTRACKED, False)
    assert "no longer reports" in report.reason


def test_delivery_status_splits_large_batches(server):
    server.routes["sms/status.json"] = Reply(200, {"return": {"status": 200, "message": ""}, "entries": []})
    make(server.url).delivery_status([str(i) for i in range(150)])
    assert [len(r.form["messageid"].split(",")) for r in server.requests] == [100, 50]


def test_delivery_poll_timeout_is_transient_not_ambiguous(server):
    server.routes["sms/status.json"] = Reply(200, load("status.json"), delay=1.0)
    with pytest.raises(TransientError) as info:
        make(server.url, timeout=0.3).delivery_status(["1"])
    assert not isinstance(info.value, AmbiguousSendError)


def test_lookup_by_our_id(server):
    server.routes["sms/statuslocalmessageid.json"] = Reply(200, load("statuslocalmessageid.json"))
    provider = make(server.url)
    assert provider.supports_lookup
    found = provider.lookup("msg-1")
    assert (found.found, found.provider_message_id) == (True, "8792343")
    assert server.requests[0].form == {"localid": "msg-1"}
    server.routes["sms/statuslocalmessageid.json"] = Reply(200, load("statuslocalmessageid_unknown.json"))
    assert provider.lookup("msg-404").found is False


def test_inbound_reads_unread_messages_of_our_line(server):
    server.routes["sms/receive.json"] = Reply(200, load("receive.json"))
    [msg] = make(server.url).inbound()
    assert (msg.sender, msg.text, msg.provider_message_id) == ("+989121234567", "11", "56321354")
    assert msg.at == datetime.fromtimestamp(1356619709, tz=timezone.utc)
    assert server.requests[0].form == {"linenumber": "10004346", "isread": "0"}


def test_inbound_with_no_messages(server):
    server.routes["sms/receive.json"] = Reply(200, {"return": {"status": 200, "message": ""}, "entries": None})
    assert make(server.url).inbound() == []


def test_check_reports_credit(server):
    server.routes["account/info.json"] = Reply(200, load("account_info.json"))
    state = make(server.url).check()
    assert (state.ok, state.credit) == (True, 15000.0)


def test_check_with_a_bad_key_does_not_raise(server):
    server.routes["account/info.json"] = Reply(403, error_body(403, f"bad key {KEY}"))
    state = make(server.url).check()
    assert state.ok is False and "403" in state.detail and KEY not in state.detail


def test_check_raises_when_the_server_cannot_be_reached():
    with pytest.raises(TransientError):
        make(closed_port_url()).check()
