"""Line classes: the sender line follows the touch's kind, and the operators' advertising blacklist stops
promotional SMS only.

Every panel is a real HTTP server on 127.0.0.1 answering in its own wire format (replies from
tests/data/<panel>/, whose SOURCES.md name their source); the worker is the real dispatcher under freezegun.
"""
from __future__ import annotations

import copy
import itertools
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from engine.errors import ConfigError
from engine.kinds import BLACKLIST_REASON, PROMOTIONAL_ONLY, suppress
from engine.poller import Poller
from engine.validate import validate
from providers.errors import ProviderConfigError
from providers.registry import create_provider
from tests.fakes.httpserver import FakeHttpServer, Reply
from tests.provider_support import load_payload

from .conftest import World, simple_sequence
from .test_engine import SARA, T0

PROMO, SERVICE, OTHER = "10004346", "2000660110", "30001"
LINES = [{"number": PROMO, "class": "promotional"}, {"number": SERVICE, "class": "service"}]
TEMPLATES = {"news.sms.j2": "سلام {{ contact.first_name }}، سفارش شما ارسال شد.",
             "sale.sms.j2": "{{ contact.first_name }} عزیز، کد {{ offer.code }}: {{ offer.title }}"}


def mixed_sequence(**extra) -> dict:
    """t0 promotional (by default), t1 informational, t2 promotional, an hour apart."""
    return {"name": "mixed", **extra, "touches": [
        {"name": "t0", "after": "0s", "channel": "sms", "template": "plain.sms.j2"},
        {"name": "t1", "after": "1h", "channel": "sms", "template": "news.sms.j2", "kind": "informational"},
        {"name": "t2", "after": "1h", "channel": "sms", "template": "plain.sms.j2", "kind": "promotional"}]}


class Panel:
    """One panel's send call: records the sender line of each send and accepts it with a fresh id;
    ``refuse(line)`` may answer a send with the panel's own refusal instead."""

    #: panel → (send path suffix, the sender line of a request, the accepted reply with id ``n``)
    SENDS = {
        "kavenegar": ("/sms/send.json", lambda r: r.form["sender"],
                      lambda body, n: body["entries"][0].update(messageid=n)),
        "ghasedak": ("/SendSingleSMS", lambda r: r.json["lineNumber"],
                     lambda body, n: body["data"].update(messageId=str(n))),
        "smsir": ("/send/bulk", lambda r: str(r.json["lineNumber"]),
                  lambda body, n: body["data"].update(messageIds=[n])),
        "ippanel": ("/api/send", lambda r: r.json["from_number"],
                    lambda body, n: body["data"].update(message_outbox_ids=[n])),
        "melipayamak": ("/send/simple/", lambda r: r.json["from"], lambda body, n: body.update(recId=n)),
    }

    def __init__(self, panel: str, refuse=lambda line: None, status=None):
        self.panel, self.refuse, self.status = panel, refuse, status
        self.path, self.line_of, self.with_id = self.SENDS[panel]
        self.ok = load_payload(panel, "send_ok.json")
        self.lines: list[str] = []
        self.ids = itertools.count(90000001)
        self.lock = threading.Lock()

    def __call__(self, req):
        if self.status is not None and "/sms/status" in req.path:
            return self.status(req)
        if "/sms/receive" in req.path:  # the poller also reads each line's inbox: nothing came in
            return Reply(200, {**load_payload("kavenegar", "receive.json"), "entries": []})
        if self.path not in req.path:
            return Reply(404, "no route")
        line = self.line_of(req)
        with self.lock:
            self.lines.append(line)
            refusal = self.refuse(line)
            if refusal is not None:
                return refusal
            body = copy.deepcopy(self.ok)
            self.with_id(body, next(self.ids))
        return Reply(200, body)


def panel_world(make_world, server, panel: str, *, sender: str | None = None, more: list | None = None,
                sequence: dict | None = None, lines: list = LINES) -> tuple[World, int]:
    entry = {"name": panel, "type": panel, "api_key": "k" * 32, "base_url": server.url, "lines": lines}
    if sender:
        entry["sender"] = sender
    world = make_world([sequence or mixed_sequence()], templates=TEMPLATES,
                       settings={"providers": {"sms": [entry, *(more or [])],
                                               "email": [{"name": "mem-email", "type": "memory"}]}})
    (sara,) = world.add_contacts(SARA)
    world.enroll("mixed", sara)
    return world, sara


