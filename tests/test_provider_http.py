"""providers.http: the request the HTTP providers prepare, what every HTTP vendor inherits from it (a refused
connection, no answer after the request left, secrets kept out of errors), and providers.iran's number reading."""
from __future__ import annotations

import pytest

from providers.base import OutgoingMessage
from providers.errors import AmbiguousSendError, TransientError
from providers.registry import create_provider
from tests.fakes.httpserver import FakeHttpServer, Reply
from tests.provider_support import closed_port_url


@pytest.mark.parametrize("call", [
    dict(method="POST", path="KEY/sms/send.json",
         data={"receptor": "09121234567", "message": "سلام مریم عزیز، ۲ روز تا پایان تخفیف\nلغو11",
               "sender": "10004346", "localid": "42", "empty": None, "to": ["a@x.ir", "b@x.ir"]}),
    dict(method="POST", path="/api/send", json={"text": "سلام", "numbers": ["+989121234567"]},
         headers={"ApiKey": "k", "Accept": "application/json"}),
    dict(method="get", path="status", params={"ids": "1,2", "q": "a b"}, auth=("api", "s3cret")),
    dict(method="POST", path="v3/x/messages", data={"to": "a@x.ir"}, headers={"content-type": "text/plain"}),
])
def test_http_provider_prepares_the_same_request_as_requests_session_request(call):
    import requests

    from providers.http import HttpCall
    from providers.twilio import TwilioProvider

    provider = TwilioProvider("p", {"account_sid": "AC1", "auth_token": "t", "sender": "+15550000000",
                                    "base_url": "http://127.0.0.1:9/v1"})
    c = HttpCall(**call)
    url = f"http://127.0.0.1:9/v1/{c.path.lstrip('/')}"
    ours = provider._prepare(c, url)
    theirs = provider.session.prepare_request(requests.Request(
        c.method, url, params=c.params, data=c.data, json=c.json, headers=dict(c.headers), auth=c.auth))
    assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
    assert dict(ours.headers) == dict(theirs.headers)


@pytest.mark.parametrize("raw", ["+989121234567", "+989351111111", "09121234567", "+98 912 123 4567", "9121234567",
                                 "+982112345678", "+14165550199", "+98912123456", "+9891212345678"])
def test_national_reads_stored_numbers_without_parsing_and_agrees_with_the_parser(raw):
    from providers.errors import PermanentRecipientError
    from providers.iran import _national, national

    expected = _national(raw)
    if expected is None:
        with pytest.raises(PermanentRecipientError):
            national(raw)
    else:
        assert national(raw) == expected


# -- what every HTTP provider inherits from providers.http, once per vendor -------------------------
SMS = OutgoingMessage(message_id="msg-1", channel="sms", to="+989121234567", text="سلام\nلغو11")
MAIL = OutgoingMessage(message_id="msg-1", channel="email", to="alice@example.org", subject="Winter sale",
                       text="Plain", html="<p>Rich</p>")
#: vendor → (its settings without base_url, the message it sends, the secret that must never show)
VENDORS = {
    "kavenegar": ({"api_key": "4A6B7A5A3171523444654B6C6F4F", "sender": "10004346"}, SMS,
                  "4A6B7A5A3171523444654B6C6F4F"),
    "smsir": ({"api_key": "smsir-Xk29vL0pQw7TzR8m", "sender": "30007732000000"}, SMS, "smsir-Xk29vL0pQw7TzR8m"),
    "ghasedak": ({"api_key": "gh-2f8a9c1b7e6d4a30b5c9", "sender": "30005006"}, SMS, "gh-2f8a9c1b7e6d4a30b5c9"),
    "ippanel": ({"api_key": "OWZkNmJhZTQtN2U4Ni00MGQ0LWE2", "sender": "3000505"}, SMS, "OWZkNmJhZTQtN2U4Ni00MGQ0LWE2"),
    "melipayamak": ({"api_key": "b7f3c1d2e4a54f6f9e8d7c6b5a493827", "sender": "50004001"}, SMS,
                    "b7f3c1d2e4a54f6f9e8d7c6b5a493827"),
    "twilio": ({"account_sid": "AC" + "0" * 32, "auth_token": "tw-auth-token-0123456789abcdef",
                "sender": "+14155552671"}, SMS, "tw-auth-token-0123456789abcdef"),
    "mailgun": ({"api_key": "key-0123456789abcdef0123456789abcdef", "domain": "mg.shop.example",
                 "from": "Shop <news@mg.shop.example>"}, MAIL, "key-0123456789abcdef0123456789abcdef"),
    "sendgrid": ({"api_key": "SG.test-key.0123456789abcdefghijklmnop", "from": "Shop <news@shop.example>"}, MAIL,
                 "SG.test-key.0123456789abcdefghijklmnop"),
}


@pytest.fixture(scope="module")
def panel():
    """One fake panel for the module (stopping a server takes 0.5 s); each test sets its answer."""
    with FakeHttpServer(lambda req: Reply(404)) as server:
        yield server


def vendor(name: str, url: str, **settings):
    config, message, secret = VENDORS[name]
    return create_provider({"name": name, "type": name, **config, "base_url": url, **settings}), message, secret


@pytest.mark.parametrize("name", VENDORS)
def test_a_refused_connection_is_transient_and_shows_no_secret(name):
    provider, message, secret = vendor(name, closed_port_url())
    with pytest.raises(TransientError) as info:
        provider.send(message)
    assert type(info.value) is TransientError  # nothing left: it may be sent again
    assert secret not in str(info.value) and secret not in repr(provider)


@pytest.mark.parametrize("name", VENDORS)
@pytest.mark.parametrize("reply, timeout", [
    (Reply(200, "", delay=1.0), 0.2),  # no answer within the timeout, after the request was sent
    (Reply(drop=True), 10),             # the connection dropped after the request was read
])
def test_no_answer_after_the_request_left_is_ambiguous_and_shows_no_secret(panel, name, reply, timeout):
    panel.handler, panel.requests[:] = (lambda req: reply), []
    provider, message, secret = vendor(name, panel.url, timeout=timeout)
    with pytest.raises(AmbiguousSendError) as info:
        provider.send(message)
    assert len(panel.requests) == 1  # never sent again blindly
    assert secret not in str(info.value)
