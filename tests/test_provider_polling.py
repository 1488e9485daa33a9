"""Delivery polling end to end: real panel adapters against local HTTP servers, the poller on real SQLite.

The panels answer with their documented payloads (tests/data/<provider>/SOURCES.md).
"""
from __future__ import annotations

from datetime import timedelta

from engine.poller import Poller
from providers.registry import create_provider
from tests.fakes.httpserver import FakeHttpServer, Reply
from tests.provider_support import load_payload

from .conftest import simple_sequence
from .test_engine import ALI, SARA, T0

KAVENEGAR_KEY = "4A6B7A5A3171523444654B6C6F4F"
NEGAR = {"phone": "09191234567", "email": "negar@example.com", "first_name": "نگار"}


def sent_messages(make_world, *contacts):
    """A world whose memory provider ("mem-sms") sent the first touch to each contact."""
    world = make_world([simple_sequence("a")])
    ids = world.add_contacts(*contacts)
    world.enroll("a", *ids)
    world.tick()
    return world, sorted(world.messages(status="sent"), key=lambda m: m["id"])


def poll_through(world, provider):
    """One poll round with ``provider`` standing in for the provider that sent the messages."""
    return Poller(world.config, world.engine, {"sms": [provider]}, "w1").poll()


def test_kavenegar_100_stops_polling_and_keeps_the_recorded_state(make_world, frozen):
    # Kavenegar answers 100 for any message older than 48 hours and for an id it does not know
    world, [row] = sent_messages(make_world, SARA)
    pid = row["provider_message_id"]
    asked = []

    def panel(req):
        if req.path.endswith("/sms/receive.json"):
            return Reply(200, {"return": {"status": 200, "message": "تایید شد"}, "entries": []})
        asked.append(req.form["messageid"])
        return Reply(200, {"return": {"status": 200, "message": "تایید شد"},
                           "entries": [{"messageid": pid, "status": 100, "statustext": "شناسه پیامک نامعتبر است"}]})

    with FakeHttpServer(panel) as server:
        kavenegar = create_provider({"name": "mem-sms", "type": "kavenegar", "api_key": KAVENEGAR_KEY,
                                     "sender": "10004346", "base_url": server.url})
        frozen.move_to(T0 + timedelta(minutes=1, seconds=1))
        assert poll_through(world, kavenegar)["receipts"] == 0
        after = world.messages(id=row["id"])[0]
        assert after["status"] == "sent" and after["poll_at"] is None
        [stopped] = world.log(message_id=row["id"], event="receipt_timeout")
        assert "no longer reports" in stopped["reason"] and "stays sent" in stopped["reason"]
        assert [m["status"] for m in world.messages(status="undelivered")] == []
        frozen.move_to(T0 + timedelta(days=2))
        poll_through(world, kavenegar)
    assert asked == [pid]  # never asked again


def test_one_failing_id_gets_its_own_backoff_and_the_others_are_applied(make_world, frozen):
    world, rows = sent_messages(make_world, SARA, ALI, NEGAR)
    gone, busy, fine = (r["provider_message_id"] for r in rows)
    answers = {gone: Reply(400, load_payload("smsir", "report_not_found.json")),  # 111: SMS.ir does not know it
               busy: Reply(500, "<html>Internal Server Error</html>"),
               fine: Reply(200, load_payload("smsir", "report.json"))}
    asked = []

    def panel(req):
        if req.path.endswith("/receive/latest"):
            return Reply(200, {"status": 1, "message": "موفق", "data": []})
        pid = req.path.rsplit("/", 1)[-1]
        asked.append(pid)
        return answers[pid]

    with FakeHttpServer(panel) as server:
        smsir = create_provider({"name": "mem-sms", "type": "smsir", "api_key": "smsir-key-0123456789",
                                 "sender": "30007732000000", "base_url": server.url})
        frozen.move_to(T0 + timedelta(minutes=1, seconds=1))
        assert poll_through(world, smsir)["receipts"] == 1
        by_id = {m["provider_message_id"]: m for m in world.messages()}
        assert by_id[fine]["status"] == "delivered"
        assert by_id[gone]["status"] == "sent" and by_id[gone]["poll_at"] is None
        assert by_id[busy]["status"] == "sent" and by_id[busy]["polls"] == 1
        # its next step of the schedule (5 minutes after the first poll), not the next round
        assert by_id[busy]["poll_at"].replace(tzinfo=None) == (T0 + timedelta(minutes=6, seconds=1)).replace(tzinfo=None)
        assert sorted(asked) == sorted([gone, busy, fine])

        asked.clear()
        frozen.move_to(T0 + timedelta(minutes=2))
        poll_through(world, smsir)
        assert asked == []  # nothing due: the failing id waits its own step
        answers[busy] = Reply(200, load_payload("smsir", "report.json"))
        frozen.move_to(T0 + timedelta(minutes=7))
        poll_through(world, smsir)
    assert asked == [busy]
    assert world.messages(provider_message_id=busy)[0]["status"] == "delivered"


def test_a_poll_that_fails_whole_waits_its_next_step(make_world, frozen):
    world, [row] = sent_messages(make_world, SARA)
    asked = []

    def panel(req):
        asked.append(req.path)
        return Reply(503, "<html>Service Unavailable</html>")

    with FakeHttpServer(panel) as server:
        ghasedak = create_provider({"name": "mem-sms", "type": "ghasedak", "api_key": "gh-key-0123456789",
                                    "sender": "30005006", "base_url": server.url})
        frozen.move_to(T0 + timedelta(minutes=1, seconds=1))
        poll_through(world, ghasedak)
        frozen.move_to(T0 + timedelta(minutes=2))
        poll_through(world, ghasedak)
    assert [p for p in asked if p.endswith("/CheckSmsStatus")] == ["/CheckSmsStatus"]  # inbound is read each round
    after = world.messages(id=row["id"])[0]
    assert after["status"] == "sent" and after["polls"] == 1 and after["poll_at"] is not None
