"""Webhooks out: signed as Standard Webhooks says (its verifier accepts ours), retried with backoff, paused
after 24 h of failures, listed, replayed and resumed, with the secret never shown."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from engine.config import load_config
from engine.errors import ConfigError
from engine.models import WebhookOutbox
from engine.webhook_admin import endpoint_rows, replay, resume
from engine.webhook_delivery import Deliverer, backoff, sign
from engine.webhook_settings import masked_url
from tests.conftest import simple_sequence
from tests.service_support import SERVICE_SETTINGS, api_client, auth
from tests.webhook_receiver import SECRET, bodies, receiver, settings_for, webhook_secret  # noqa: F401 (fixtures)

FOLLOWUP = str(Path(sys.executable).parent / "followup")
outbox_t = WebhookOutbox.__table__


def hooked_world(make_world, url: str, **extra):
    world = make_world([simple_sequence("a")], settings={**settings_for(url), **extra})
    sleeps: list[float] = []
    world.deliverer = Deliverer(world.config, world.engine, sleep=sleeps.append)
    world.quick_sleeps = sleeps
    return world


def rows(world) -> list[dict]:
    with world.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(outbox_t).order_by(outbox_t.c.id)).mappings()]


def test_the_standardwebhooks_verifier_accepts_our_signature_and_refuses_a_changed_body(frozen):
    from engine.clock import now

    body = '{"type":"converted","id":"evt_1","data":{}}'
    headers = sign(SECRET, "evt_1", now(), body)
    assert Webhook(SECRET).verify(body, headers) == {"type": "converted", "id": "evt_1", "data": {}}
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace("converted", "replied"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "b" * 44).verify(body, headers)


def test_events_reach_the_url_signed_in_order_per_contact(make_world, frozen, receiver):
    world = hooked_world(make_world, receiver.url)
    sara, ali = world.add_contacts({"phone": "09121111111", "first_name": "سارا"},
                                   {"phone": "09122222222", "first_name": "علی"})
    world.event(sara, "replied")
    world.event(ali, "converted", value=900_000)
    world.event(sara, "converted", value=1_200_000)
    world.event(sara, "unsubscribed")
    world.event(ali, "resubscribed")  # not a webhook event
    report = world.deliverer.run()
    assert (report.delivered, report.failed) == (4, 0)
    assert receiver.rejected == [] and receiver.repeats == []
    assert [k for k, c in bodies(receiver) if c == sara] == ["replied", "converted", "unsubscribed"]
    assert [k for k, c in bodies(receiver) if c == ali] == ["converted"]
    sale = next(b for b in receiver.accepted if b["type"] == "converted" and b["data"]["contact"]["id"] == ali)
    assert sale["data"]["value"] == 900_000 and sale["data"]["contact"]["phone"] == "+989122222222"
    assert {r["status"] for r in rows(world)} == {"delivered"}


def test_an_event_of_a_rolled_back_change_never_goes_out(make_world, frozen, receiver):
    from engine.events import record_event

    world = hooked_world(make_world, receiver.url)
    (sara,) = world.add_contacts({"phone": "09121111111"})
    with world.engine.connect() as conn:
        trans = conn.begin()
        contact = dict(conn.execute(sa.text("SELECT * FROM contacts")).mappings().one())
        record_event(conn, world.config, contact, "converted", value=5)
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox_t)).scalar() == 1
        trans.rollback()
    assert rows(world) == []
    assert world.deliverer.run().delivered == 0 and receiver.accepted == []


def test_a_failing_url_is_retried_with_backoff_and_a_later_event_of_the_contact_waits(make_world, frozen, receiver):
    world = hooked_world(make_world, receiver.url)
    (sara,) = world.add_contacts({"phone": "09121111111"})
    world.event(sara, "replied")
    world.event(sara, "converted", value=10)
    receiver.fail = 503
    report = world.deliverer.run()
    assert (report.delivered, report.failed) == (0, 1)
    assert len(world.quick_sleeps) == 2  # tenacity: three quick tries, two waits between them
    first, second = rows(world)
    assert (first["attempts"], first["last_error"]) == (1, "HTTP 503")
    assert first["next_attempt_at"].replace(tzinfo=None) == (frozen.time_to_freeze + backoff(1)).replace(tzinfo=None)
    assert second["attempts"] == 0  # never tried: it waits on the first
    receiver.fail = None
    frozen.tick(timedelta(seconds=10))
    assert world.deliverer.run().delivered == 0  # not due yet
    frozen.tick(backoff(1))
    assert world.deliverer.run().delivered == 2
    assert [k for k, _ in bodies(receiver)] == ["replied", "converted"]


def test_a_url_failing_for_24_hours_is_paused_listed_and_resumed(make_world, frozen, receiver):
    world = hooked_world(make_world, receiver.url)
    (sara,) = world.add_contacts({"phone": "09121111111"})
    world.event(sara, "replied")
    receiver.fail = 500
    for _ in range(40):
        if world.deliverer.run().paused:
            break
        frozen.tick(timedelta(hours=1))
    with world.engine.connect() as conn:
        (row,) = endpoint_rows(conn, world.config)
    assert row["state"] == "paused" and row["pending"] == 1 and row["last_error"] == "HTTP 500"
    assert row["failing_since"] is not None
    assert frozen.time_to_freeze.replace(tzinfo=None) - row["failing_since"].replace(tzinfo=None) >= timedelta(hours=24)
    receiver.fail = None
    frozen.tick(timedelta(days=1))
    assert world.deliverer.run().delivered == 0  # paused: nothing is sent
    with world.engine.begin() as conn:
        assert resume(conn, world.config) == 1
    assert world.deliverer.run().delivered == 1 and bodies(receiver) == [("replied", sara)]


def test_replay_sends_again_with_the_same_ids_and_the_receiver_drops_them(make_world, frozen, receiver):
    world = hooked_world(make_world, receiver.url)
    (sara,) = world.add_contacts({"phone": "09121111111"})
    world.event(sara, "replied")
    frozen.tick(timedelta(hours=3))
    world.event(sara, "converted", value=3)
    world.deliverer.run()
    with world.engine.begin() as conn:
        from engine.clock import now
        assert replay(conn, world.config, now() - timedelta(hours=1)) == 1
    assert world.deliverer.run().delivered == 1
    assert receiver.repeats == [receiver.accepted[1]["id"]]


def test_settings_check_the_webhooks_and_the_secret_is_never_shown(tmp_path, make_world, receiver, monkeypatch):
    url = receiver.url + "?token=abc123"
    world = hooked_world(make_world, url)
    assert SECRET not in repr(world.config.settings) and "abc123" not in masked_url(url)
    assert SECRET in world.config.settings.secrets()
    env = {**os.environ, "FOLLOWUP_CONFIG": str(world.root / "config"), "COLUMNS": "300"}
    listed = subprocess.run([FOLLOWUP, "webhooks"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "token=***" in listed.stdout and "abc123" not in listed.stdout and SECRET not in listed.stdout
    settings = world.root / "config" / "settings.yaml"
    text = settings.read_text()
    settings.write_text(text.replace("clicked", "bought").replace("${CRM_WEBHOOK_SECRET}", "not-a-secret!"))
    with pytest.raises(ConfigError) as caught:
        load_config(world.root / "config")
    problems = "\n".join(str(p) for p in caught.value.problems)
    assert "webhooks[0].events" in problems and "unknown event bought" in problems
    settings.write_text(text.replace("${CRM_WEBHOOK_SECRET}", "not-a-secret!"))
    with pytest.raises(ConfigError) as caught:
        load_config(world.root / "config")
    problems = "\n".join(str(p) for p in caught.value.problems)
    assert "webhooks[0].secret" in problems and "whsec_" in problems and "not-a-secret" not in problems


def test_the_dashboard_overview_shows_a_paused_url_masked(make_world, frozen, receiver):
    world = hooked_world(make_world, receiver.url + "?token=abc123", **SERVICE_SETTINGS)
    (sara,) = world.add_contacts({"phone": "09121111111"})
    world.event(sara, "replied")
    receiver.fail = 500
    world.deliverer.run()
    frozen.tick(timedelta(hours=25))
    assert world.deliverer.run().paused
    client, key = api_client(world)
    page = client.get("/dashboard", params={"lang": "en"}, headers=auth(key))
    assert page.status_code == 200
    assert "token=***" in page.text and "abc123" not in page.text and SECRET not in page.text
    assert 'class="paused"' in page.text and "HTTP 500" in page.text