def suppressed(world: World, contact_id: int) -> str | None:
    with world.engine.connect() as conn:
        return conn.execute(sa.text("SELECT sms_suppressed FROM contacts WHERE id = :i"), {"i": contact_id}).scalar()


def e164_line(panel: str, line: str) -> str:
    return "+98" + line if panel == "ippanel" else line


@pytest.mark.parametrize("panel", sorted(Panel.SENDS))
def test_the_sender_line_follows_the_touchs_kind(make_world, frozen, panel):
    fake = Panel(panel)
    with FakeHttpServer(fake) as server:
        world, _ = panel_world(make_world, server, panel)
        world.run(frozen, T0 + timedelta(hours=3))
    assert [m["status"] for m in world.messages()] == ["sent", "sent", "sent"]
    assert fake.lines == [e164_line(panel, line) for line in (PROMO, SERVICE, PROMO)]


def test_without_a_service_line_an_informational_touch_leaves_from_the_default_sender(make_world, frozen):
    fake = Panel("kavenegar")
    with FakeHttpServer(fake) as server:
        world, _ = panel_world(make_world, server, "kavenegar", sender=OTHER, lines=LINES[:1])
        world.run(frozen, T0 + timedelta(hours=3))
    assert fake.lines == [PROMO, OTHER, PROMO]


def kavenegar_status(blacklisted: set[str]):
    """Kavenegar's ``sms/status`` (tests/data/kavenegar/status.json): 14 "filtered" for ``blacklisted`` ids."""
    def answer(req):
        body = load_payload("kavenegar", "status.json")
        body["entries"] = [{"messageid": int(i), "status": 14 if i in blacklisted else 10,
                            "statustext": "فیلتر شده" if i in blacklisted else "رسیده به گیرنده"}
                           for i in req.form["messageid"].split(",")]
        return Reply(200, body)
    return answer


def test_a_blacklist_receipt_on_a_promotional_sms_stops_promotional_touches_only(make_world, frozen):
    blacklisted: set[str] = set()
    fake = Panel("kavenegar", status=kavenegar_status(blacklisted))
    with FakeHttpServer(fake) as server:
        world, sara = panel_world(make_world, server, "kavenegar")
        world.tick()
        (first,) = world.messages(touch="t0")
        blacklisted.add(first["provider_message_id"])
        frozen.move_to(T0 + timedelta(minutes=2))
        assert Poller(world.config, world.engine, world.providers, "w1").poll()["receipts"] == 1
        world.run(frozen, T0 + timedelta(hours=3))
    t0, t1, t2 = world.messages()
    assert t0["status"] == "undelivered" and t0["reason"].startswith("operator advertising blacklist")
    assert t1["status"] == "sent"  # informational: through the service line
    assert t2["status"] == "skipped" and "operator advertising blacklist" in t2["reason"]
    assert fake.lines == [PROMO, SERVICE]  # never retried from a promotional line
    assert suppressed(world, sara).startswith(PROMOTIONAL_ONLY)


def test_a_blacklist_receipt_on_an_informational_sms_stops_every_sms(make_world, frozen):
    blacklisted: set[str] = set()
    fake = Panel("kavenegar", status=kavenegar_status(blacklisted))
    sequence = mixed_sequence()
    sequence["touches"][0]["kind"] = "informational"
    sequence["touches"][0]["template"] = "news.sms.j2"
    sequence["touches"][1]["kind"] = "informational"
    with FakeHttpServer(fake) as server:
        world, sara = panel_world(make_world, server, "kavenegar", sequence=sequence)
        world.tick()
        (first,) = world.messages(touch="t0")
        blacklisted.add(first["provider_message_id"])
        frozen.move_to(T0 + timedelta(minutes=2))
        Poller(world.config, world.engine, world.providers, "w1").poll()
        world.run(frozen, T0 + timedelta(hours=3))
    assert [m["status"] for m in world.messages()] == ["undelivered", "skipped", "skipped"]
    assert fake.lines == [SERVICE]
    assert not suppressed(world, sara).startswith(PROMOTIONAL_ONLY)


