"""IPPanel accepted a send, then its bulk state says "Insufficient credit for sending": the message goes out
again (the provider paused, failing over), it is never recorded as undelivered and never held against the contact.

IPPanel and the failover panel are real HTTP servers on 127.0.0.1 answering in their documented wire formats
(tests/data/ippanel/ and tests/data/kavenegar/, whose SOURCES.md name the source; the bulk states are those of
ippanelcom/Edge-Document ``docs/report/outbox-report.md``). The worker and the poller are the real ones under
freezegun.
"""
from __future__ import annotations

import copy
import itertools
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from engine.models import ProviderState
from engine.poller import Poller
from engine.receipts import apply_reports
from providers.base import DeliveryReport, DeliveryState
from providers.registry import create_provider
from tests.fakes.httpserver import FakeHttpServer, Reply
from tests.provider_support import load_payload

from .conftest import simple_sequence
from .test_engine import SARA, T0
from .test_line_classes import Panel

KEY = "OWZkNmJhZTQtN2U4Ni00MGQ0LWE2"


class IPPanel:
    """IPPanel's send, recipients report and bulk report; ``state_id`` is what the bulk report says."""

    def __init__(self, state_id: int):
        self.state_id = state_id
        self.sends: list[dict] = []
        self.ids = itertools.count(1123544244)
        self.lock = threading.Lock()

    def __call__(self, req):
        if req.path.endswith("/api/send"):
            body = copy.deepcopy(load_payload("ippanel", "send_ok.json"))
            with self.lock:
                self.sends.append(req.json)
                body["data"]["message_outbox_ids"] = [next(self.ids)]
            return Reply(200, body)
        if req.path.endswith("/api/report/recipients"):  # not final: no per-recipient state yet
            return Reply(200, {**load_payload("ippanel", "recipients.json"), "data": []})
        if req.path.endswith("/api/report/by_bulk"):
            body = copy.deepcopy(load_payload("ippanel", "by_bulk.json"))
            body["data"].update(messages_outbox_id=req.query["messages_outbox_id"][0], state_id=self.state_id)
            return Reply(200, body)
        if req.path.endswith("/api/report/messages-inbox"):
            return Reply(200, {**load_payload("ippanel", "messages_inbox.json"), "data": []})
        return Reply(404, "no route")


def ippanel_entry(url: str) -> dict:
    return {"name": "ipp", "type": "ippanel", "api_key": KEY, "sender": "+983000505", "base_url": url}


def world_of(make_world, ipp_url: str, kave_url: str | None = None):
    sms = [ippanel_entry(ipp_url)]
    if kave_url:
        sms.append({"name": "kave", "type": "kavenegar", "api_key": "k" * 32, "base_url": kave_url,
                    "sender": "10004346"})
    world = make_world([simple_sequence("drip", after="1d")], settings={"providers": {
        "sms": sms, "email": [{"name": "mem-email", "type": "memory"}]}})
    (sara,) = world.add_contacts(SARA)
    world.enroll("drip", sara)
    return world, sara


def poll(world) -> dict:
    return Poller(world.config, world.engine, world.providers, "w1").poll()


def provider_state(world, name: str) -> dict | None:
    with world.engine.connect() as conn:
        row = conn.execute(sa.select(ProviderState.__table__).where(ProviderState.__table__.c.name == name)).mappings().first()
    return dict(row) if row else None


def suppressed(world, contact_id: int):
    with world.engine.connect() as conn:
        return conn.execute(sa.text("SELECT sms_suppressed FROM contacts WHERE id = :i"), {"i": contact_id}).scalar()


# -- the adapter ----------------------------------------------------------------------------------
@pytest.mark.parametrize("state_id, state, account", [
    (8, DeliveryState.NOT_SENT, True), (9, DeliveryState.NOT_SENT, False),
    (3, DeliveryState.UNDELIVERED, False), (4, DeliveryState.UNDELIVERED, False), (7, DeliveryState.UNDELIVERED, False),
    (0, DeliveryState.PENDING, False), (5, DeliveryState.PENDING, False), (6, DeliveryState.PENDING, False),
])
def test_the_bulk_state_when_no_recipient_state_is_final(state_id, state, account):
    panel = IPPanel(state_id)
    with FakeHttpServer(panel) as server:
        [report] = create_provider(ippanel_entry(server.url)).delivery_status(["1123544244"])
        paths = [(r.method, r.path.rsplit("/v1", 1)[-1] if "/v1" in r.path else r.path) for r in server.requests]
    assert (report.state, report.account_blocked, report.error) == (state, account, None)
    assert report.recipient_blocked is False
    assert [p for _, p in paths] == ["/api/report/recipients", "/api/report/by_bulk"]
    assert server.requests[1].query["messages_outbox_id"] == ["1123544244"]
    if state_id == 8:
        assert report.reason == "ippanel bulk state 8: insufficient credit for sending"


