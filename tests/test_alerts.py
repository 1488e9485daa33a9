"""Alerts to ops: conditions read on a frozen clock with the evaluator called directly, memory providers as
the way out; the settings' errors with file and line; ``followup alerts test`` and ``followup alerts`` as a
user runs them."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.alerts import Alerts, states
from engine.errors import ConfigError
from engine.models import DeliveryLog, Message, ProviderState
from engine.settings import load_settings
from providers.base import AccountState
from providers.errors import ProviderBlockedError
from tests.conftest import simple_sequence

UTC = timezone.utc
OPS_PHONE = "+989121110000"
OPS_EMAIL = "ops@shop.example"
ALERTS = {"to": [{"sms": "09121110000"}, {"email": OPS_EMAIL}],
          "on": ["provider_paused", {"credit_below": 100000}, {"queue_lag_over": "10m"}, {"worker_silent_for": "5m"}]}
PROVIDERS = {"sms": [{"name": "mem-sms", "type": "memory"}, {"name": "mem-sms2", "type": "memory"}],
             "email": [{"name": "mem-email", "type": "memory"}]}


@pytest.fixture
def world(make_world, frozen):
    return make_world([simple_sequence("quick")], settings={"alerts": ALERTS, "providers": PROVIDERS})


def alerts_of(world, owner: str = "ops-watcher") -> Alerts:
    """An evaluator as another live worker runs it (the world's dispatcher is the worker watched)."""
    return Alerts(world.config, world.engine, world.providers, world.dispatcher.sender, owner)


def to_ops(world) -> list[tuple[str, str, str]]:
    """(provider, recipient, text) of every alert the providers took, in order."""
    return [(p.name, m.to, m.text) for group in world.providers.values() for p in group for m in p.outbox
            if m.to in (OPS_PHONE, OPS_EMAIL)]


def pause(world, name: str, minutes: int = 30) -> None:
    table = ProviderState.__table__
    at = datetime.now(UTC)
    with world.engine.begin() as conn:
        conn.execute(sa.delete(table).where(table.c.name == name))
        conn.execute(sa.insert(table).values(name=name, state="paused", reason="no credit",
                                             paused_until=at + timedelta(minutes=minutes), updated_at=at))


def resume(world, name: str) -> None:
    table = ProviderState.__table__
    with world.engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.name == name).values(state="active", paused_until=None))


def test_a_paused_provider_alerts_once_then_a_recovery_note_and_never_twice_within_the_hour(world, frozen):
    watcher = alerts_of(world)
    assert watcher.run() == [] and to_ops(world) == []  # all well: nobody is told anything

    pause(world, "mem-sms2")
    frozen.tick(timedelta(minutes=1))
    assert watcher.run() == [("provider_paused:mem-sms2", "firing")]
    told = to_ops(world)
    assert [(p, to) for p, to, _ in told] == [("mem-sms", OPS_PHONE), ("mem-email", OPS_EMAIL)]
    assert all(text.startswith("followup alert: provider mem-sms2 is paused") and "no credit" in text
               for _, _, text in told)
    assert "لغو11" not in told[0][2]  # no opt-out footer: ops are not a marketing list

    for _ in range(5):  # still paused: not told again
        frozen.tick(timedelta(minutes=1))
        assert watcher.run() == []
    assert len(to_ops(world)) == 2

    resume(world, "mem-sms2")
    frozen.tick(timedelta(minutes=1))
    assert watcher.run() == [("provider_paused:mem-sms2", "clear")]
    notes = [m for m in to_ops(world) if m[2].startswith("followup recovered")]
    assert len(notes) == 2 and all(t == "followup recovered: provider mem-sms2 is active again" for _, _, t in notes)

    pause(world, "mem-sms2")  # paused again within the hour of the first alert: held back
    frozen.tick(timedelta(minutes=1))
    assert watcher.run() == [] and len(to_ops(world)) == 4
    with world.engine.connect() as conn:
        row = states(conn)["provider_paused:mem-sms2"]
    assert row["state"] == "firing" and row["notified"] == "clear"

    frozen.tick(timedelta(minutes=53))  # an hour after the first alert, and still paused: now ops are told
    pause(world, "mem-sms2")
    assert watcher.run() == [("provider_paused:mem-sms2", "firing")]
    assert len(to_ops(world)) == 6

    with world.engine.connect() as conn:  # alerts are not messages: nothing in the queue, the log or the stats
        assert conn.execute(sa.select(sa.func.count()).select_from(Message.__table__)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(DeliveryLog.__table__)).scalar() == 0