def test_a_blacklisted_promotional_send_fails_once_and_informational_touches_still_go(make_world, frozen):
    # SMS.ir answers a send to a blacklisted number with messageIds [0] (tests/data/smsir/send_blacklisted.json)
    smsir = Panel("smsir", refuse=lambda line: Reply(200, load_payload("smsir", "send_blacklisted.json"))
                  if line == PROMO else None)
    backup = Panel("kavenegar")
    with FakeHttpServer(smsir) as server, FakeHttpServer(backup) as backup_server:
        world, sara = panel_world(make_world, server, "smsir", more=[
            {"name": "kave", "type": "kavenegar", "api_key": "k" * 32, "base_url": backup_server.url,
             "lines": copy.deepcopy(LINES)}])
        world.run(frozen, T0 + timedelta(hours=3))
    t0, t1, t2 = world.messages()
    assert t0["status"] == "failed" and "operator advertising blacklist" in t0["reason"]
    assert (t1["status"], t1["provider"]) == ("sent", "smsir")
    assert t2["status"] == "skipped"
    assert smsir.lines == [PROMO, SERVICE] and backup.lines == []  # no other provider's promotional line tried
    assert suppressed(world, sara).startswith(PROMOTIONAL_ONLY)


def test_an_opt_out_replaces_a_promotional_only_suppression(make_world, frozen):
    smsir = Panel("smsir", refuse=lambda line: Reply(200, load_payload("smsir", "send_blacklisted.json")))
    with FakeHttpServer(smsir) as server:
        world, sara = panel_world(make_world, server, "smsir")
        world.tick()
        assert suppressed(world, sara).startswith(PROMOTIONAL_ONLY)
        world.event(sara, "unsubscribed", channel="sms")
        world.run(frozen, T0 + timedelta(hours=3))
    assert [m["status"] for m in world.messages()] == ["failed", "skipped", "skipped"]
    assert smsir.lines == [PROMO]


def test_validate_refuses_an_informational_touch_whose_template_uses_the_offer(make_world):
    sequence = mixed_sequence(offer={"code": "WINTER20", "title": "۲۰٪ تخفیف", "expires_after": "72h"})
    sequence["touches"][1]["template"] = "sale.sms.j2"
    world = make_world([sequence], templates=TEMPLATES)
    _, problems = validate(world.root / "config")
    (problem,) = [p for p in problems if p.key == "touches[1].kind"]
    assert problem.file.endswith("mixed.yaml") and problem.line is not None
    assert "informational" in problem.message and "`offer`" in problem.message
    sequence["touches"][1]["kind"] = "promotional"
    fixed = make_world([sequence], templates=TEMPLATES)
    assert not [p for p in validate(fixed.root / "config")[1] if "kind" in p.key]


def test_an_unknown_kind_is_refused_with_its_file_and_line(make_world):
    sequence = mixed_sequence()
    sequence["touches"][2]["kind"] = "advert"
    with pytest.raises(ConfigError) as info:
        make_world([sequence], templates=TEMPLATES)
    (problem,) = info.value.problems
    assert problem.key == "touches[2].kind" and problem.line is not None and "informational" in problem.message


@pytest.mark.parametrize("lines, error", [
    ([{"number": SERVICE, "class": "service"}], "sender"),  # no default sender
    ([{"number": PROMO, "class": "ads"}], "lines[0].class"),
    ([{"number": PROMO, "class": "promotional"}, {"number": PROMO, "class": "service"}], "lines[1].number"),
    ("10004346", "lines"),
])
def test_bad_lines_are_refused_at_start_up(lines, error):
    with pytest.raises(ProviderConfigError) as info:
        create_provider({"name": "k", "type": "kavenegar", "api_key": "k" * 32, "lines": lines})
    assert info.value.key == error


def test_the_first_promotional_line_is_the_default_sender():
    provider = create_provider({"name": "k", "type": "kavenegar", "api_key": "k" * 32, "lines": list(reversed(LINES))})
    assert provider.sender == PROMO and provider.numbers == [PROMO, SERVICE]


def test_a_promotional_only_suppression_refuses_enrollment_only_where_every_sms_touch_is_promotional(make_world):
    world = make_world([mixed_sequence(), simple_sequence("promo")], templates=TEMPLATES)
    (sara,) = world.add_contacts(SARA)
    with world.engine.begin() as conn:
        suppress(conn, sara, "sms", BLACKLIST_REASON, promotional_only=True)
    assert world.enroll("mixed", sara).enrolled == [sara]  # its informational touch can still reach her
    (refused,) = world.enroll("promo", sara).refused
    assert refused[0] == sara and "promotional only: operator advertising blacklist" in refused[1]
