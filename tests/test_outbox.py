"""The webhook outbox under a crash: a worker killed between the POST and its commit sends the event again,
the receiver drops the repeat by its id, and every event arrives, in order per contact."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.engagement import find_link, record_follow
from engine.models import Link, WebhookOutbox
from engine.webhook_delivery import Deliverer
from tests.conftest import World, simple_sequence
from tests.test_link_redirect import PHONE
from tests.test_links import LINKS, SARA, TEMPLATES, link_sequence
from tests.webhook_receiver import SECRET, Receiver, bodies, settings_for

FOLLOWUP = str(Path(sys.executable).parent / "followup")
outbox_t = WebhookOutbox.__table__


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", SECRET)


def outbox(world) -> list[dict]:
    with world.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(outbox_t).order_by(outbox_t.c.id)).mappings()]


def test_a_worker_killed_after_the_post_delivers_once_afterwards_in_order(tmp_path, processes):
    with Receiver() as hooks:
        world = World(tmp_path, f"sqlite:///{tmp_path}/followup.db", [simple_sequence("a")],
                      settings=settings_for(hooks.url))
        world.dispatcher.close()  # the worker processes do the work
        ids = world.add_contacts(*({"phone": f"0912000000{i}"} for i in range(3)))
        for kind in ("replied", "converted", "unsubscribed"):
            for contact in ids:
                world.event(contact, kind, **({"value": 100.0} if kind == "converted" else {}))
        written = outbox(world)
        assert len(written) == 9
        env = {**os.environ, "FOLLOWUP_CONFIG": str(world.root / "config")}
        hooks.hold.set()  # the first POST is held at the receiver: the worker waits for its answer
        first = processes(subprocess.Popen([FOLLOWUP, "worker", "--once"], env=env,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        assert hooks.holding.wait(60), "the worker never posted"
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        hooks.release.set()
        # the held event was never recorded as delivered; the others of its contact wait behind it
        unrecorded = {r["event_id"] for r in outbox(world) if r["status"] == "pending"}
        held = next(r for r in outbox(world) if r["event_id"] == hooks.held_id)
        assert held["status"] == "pending"
        assert all(r["status"] == "pending" for r in outbox(world)
                   if r["contact_id"] == held["contact_id"] and r["id"] > held["id"])
        second = subprocess.run([FOLLOWUP, "worker", "--once"], env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        after = outbox(world)
        assert {r["status"] for r in after} == {"delivered"}
        assert sorted(b["id"] for b in hooks.accepted) == sorted(r["event_id"] for r in written)
        # sent again after the kill, dropped by its id: the held event, and any other event whose POST the first
        # worker made but did not record as delivered before the kill (its answer read or not, its request
        # taken by the receiver before or after the kill); an event recorded as delivered is never sent again
        assert hooks.held_id in hooks.repeats and len(set(hooks.repeats)) == len(hooks.repeats)
        assert set(hooks.repeats) <= unrecorded
        for contact in ids:
            assert [k for k, c in bodies(hooks) if c == contact] == ["replied", "converted", "unsubscribed"]
        world.close()


def test_a_persons_click_goes_out_and_a_bots_does_not(make_world, frozen):
    with Receiver() as hooks:
        world = make_world([link_sequence()], settings={**LINKS, **settings_for(hooks.url)}, templates=TEMPLATES)
        (sara,) = world.add_contacts(SARA)
        world.enroll("coats", sara)
        world.tick()
        with world.engine.begin() as conn:
            code = conn.execute(sa.select(Link.__table__.c.code).limit(1)).scalar_one()
            link = find_link(conn, code)
            record_follow(conn, link, method="GET", user_agent="curl/8", config=world.config)
            record_follow(conn, link, method="GET", user_agent=PHONE, config=world.config)
        assert Deliverer(world.config, world.engine, sleep=lambda s: None).run().delivered == 1
        (click,) = hooks.accepted
        assert click["type"] == "clicked" and click["data"]["contact"]["id"] == sara
        assert click["data"]["sequence"] == "coats" and click["data"]["url"].startswith("https://")


def test_a_providers_click_event_goes_out_once(make_world, frozen):
    from engine.engagement import apply_engagements
    from providers.base import EngagementEvent

    with Receiver() as hooks:
        world = make_world([simple_sequence("a")], settings=settings_for(hooks.url))
        (sara,) = world.add_contacts({"phone": "09121111111"})
        world.enroll("a", sara)
        world.tick()
        (sent,) = [m for m in world.messages() if m["provider_message_id"]]
        click = EngagementEvent("click", sent["provider_message_id"], event_id="ev-1")
        with world.engine.begin() as conn:
            assert apply_engagements(conn, "mem-sms", [click, click], config=world.config) == 1
        assert Deliverer(world.config, world.engine, sleep=lambda s: None).run().delivered == 1
        assert [(b["type"], b["data"]["touch"]) for b in hooks.accepted] == [("clicked", "t0")]