def test_a_final_recipient_state_needs_no_bulk_report():
    def panel(req):
        if req.path.endswith("/api/report/recipients"):
            return Reply(200, load_payload("ippanel", "recipients.json"))  # message_status "2": delivered
        return Reply(500, "the bulk report was not needed")

    with FakeHttpServer(panel) as server:
        [report] = create_provider(ippanel_entry(server.url)).delivery_status(["1123544244"])
        assert len(server.requests) == 1
    assert report.state is DeliveryState.DELIVERED


# -- the engine -----------------------------------------------------------------------------------
def test_no_credit_after_acceptance_pauses_ippanel_and_sends_again_through_the_next_provider(make_world, frozen):
    ipp, kave = IPPanel(state_id=8), Panel("kavenegar")
    with FakeHttpServer(ipp) as ipp_server, FakeHttpServer(kave) as kave_server:
        world, sara = world_of(make_world, ipp_server.url, kave_server.url)
        world.tick()
        [t0] = world.messages(touch="t0")
        assert (t0["status"], t0["provider"]) == ("sent", "ipp") and len(ipp.sends) == 1
        assert world.messages(touch="t1")[0]["status"] == "scheduled"

        frozen.move_to(T0 + timedelta(minutes=2))
        assert poll(world)["receipts"] == 1
        [t0] = world.messages(touch="t0")
        assert t0["status"] == "scheduled" and t0["sent_at"] is None and t0["poll_at"] is None
        assert "insufficient credit for sending" in t0["reason"] and "while ipp is paused" in t0["reason"]
        assert world.messages(touch="t1")[0]["status"] == "pending"  # waits for t0 again
        paused = provider_state(world, "ipp")
        assert paused["state"] == "paused" and "insufficient credit" in paused["reason"]
        assert suppressed(world, sara) is None
        events = [r["event"] for r in world.log(message_id=t0["id"])]
        assert "requeued" in events and "undelivered" not in events and "failed" not in events

        world.tick()  # due now: IPPanel is paused, so the failover panel sends it
    [t0] = world.messages(touch="t0")
    assert (t0["status"], t0["provider"]) == ("sent", "kave")
    assert len(ipp.sends) == 1 and kave.lines == ["10004346"]
    [t1] = world.messages(touch="t1")
    assert t1["status"] == "scheduled"
    assert t1["due_at"].replace(tzinfo=None) == (T0 + timedelta(minutes=2, days=1)).replace(tzinfo=None)
    assert suppressed(world, sara) is None


def test_the_same_report_twice_sends_again_once(make_world, frozen):
    ipp = IPPanel(state_id=8)
    with FakeHttpServer(ipp) as server:
        world, _ = world_of(make_world, server.url)
        world.tick()
        [t0] = world.messages(touch="t0")
        report = DeliveryReport(t0["provider_message_id"], DeliveryState.NOT_SENT,
                                reason="ippanel bulk state 8: insufficient credit for sending", account_blocked=True)
        with world.engine.begin() as conn:
            assert apply_reports(conn, world.config, "ipp", [report]) == 1
        with world.engine.begin() as conn:
            assert apply_reports(conn, world.config, "ipp", [report]) == 0
        assert len(world.log(message_id=t0["id"], event="requeued")) == 1

        world.tick()  # the only provider is paused: the message waits, it is not dropped
        [t0] = world.messages(touch="t0")
        assert t0["status"] == "scheduled" and "every sms provider is paused" in t0["reason"]
        assert len(ipp.sends) == 1


def test_a_system_error_sends_again_without_pausing(make_world, frozen):
    ipp = IPPanel(state_id=9)
    with FakeHttpServer(ipp) as server:
        world, _ = world_of(make_world, server.url)
        world.tick()
        frozen.move_to(T0 + timedelta(minutes=2))
        poll(world)
        assert provider_state(world, "ipp") is None
        ipp.state_id = 6  # sent this time
        world.tick()
    [t0] = world.messages(touch="t0")
    assert t0["status"] == "sent" and len(ipp.sends) == 2


def test_a_last_touch_sent_again_reopens_its_enrollment(make_world, frozen):
    ipp = IPPanel(state_id=6)
    with FakeHttpServer(ipp) as server:
        world, sara = world_of(make_world, server.url)
        world.run(frozen, T0 + timedelta(days=2, minutes=5))
        assert [m["status"] for m in world.messages()] == ["sent", "sent", "sent"]
        assert world.enrollment(sara, "drip")["status"] == "completed"
        [t2] = world.messages(touch="t2")
        report = DeliveryReport(t2["provider_message_id"], DeliveryState.NOT_SENT, reason="bulk state 9")
        with world.engine.begin() as conn:
            apply_reports(conn, world.config, "ipp", [report])
        assert world.enrollment(sara, "drip")["status"] == "active"
        world.tick()
    assert world.messages(touch="t2")[0]["status"] == "sent" and len(ipp.sends) == 4
    assert world.enrollment(sara, "drip")["status"] == "completed"
