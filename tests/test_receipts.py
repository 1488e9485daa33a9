"""Delivery receipts and inbound SMS: the poller, the cluster lease, opt-out words."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from engine.poller import Poller, cluster_lease
from engine.receipts import classify_reply
from engine.reports import funnel
from providers.base import DeliveryReport, DeliveryState, InboundMessage
from providers.registry import create_provider
from tests.fakes.httpserver import FakeHttpServer, Reply
from tests.provider_support import load_payload

from .conftest import simple_sequence, winter_sequence
from .test_engine import SARA, T0


def poller(world, owner="w1"):
    return Poller(world.config, world.engine, world.providers, owner)


def sent_world(make_world):
    world = make_world([simple_sequence("a")])
    (sara,) = world.add_contacts(SARA)
    world.enroll("a", sara)
    world.tick()
    (row,) = world.messages(status="sent")
    return world, sara, row


def test_a_delivered_receipt_is_recorded_once(make_world, frozen):
    world, _, row = sent_world(make_world)
    world.sms.reports.append(DeliveryReport(row["provider_message_id"], DeliveryState.DELIVERED))
    frozen.move_to(T0 + timedelta(minutes=1))
    assert poller(world).poll()["receipts"] == 1
    assert world.messages(id=row["id"])[0]["status"] == "delivered"
    assert [r["event"] for r in world.log(message_id=row["id"])][-1] == "delivered"
    with world.engine.connect() as conn:
        assert funnel(conn, "a", ["t0", "t1", "t2"])["touches"]["t0"]["delivered"] == 1
    frozen.move_to(T0 + timedelta(minutes=10))
    world.sms.reports.append(DeliveryReport(row["provider_message_id"], DeliveryState.DELIVERED))
    assert poller(world).poll()["receipts"] == 0  # the same receipt twice changes nothing
    assert len(world.log(message_id=row["id"], event="delivered")) == 1


def test_a_blacklisted_recipient_is_suppressed_on_sms(make_world, frozen):
    world, sara, row = sent_world(make_world)
    world.sms.reports.append(DeliveryReport(row["provider_message_id"], DeliveryState.UNDELIVERED,
                                            reason="blacklisted by the operator (*800#)", recipient_blocked=True))
    frozen.move_to(T0 + timedelta(minutes=2))
    poller(world).poll()
    assert world.messages(id=row["id"])[0]["status"] == "undelivered"
    world.run(frozen, T0 + timedelta(hours=3))
    assert [m["status"] for m in world.messages()] == ["undelivered", "skipped", "skipped"]


def test_pending_messages_are_polled_on_a_widening_schedule_then_left_sent(make_world, frozen):
    world, _, row = sent_world(make_world)
    asked = []
    world.sms.delivery_status = lambda ids: asked.append(list(ids)) or []
    for minutes in (1, 6, 36, 156, 1596):
        frozen.move_to(T0 + timedelta(minutes=minutes, seconds=1))
        poller(world).poll()
    assert len(asked) == 5
    final = world.messages(id=row["id"])[0]
    assert final["status"] == "sent" and final["poll_at"] is None
    assert world.log(message_id=row["id"], event="receipt_timeout")
    frozen.move_to(T0 + timedelta(days=3))
    poller(world).poll()
    assert len(asked) == 5


@pytest.mark.parametrize("text, expected", [
    ("11", "unsubscribed"), ("۱۱", "unsubscribed"), ("١١", "unsubscribed"), ("لغو", "unsubscribed"),
    (" STOP ", "unsubscribed"), ("unsubscribe", "unsubscribed"), ("12", "resubscribed"), ("START", "resubscribed"),
    ("ممنون، خریدم", "replied"), ("111", "replied"),
])
def test_reply_words(text, expected):
    assert classify_reply(text) == expected


def test_inbound_opt_out_then_resubscribe_and_reply(make_world, frozen):
    world = make_world([winter_sequence()])
    (sara,) = world.add_contacts(SARA)
    world.enroll("winter", sara)
    world.tick()
    world.sms.replies.append(InboundMessage("+989121234567", "۱۱", provider_message_id="in-1"))
    poller(world).poll()
    world.sms.replies.append(InboundMessage("09121234567", "۱۱", provider_message_id="in-1"))  # delivered twice
    poller(world).poll()
    with world.engine.connect() as conn:
        contact = conn.exec_driver_sql("SELECT sms_suppressed FROM contacts").scalar_one()
        events = conn.exec_driver_sql("SELECT type FROM contact_events").scalars().all()
    assert contact and events == ["unsubscribed"]
    world.sms.replies.append(InboundMessage("09121234567", "12", provider_message_id="in-2"))
    poller(world).poll()
    with world.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT sms_suppressed FROM contacts").scalar_one() is None
    world.sms.replies.append(InboundMessage("09121234567", "ممنون، فردا می‌خرم", provider_message_id="in-3"))
    poller(world).poll()
    assert world.enrollment(sara, "winter")["status"] == "replied"


def test_only_one_worker_polls_per_cluster(make_world, frozen):
    world, _, _ = sent_world(make_world)
    assert cluster_lease(world.engine, "poller", "w1", 120)
    assert not cluster_lease(world.engine, "poller", "w2", 120)
    assert cluster_lease(world.engine, "poller", "w1", 120)  # renewing is fine
    frozen.move_to(T0 + timedelta(minutes=3))  # the lease of w1 expired
    assert cluster_lease(world.engine, "poller", "w2", 120)


#: panel → (its inbox route, the fixture served there, our line): each fixture's first message is an opt-out
#: from SARA to that line
PANEL_INBOXES = {
    "ghasedak": ("/GetReceivedSmses", "received_smses.json", "210002100"),
    "ippanel": ("/api/report/messages-inbox", "messages_inbox.json", "+983000505"),
    "melipayamak": ("/receive/messages/", "receive_messages.json", "50004001"),
    "kavenegar": ("/sms/receive.json", "receive.json", "30002225"),
    "smsir": ("/receive/latest", "receive_latest.json", "30007732000000"),
}


@pytest.mark.parametrize("panel", sorted(PANEL_INBOXES))
def test_an_opt_out_to_any_panels_line_unsubscribes(make_world, frozen, panel):
    route, fixture, line = PANEL_INBOXES[panel]
    body = load_payload(panel, fixture)
    world = make_world([winter_sequence()])
    (sara,) = world.add_contacts(SARA)
    with FakeHttpServer(lambda req: Reply(200, body) if route in req.path else Reply(404, "no route")) as server:
        # named as the world's configured SMS provider: only a provider configured for SMS brings inbound SMS
        provider = create_provider({"name": "mem-sms", "type": panel, "api_key": "k" * 32,
                                    "sender": line, "base_url": server.url})
        panel_poller = Poller(world.config, world.engine, {"sms": [provider]}, "w1")
        assert panel_poller.poll()["inbound"] >= 1
        panel_poller.poll()  # read again: changes nothing
    with world.engine.connect() as conn:
        suppressed = conn.execute(sa.text("SELECT sms_suppressed FROM contacts WHERE id = :id"), {"id": sara}).scalar_one()
        events = conn.exec_driver_sql("SELECT type, source FROM contact_events").all()
    assert suppressed and events == [("unsubscribed", "mem-sms")]