def test_an_alert_fails_over_to_the_next_provider(world, frozen):
    world.sms.fail_next(ProviderBlockedError("credit exhausted"))
    world.enroll("quick", *world.add_contacts({"phone": "09121234567", "first_name": "Sara"}))
    frozen.tick(timedelta(minutes=11))  # outside nothing: the touch is due and nobody ticked
    assert alerts_of(world).run() == [("queue_lag_over", "firing")]
    assert [(p, to) for p, to, _ in to_ops(world)] == [("mem-sms2", OPS_PHONE), ("mem-email", OPS_EMAIL)]
    assert "the oldest due message is 11m late (over 10m); 1 due" in to_ops(world)[0][2]


def test_with_every_sms_provider_paused_the_alert_still_tries_them(world, frozen):
    pause(world, "mem-sms")
    pause(world, "mem-sms2")
    assert sorted(alerts_of(world).run()) == [("provider_paused:mem-sms", "firing"), ("provider_paused:mem-sms2", "firing")]
    assert sorted((p, to) for p, to, _ in to_ops(world)) == [("mem-email", OPS_EMAIL)] * 2 + [("mem-sms", OPS_PHONE)] * 2


def test_queue_lag_clears_once_the_worker_catches_up(world, frozen):
    world.enroll("quick", *world.add_contacts({"phone": "09121234567", "first_name": "Sara"}))
    watcher = alerts_of(world)
    frozen.tick(timedelta(minutes=9))
    assert watcher.run() == []  # 9 minutes late is under 10m
    frozen.tick(timedelta(minutes=2))
    assert watcher.run() == [("queue_lag_over", "firing")]
    world.tick()
    frozen.tick(timedelta(minutes=1))
    assert watcher.run() == [("queue_lag_over", "clear")]
    assert [t for _, to, t in to_ops(world) if to == OPS_PHONE][-1].startswith(
        "followup recovered: the queue is on time again")
    sara = [m for m in world.sms.outbox if m.to == "+989121234567"]
    assert len(sara) == 1  # the contact's touch, the only message not to ops


def test_a_silent_worker_is_reported_by_another_and_never_by_itself(world, frozen):
    world.tick()  # the watched worker's heartbeat
    itself = alerts_of(world, owner=world.dispatcher.worker_id)
    other = alerts_of(world)
    frozen.tick(timedelta(minutes=6))
    assert itself.evaluate() == []  # its own heartbeat is not read: a silent worker can't report itself
    assert other.run() == [(f"worker_silent_for:{world.dispatcher.worker_id}", "firing")]
    assert "has not ticked for 6m" in to_ops(world)[0][2]
    world.tick()
    frozen.tick(timedelta(minutes=1))
    assert other.run() == [(f"worker_silent_for:{world.dispatcher.worker_id}", "clear")]


def test_a_worker_that_stops_cleanly_is_not_silent(world, frozen):
    world.tick()
    world.dispatcher.retire()
    frozen.tick(timedelta(minutes=30))
    assert alerts_of(world).run() == [] and to_ops(world) == []


def test_credit_is_asked_at_most_every_ten_minutes(world, frozen):
    asked = []

    def check():
        asked.append(datetime.now(UTC))
        return AccountState(ok=True, detail="ok", credit=85000)

    world.sms.check = check
    watcher = alerts_of(world)
    assert watcher.run() == [("credit_below:mem-sms", "firing")]
    assert "provider mem-sms has credit 85,000, below 100,000" in to_ops(world)[0][2]
    for _ in range(9):
        frozen.tick(timedelta(minutes=1))
        watcher.run()
    assert len(asked) == 1
    frozen.tick(timedelta(minutes=1))
    watcher.run()
    assert len(asked) == 2


