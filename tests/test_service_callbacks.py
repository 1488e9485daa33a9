"""Unsigned panel callbacks at ``POST /webhooks/{provider}/{secret}``: Kavenegar's status and receive URLs.

The secret in the URL is the only guard: a wrong one is a 404 like an unknown provider, the secret never
reaches a log, the body is capped at 64 KB, and an event pushed and then polled counts once.
"""
from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from engine.models import Message
from engine.poller import Poller
from providers.registry import create_provider
from tests.conftest import simple_sequence
from tests.fakes.httpserver import FakeHttpServer, Reply
from tests.provider_support import DATA, load_payload
from tests.service_support import SERVICE_SETTINGS, api_client

SECRET = "cb-7Qd2mV9xK4pL8sT1wZ6yB3nR"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
KAVE = {"name": "kave", "type": "kavenegar", "api_key": "kave-api-key-0123456789", "sender": "10004346",
        "callback_secret": SECRET}


def form(name: str) -> bytes:
    return (DATA / "kavenegar" / name).read_bytes()


@pytest.fixture
def world(make_world):
    world = make_world([simple_sequence("drip")], settings={
        **SERVICE_SETTINGS, "providers": {"sms": [KAVE, {"name": "mem", "type": "memory"}],
                                          "email": [{"name": "mem-email", "type": "memory"}]}})
    (world.contact_id,) = world.add_contacts({"phone": "09121234567", "email": "sara@example.com"})
    world.enroll("drip", world.contact_id)
    return world


def sent_by_kave(world, pid: str) -> int:
    table = Message.__table__
    with world.engine.begin() as conn:
        mid = conn.execute(sa.select(table.c.id).where(table.c.touch == "t0")).scalar_one()
        conn.execute(sa.update(table).where(table.c.id == mid).values(status="sent", provider="kave",
                                                                      provider_message_id=pid))
    return mid


def server_log(caplog) -> str:
    """What the service logged (the test client's own httpx lines show the URL it called)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("followup"))


def events(world) -> list[str]:
    with world.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT type FROM contact_events").scalars().all()


def test_a_status_callback_delivers_once(world):
    client, _ = api_client(world)
    mid = sent_by_kave(world, "8792343")
    first = client.post(f"/webhooks/kave/{SECRET}", content=form("callback_status.form"), headers=FORM)
    assert first.status_code == 200 and first.json() == {"result": "1 applied"}
    assert world.messages(id=mid)[0]["status"] == "delivered"
    again = client.post(f"/webhooks/kave/{SECRET}", content=form("callback_status.form"), headers=FORM)
    assert again.json() == {"result": "0 applied"}
    assert len(world.log(message_id=mid, event="delivered")) == 1


def test_a_status_callback_as_a_query_string(world):
    client, _ = api_client(world)
    mid = sent_by_kave(world, "8792343")
    assert client.post(f"/webhooks/kave/{SECRET}?messageid=8792343&status=11").status_code == 200
    assert world.messages(id=mid)[0]["status"] == "undelivered"


def test_a_pushed_opt_out_unsubscribes_and_the_poll_of_it_counts_once(world):
    client, _ = api_client(world)
    response = client.post(f"/webhooks/kave/{SECRET}", content=form("callback_receive.form"), headers=FORM)
    assert response.status_code == 200 and events(world) == ["unsubscribed"]
    # polling stays as the fallback: the same message read by sms/receive changes nothing
    with FakeHttpServer(lambda req: Reply(200, load_payload("kavenegar", "receive.json"))) as panel:
        polled = create_provider({**KAVE, "base_url": panel.url})
        Poller(world.config, world.engine, {"sms": [polled]}, "w1").poll()
    assert len(panel.requests) == 1 and events(world) == ["unsubscribed"]


@pytest.mark.parametrize("path", [
    "/webhooks/kave/wrong-secret-but-long-enough",
    f"/webhooks/kave/{SECRET[:-1]}",
    f"/webhooks/nobody/{SECRET}",
    f"/webhooks/mem/{SECRET}",  # a provider without callbacks
])
def test_a_wrong_secret_or_provider_is_404_changes_nothing_and_logs_no_secret(world, caplog, path):
    client, _ = api_client(world)
    mid = sent_by_kave(world, "8792343")
    with caplog.at_level(logging.INFO):
        response = client.post(path, content=form("callback_status.form"), headers=FORM)
    assert response.status_code == 404 and response.json() == {"error": "not found"}
    assert world.messages(id=mid)[0]["status"] == "sent" and events(world) == []
    logged = server_log(caplog)
    assert path.rsplit("/", 1)[1] not in logged and SECRET[:12] not in logged
    assert "/webhooks/" in logged  # the request is logged, the secret cut


def test_the_secret_is_not_logged_on_success_either(world, caplog):
    client, _ = api_client(world)
    with caplog.at_level(logging.INFO):
        client.post(f"/webhooks/kave/{SECRET}", content=form("callback_receive.form"), headers=FORM)
    assert "/webhooks/kave/…" in server_log(caplog) and SECRET not in server_log(caplog)


def test_a_body_over_64_kb_is_413(world):
    client, _ = api_client(world)
    body = b"messageid=1&status=10&pad=" + b"x" * (64 * 1024)
    assert client.post(f"/webhooks/kave/{SECRET}", content=body, headers=FORM).status_code == 413


@pytest.mark.parametrize("body", [b"", b"hello", b"messageid=1", b"\xff\xfe", b"[1, 2]", b"status=abc&messageid=1"])
def test_what_kavenegar_never_sends_is_400(world, body):
    client, _ = api_client(world)
    response = client.post(f"/webhooks/kave/{SECRET}", content=body, headers=FORM)
    assert response.status_code == 400 and "kavenegar" in response.json()["error"]
    assert events(world) == []


def test_a_short_callback_secret_is_refused_with_the_fix():
    from providers.errors import ProviderConfigError

    with pytest.raises(ProviderConfigError, match="secrets.token_urlsafe"):
        create_provider({**KAVE, "callback_secret": "short"})
