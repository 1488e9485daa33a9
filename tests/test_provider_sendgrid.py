"""SendGridProvider against a real HTTP server on 127.0.0.1 speaking SendGrid's v3 wire format."""
from __future__ import annotations

import base64
import importlib.metadata
import json
import logging
import subprocess
import sys
import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from freezegun import freeze_time

from providers import (
    DeliveryState,
    OutgoingMessage,
    PermanentContentError,
    PermanentRecipientError,
    ProviderBlockedError,
    ProviderConfigError,
    RateLimitedError,
    TransientError,
    create_provider,
)
from providers.base import DeliveryReport
from tests.fakes.httpserver import Reply
from tests.provider_support import answering_server_fixtures

DATA = Path(__file__).parent / "data" / "sendgrid"
KEY = "SG.test-key.0123456789abcdefghijklmnop"


def make(url, **settings):
    base = {"name": "sg", "type": "sendgrid", "api_key": KEY, "from": "Shop <news@shop.example>",
            "base_url": url, "timeout": 0.3}
    return create_provider({**base, **settings})


def mail(**kw):
    fields = {"message_id": "m-1", "channel": "email", "to": "alice@example.org", "subject": "Winter sale",
              "text": "Plain", "html": "<p>Rich</p>",
              "headers": {"List-Unsubscribe": "<https://shop.example/u/t>",
                          "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}}
    return OutgoingMessage(**{**fields, **kw})


server, serve = answering_server_fixtures(make)


def test_send_wire_request_and_result(serve):
    p, server = serve(Reply(202, b"", {"X-Message-Id": "W8Y9Yd8lRfyO2R8Dm5PxMA"}))
    assert p.send(mail()).provider_message_id == "W8Y9Yd8lRfyO2R8Dm5PxMA"
    req, = server.requests
    assert (req.method, req.path) == ("POST", "/v3/mail/send")
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json == {
        "personalizations": [{"to": [{"email": "alice@example.org"}]}],
        "from": {"email": "news@shop.example", "name": "Shop"},
        "subject": "Winter sale",
        "content": [{"type": "text/plain", "value": "Plain"}, {"type": "text/html", "value": "<p>Rich</p>"}],
        "headers": {"List-Unsubscribe": "<https://shop.example/u/t>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        "custom_args": {"followup_id": "m-1"},
    }


def test_unsubscribe_headers_from_metadata_and_no_html(serve):
    p, server = serve(Reply(202, b""))
    result = p.send(mail(html=None, headers={}, metadata={"unsubscribe_url": "https://shop.example/u/x",
                                                          "unsubscribe_mailto": "u@shop.example"}))
    assert result.provider_message_id is None  # X-Message-Id absent: tolerated
    body = server.requests[0].json
    assert body["content"] == [{"type": "text/plain", "value": "Plain"}]
    assert body["headers"] == {"List-Unsubscribe": "<https://shop.example/u/x>, <mailto:u@shop.example>",
                               "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def test_202_with_a_malformed_body_is_still_accepted(serve):
    p, _ = serve(Reply(202, "{not json", {"X-Message-Id": "abc"}))
    assert p.send(mail()).provider_message_id == "abc"


@pytest.mark.parametrize("reply, error", [
    (Reply(400, json.loads((DATA / "error_400.json").read_text())), PermanentContentError),
    (Reply(400, json.loads((DATA / "error_400_recipient.json").read_text())), PermanentRecipientError),
    (Reply(400, "<html>bad request</html>"), PermanentContentError),
    (Reply(401, {"errors": [{"field": None, "message": "authorization required"}]}), ProviderBlockedError),
    (Reply(403, {"errors": [{"field": None, "message": "access forbidden"}]}), ProviderBlockedError),
    (Reply(413, {"errors": [{"field": None, "message": "too large"}]}), PermanentContentError),
    (Reply(500, "{not json"), TransientError),
    (Reply(503, {"errors": [{"message": "unavailable"}]}), TransientError),
])
def test_error_mapping(serve, reply, error):
    p, _ = serve(reply)
    with pytest.raises(error) as info:
        p.send(mail())
    assert type(info.value) is error and info.value.code == str(reply.status)
    assert KEY not in str(info.value)


def test_400_reason_carries_the_error_messages(serve):
    p, _ = serve(Reply(400, json.loads((DATA / "error_400_recipient.json").read_text())))
    with pytest.raises(PermanentRecipientError, match="Does not contain a valid address"):
        p.send(mail())


@pytest.mark.parametrize("headers, low, high", [
    ({"Retry-After": "12"}, 12, 12),
    ({"X-RateLimit-Reset": "+30"}, 25, 30),  # made absolute when the test runs, not when it is collected
    ({}, None, None),
])
def test_429_retry_after(serve, headers, low, high):
    headers = {k: str(int(time.time()) + int(v[1:])) if v.startswith("+") else v for k, v in headers.items()}
    p, _ = serve(Reply(429, {"errors": [{"message": "too many requests"}]}, headers))
    with pytest.raises(RateLimitedError) as info:
        p.send(mail())
    wait = info.value.retry_after
    assert wait is None if low is None else low <= wait <= high


def test_settings():
    with pytest.raises(ProviderConfigError) as info:
        make("http://x", **{"from": "nobody"})
    assert info.value.key == "from"
    assert KEY not in repr(make("http://x"))
    assert make("http://x", base_url=None).base_url == "https://api.sendgrid.com"


# -- event webhook ------------------------------------------------------------------------
def test_parse_event_webhook_fixture():
    parsed = make("http://x").parse_webhook({}, (DATA / "events.json").read_bytes())
    reports = [r for r in parsed if isinstance(r, DeliveryReport)]
    got = [(r.message_id, r.state, r.reason, r.recipient_blocked) for r in reports]
    assert got == [
        ("m-1", DeliveryState.PENDING, "queued", False),
        ("m-1", DeliveryState.PENDING, "deferred", False),
        ("m-1", DeliveryState.DELIVERED, "delivered", False),
        ("m-2", DeliveryState.UNDELIVERED, "bounced", True),
        ("m-3", DeliveryState.UNDELIVERED, "bounced", False),  # type "blocked": not the recipient's fault
        ("m-4", DeliveryState.UNDELIVERED, "bounced", True),
        ("m-1", DeliveryState.UNDELIVERED, "complained", True),
        ("m-5", DeliveryState.UNDELIVERED, "unsubscribed", True),
        ("m-6", DeliveryState.UNDELIVERED, "unsubscribed", True),
    ]  # the "open" event is an engagement (tests/test_engagement_events.py)
    assert [type(r).__name__ for r in parsed].count("EngagementEvent") == 1
    assert reports[0].provider_message_id == "14c5d75ce93"
    assert reports[2].at == datetime(2023, 11, 14, 22, 15, 20, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def keys():
    ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")
    from cryptography.hazmat.primitives import hashes, serialization

    private = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()

    def sign(timestamp: str, body: bytes, key=private) -> dict[str, str]:
        signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}

    return public, sign, ec.generate_private_key(ec.SECP256R1())


SIGNED_AT = "1700000000"  # 2023-11-14 22:13:20 UTC


def test_verify_signed_event_webhook(keys):
    public, sign, other = keys
    p = make("http://x", webhook_key=public)
    body = (DATA / "events.json").read_bytes()
    headers = sign(SIGNED_AT, body)
    with freeze_time("2023-11-14 22:13:20"):
        assert p.verify_webhook("https://hooks.example/sg", headers, body)
        assert p.verify_webhook("https://hooks.example/sg", {k.lower(): v for k, v in headers.items()}, body)
        assert not p.verify_webhook("https://hooks.example/sg", headers, body.replace(b"m-2", b"m-9"))
        assert not p.verify_webhook("https://hooks.example/sg", {**headers, "X-Twilio-Email-Event-Webhook-Timestamp":
                                                                  "1700000001"}, body)
        assert not p.verify_webhook("https://hooks.example/sg", sign(SIGNED_AT, body, key=other), body)
        assert not p.verify_webhook("https://hooks.example/sg", {}, body)
        assert not make("http://x").verify_webhook("https://hooks.example/sg", headers, body)  # no key configured
        assert not make("http://x", webhook_key="bm90IGEga2V5").verify_webhook("https://hooks.example/sg", headers,
                                                                               body)


@pytest.mark.parametrize("now, accepted", [
    ("2023-11-14 22:18:20", True),    # 5 minutes after signing: the edge of the window
    ("2023-11-14 22:18:21", False),   # a second later: a replay
    ("2026-11-14 22:13:20", False),   # three years later
    ("2023-11-14 22:08:20", True),    # the sender's clock 5 minutes ahead of ours
    ("2023-11-14 22:08:19", False),   # further ahead than the window
])
def test_a_signed_event_is_accepted_only_within_five_minutes_of_its_timestamp(keys, now, accepted):
    public, sign, _ = keys
    body = (DATA / "events.json").read_bytes()
    with freeze_time(now):
        assert make("http://x", webhook_key=public).verify_webhook(
            "https://hooks.example/sg", sign(SIGNED_AT, body), body) is accepted


def test_without_cryptography_verify_logs_an_error_naming_the_fix(keys, monkeypatch, caplog):
    public, sign, _ = keys
    body = (DATA / "events.json").read_bytes()
    monkeypatch.setitem(sys.modules, "cryptography.exceptions", None)  # import now raises ImportError
    with freeze_time("2023-11-14 22:13:20"), caplog.at_level(logging.ERROR, logger="followup.providers"):
        assert not make("http://x", webhook_key=public).verify_webhook("https://hooks.example/sg",
                                                                       sign(SIGNED_AT, body), body)
    error, = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "'cryptography'" in error.getMessage() and "pip install cryptography" in error.getMessage()
    assert public not in error.getMessage()


# -- packaging: what verification imports is installed by a plain `pip install .` ---------------
ROOT = Path(__file__).resolve().parent.parent
VERIFY_IN_A_FRESH_INTERPRETER = """
import json, sys
before = set(sys.modules)
import pkgutil, importlib, providers
for module in pkgutil.iter_modules(providers.__path__):
    importlib.import_module("providers." + module.name)
from providers import create_provider
provider = create_provider({"name": "sg", "type": "sendgrid", "api_key": "SG.k", "from": "a@shop.example",
                            "webhook_key": sys.argv[1]})
import time
from unittest import mock
with mock.patch.object(time, "time", return_value=1700000000.0):
    ok = provider.verify_webhook("https://hooks.example/sg", json.loads(sys.argv[2]), sys.argv[3].encode())
print(json.dumps({"ok": ok, "modules": sorted({m.split(".")[0] for m in set(sys.modules) - before})}))
"""


def runtime_distributions() -> set[str]:
    """The distributions a plain ``pip install .`` brings: pyproject's ``dependencies`` and theirs, recursively."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pending = [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    found: set[str] = set()
    while pending:
        req = pending.pop()
        name = canonicalize_name(req.name)
        if name in found:
            continue
        found.add(name)
        for line in importlib.metadata.requires(req.name) or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": extra}) for extra in req.extras or {""}):
                pending.append(sub)
    return found


def test_what_signature_checks_import_is_a_runtime_dependency(keys):
    """Run in a fresh interpreter: every third-party module providers/ import (at import time and while
    verifying a signed SendGrid event) must come from a runtime dependency, not a dev-only one."""
    from packaging.utils import canonicalize_name

    public, sign, _ = keys
    body = (DATA / "events.json").read_bytes()
    done = subprocess.run([sys.executable, "-c", VERIFY_IN_A_FRESH_INTERPRETER, public,
                           json.dumps(sign(SIGNED_AT, body)), body.decode()],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    result = json.loads(done.stdout)
    assert result["ok"] is True
    owners = importlib.metadata.packages_distributions()
    runtime = runtime_distributions()
    third_party = {m: owners[m] for m in result["modules"] if m not in sys.stdlib_module_names and m in owners
                   and set(owners[m]) != {"followup"}}
    assert "cryptography" in third_party  # the check below looks at what it should
    missing = {m: dists for m, dists in third_party.items() if not {canonicalize_name(d) for d in dists} & runtime}
    assert missing == {}, f"imported by providers/ but not in pyproject [project] dependencies: {missing}"