def test_one_worker_of_the_cluster_alerts_at_most_once_a_minute(world, frozen):
    pause(world, "mem-sms2")
    first, second = alerts_of(world, "worker-a"), alerts_of(world, "worker-b")
    assert first.run() and second.run() == []  # the lease is first's
    resume(world, "mem-sms2")
    frozen.tick(timedelta(seconds=30))
    assert first.run() == []  # not yet a minute since its last round
    frozen.tick(timedelta(seconds=30))
    assert first.run() == [("provider_paused:mem-sms2", "clear")]


# -- settings --------------------------------------------------------------------------------------
def write_settings(tmp_path: Path, alerts_yaml: str) -> Path:
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "settings.yaml").write_text(
        "providers:\n  sms: [{name: s, type: memory}]\n  email: [{name: e, type: memory}]\n" + alerts_yaml,
        encoding="utf-8")
    return tmp_path


def test_the_settings_parse(tmp_path):
    settings = load_settings(write_settings(tmp_path, "templates_dir: templates\nalerts:\n"
                                                      "  to: [{sms: '0912 111 0000'}, {email: Ops@Shop.example}]\n"
                                                      "  on: [provider_paused, {credit_below: 100000}, "
                                                      "{queue_lag_over: 10m}, {worker_silent_for: 5m}]\n"))
    assert settings.alerts.to == (("sms", OPS_PHONE), ("email", OPS_EMAIL))
    assert [c.describe() for c in settings.alerts.on] == ["provider_paused", "credit_below: 100000",
                                                          "queue_lag_over: 10m", "worker_silent_for: 5m"]


@pytest.mark.parametrize("text, where, says", [
    ("alerts: [ops]\n", "settings.yaml:5: alerts", "must be a mapping"),
    ("alerts:\n  to: [{sms: '12'}]\n  on: [provider_paused]\n", "settings.yaml:6: alerts.to[0].sms", "not a phone"),
    ("alerts:\n  to: [{fax: '0912'}]\n  on: [provider_paused]\n", "settings.yaml:6: alerts.to[0]", "{sms:"),
    ("alerts:\n  to: [{email: ops}]\n  on: [provider_paused]\n", "settings.yaml:6: alerts.to[0].email",
     "not a valid email"),
    ("alerts:\n  to: [{email: ops@shop.example}]\n  on:\n    - provider_paused\n    - {queue_lag: 10m}\n",
     "settings.yaml:9: alerts.on[1]", "is not a condition"),
    ("alerts:\n  to: [{email: ops@shop.example}]\n  on:\n    - {credit_below: lots}\n",
     "settings.yaml:8: alerts.on[0].credit_below", "must be a positive amount"),
    ("alerts:\n  to: [{email: ops@shop.example}]\n  on:\n    - {worker_silent_for: 5}\n",
     "settings.yaml:8: alerts.on[0].worker_silent_for", "has no unit"),
    ("alerts:\n  to: [{email: ops@shop.example}]\n  on: [{queue_lag_over: 30s}]\n",
     "settings.yaml:7: alerts.on[0].queue_lag_over", "shorter than a minute"),
    ("alerts:\n  to: [{email: ops@shop.example}]\n  on: [provider_paused, provider_paused]\n",
     "settings.yaml:7: alerts.on[1]", "listed twice"),
    ("alerts:\n  to: [{email: ops@shop.example}]\n  on: [provider_paused]\n  every: 1m\n",
     "settings.yaml:8: alerts.every", "unknown key"),
])
def test_bad_alert_settings_say_where(tmp_path, monkeypatch, text, where, says):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings(write_settings(tmp_path, "templates_dir: templates\n" + text))
    found = [str(p) for p in caught.value.problems]
    assert any(p.startswith(where + ":") and says in p for p in found), found


