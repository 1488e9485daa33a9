"""providers.http: the request the HTTP providers prepare, and providers.iran's number reading."""
from __future__ import annotations

import pytest


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
