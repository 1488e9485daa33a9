"""Hostile input at the service's doors, and secrets that must never reach a page.

* Webhook bodies fuzzed with hypothesis: an unsigned body is 400 and changes nothing; a validly
  signed body of nonsense is answered 200 or 500 (so the provider retries) — never an unhandled crash.
* A full run with real secrets configured: no page, API answer, metric or error body shows one.
"""
from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from engine.models import DeliveryLog
from engine.service import create_app
from engine.service.options import ServiceOptions
from tests.faults import ANYTIME
from tests.fakes.httpserver import FakeHttpServer, Reply
from tests.service_support import PASSWORD, SECRET, SERVICE_SETTINGS, api_client, auth
from tests.test_service_webhooks import MAILGUN_KEY, TWILIO_TOKEN, webhook_world

from .conftest import simple_sequence

KAVE_KEY = "KAVE-SECRET-4A6B7A5A3171523444654B6C6F4F"
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)


@pytest.fixture
def hooks_world(make_world):
    return webhook_world(make_world)[0]


def log_rows(world) -> int:
    with world.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(DeliveryLog.__table__)).scalar_one()


def strict_client(world):
    """A client that re-raises any exception the app did not turn into a response itself."""
    from fastapi.testclient import TestClient

    options = ServiceOptions(dashboard_password=PASSWORD, public_url=None)
    return TestClient(create_app(world.config, engine=world.engine, options=options), raise_server_exceptions=True)


def test_fuzzed_webhook_bodies_never_crash_and_unsigned_ones_change_nothing(hooks_world):
    client = strict_client(hooks_world)
    before = log_rows(hooks_world)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(provider=st.sampled_from(["tw", "sg", "mg"]), body=st.binary(max_size=300) | json_values.map(
        lambda v: json.dumps(v).encode()), ctype=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "text/plain", ""]))
    def unsigned(provider, body, ctype):
        response = client.post(f"/webhooks/{provider}", content=body, headers={"Content-Type": ctype})
        assert response.status_code == 400, (provider, body, response.text)
        assert "Traceback" not in response.text

    unsigned()
    assert log_rows(hooks_world) == before


def test_validly_signed_nonsense_is_200_or_500_never_a_crash(hooks_world):
    client = strict_client(hooks_world)
    before = log_rows(hooks_world)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(event_data=json_values, token=st.text(alphabet="abcdef0123456789", min_size=1, max_size=20))
    def signed(event_data, token):
        timestamp = "1700000000"
        signature = hmac.new(MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
        body = json.dumps({"signature": {"timestamp": timestamp, "token": token, "signature": signature},
                           "event-data": event_data}).encode()
        response = client.post("/webhooks/mg", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code in (200, 500), response.text

    signed()
    assert log_rows(hooks_world) == before  # nonsense names no message of ours: nothing changed


def test_no_secret_reaches_a_page_an_answer_or_a_metric(make_world, monkeypatch):
    monkeypatch.setenv("KAVENEGAR_API_KEY", KAVE_KEY)

    def kavenegar(req):  # out of credit, and careless enough to echo the URL with the key in it
        return Reply(418, {"return": {"status": 418, "message": f"credit ran out for {req.path}"}, "entries": None})

    with FakeHttpServer(kavenegar) as server:
        # open all day: the tick runs on the wall clock, which may be night in Tehran or a Friday
        world = make_world([simple_sequence("drip")], settings={**SERVICE_SETTINGS, "send_window": ANYTIME, "providers": {
            "sms": [{"name": "kave", "type": "kavenegar", "api_key": "${KAVENEGAR_API_KEY}", "sender": "10004346",
                     "base_url": server.url + "/v1"},
                    {"name": "backup", "type": "memory"}],
            "email": [{"name": "mail", "type": "memory"}]}})
        (cid,) = world.add_contacts({"phone": "09121234567", "email": "sara@example.com", "first_name": "سارا"})
        world.enroll("drip", cid)
        world.tick()
    assert [m["provider"] for m in world.messages(status="sent")] == ["backup"]  # failed over: the run was real
    client, key = api_client(world)
    pages = []
    login = client.post("/login", data={"secret": PASSWORD, "next": "/dashboard"}, follow_redirects=False)
    assert login.status_code == 303
    for path in ("/dashboard", "/dashboard/log", "/dashboard/log?event=provider_paused", "/dashboard/sequences",
                 "/dashboard/contacts/09121234567", "/login"):
        response = client.get(path)
        assert response.status_code == 200, path
        pages.append((path, response.text))
    for path in ("/api/v1/contacts/09121234567/timeline", "/api/v1/sequences/drip/stats", "/metrics",
                 "/api/v1/openapi.json", "/healthz"):
        response = client.get(path, headers=auth(key))
        assert response.status_code == 200, path
        pages.append((path, response.text))
    pages.append(("bad login", client.post("/login", data={"secret": "nope"}).text))
    pages.append(("bad webhook", client.post("/webhooks/kave", content=b"{").text))
    assert any("provider_paused" in text or "paused" in text for _, text in pages)
    for secret in (KAVE_KEY, SECRET, PASSWORD, TWILIO_TOKEN, key):
        for path, text in pages:
            assert secret not in text, f"{secret[:6]}… shows on {path}"
    log_page = dict(pages)["/dashboard/log"]
    assert "+989121234567" not in log_page  # the delivery log masks numbers in its reasons