def test_an_alert_needs_a_provider_for_its_channel(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "templates").mkdir()
    (tmp_path / "settings.yaml").write_text(
        "templates_dir: templates\nproviders:\n  email: [{name: e, type: memory}]\n"
        "alerts: {to: [{sms: '09121110000'}], on: [provider_paused]}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert any(str(p).startswith("settings.yaml:4: alerts.to[0].sms: no sms provider is configured")
               for p in caught.value.problems)


# -- the command line ------------------------------------------------------------------------------
FOLLOWUP = str(Path(sys.executable).parent / "followup")
ROOT = Path(__file__).resolve().parent.parent


def test_alerts_test_and_the_list_through_the_command_line(tmp_path):
    for part in ("config", "templates"):
        shutil.copytree(ROOT / part, tmp_path / part)
    settings = tmp_path / "config/settings.yaml"
    settings.write_text(settings.read_text(encoding="utf-8") + "alerts:\n"
                        "  to: [{sms: '09121110000'}, {email: ops@shop.example}]\n"
                        "  on: [provider_paused, {queue_lag_over: 10m}]\n", encoding="utf-8")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FOLLOWUP_")},
           "FOLLOWUP_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}", "NO_COLOR": "1", "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([FOLLOWUP, "--config", str(tmp_path / "config"), *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, encoding="utf-8", timeout=60)

    assert run("db", "upgrade").returncode == 0
    tested = run("alerts", "test")
    assert tested.returncode == 0, tested.stderr
    assert tested.stdout.splitlines() == [f"sms {OPS_PHONE}: sent via sandbox-sms",
                                          f"email {OPS_EMAIL}: sent via sandbox-email"]
    outbox = [json.loads(line) for line in (tmp_path / "var/outbox.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(m["channel"], m["to"]) for m in outbox] == [("sms", OPS_PHONE), ("email", OPS_EMAIL)]
    assert all(m["text"].startswith("followup test alert") for m in outbox)

    listed = run("alerts")
    assert listed.returncode == 0, listed.stderr
    assert "provider_paused" in listed.stdout and "queue_lag_over: 10m" in listed.stdout
    assert f"to: sms {OPS_PHONE}, email {OPS_EMAIL}" in listed.stdout


@pytest.mark.slow
def test_a_real_worker_alerts_about_a_silent_peer_and_removes_its_own_heartbeat_when_stopped(make_world, tmp_path):
    from engine.models import WorkerStatus
    from tests.service_support import followup, stop

    outbox = tmp_path / "outbox.jsonl"
    world = make_world([simple_sequence("quick")], settings={"alerts": ALERTS, "providers": {
        "sms": [{"name": "file-sms", "type": "file", "path": str(outbox)}],
        "email": [{"name": "file-email", "type": "file", "path": str(outbox)}]}})
    table = WorkerStatus.__table__
    with world.engine.begin() as conn:  # a peer that stopped ticking ten minutes ago
        conn.execute(sa.insert(table).values(name="worker:peer", owner="peer",
                                             last_tick_at=datetime.now(UTC) - timedelta(minutes=10)))
    worker = followup("worker", "--interval", "0.3", config=world.config.dir)
    try:
        deadline = time.monotonic() + 30
        while not (outbox.exists() and len(outbox.read_text(encoding="utf-8").splitlines()) >= 2):
            assert time.monotonic() < deadline and worker.poll() is None, "no alert from the worker"
            time.sleep(0.1)
    finally:
        log = stop(worker)
    sent = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    assert sorted(m["to"] for m in sent) == [OPS_PHONE, OPS_EMAIL], log
    assert all("worker peer has not ticked for 10m" in m["text"] for m in sent)
    with world.engine.connect() as conn:
        assert [r.name for r in conn.execute(sa.select(table.c.name).where(table.c.name.like("worker:%")))] == \
            ["worker:peer"]  # the stopped worker's own heartbeat is gone
