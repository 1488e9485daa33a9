"""`followup providers`, `providers check` and `providers resume`, as a user runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from engine.models import ProviderState
from tests.fakes.httpserver import FakeHttpServer, Reply

from .conftest import World, simple_sequence

FOLLOWUP = str(Path(sys.executable).parent / "followup")
DATA = Path(__file__).parent / "data" / "kavenegar"
GOOD, BAD = "GOOD-KEY-1234567890", "BAD-KEY-0987654321"


def kavenegar(req):
    if req.path == f"/v1/{GOOD}/account/info.json":
        return Reply(200, json.loads((DATA / "account_info.json").read_text()))
    return Reply(403, {"return": {"status": 403, "message": "کلید API نامعتبر است"}, "entries": None})


def world_with(tmp_path, server_url: str) -> World:
    return World(tmp_path, f"sqlite:///{tmp_path}/f.db", [simple_sequence("a")], settings={"providers": {
        "sms": [{"name": "kave", "type": "kavenegar", "api_key": "${KAVENEGAR_API_KEY}", "sender": "10004346",
                 "base_url": server_url + "/v1", "rate": "20/s"},
                {"name": "backup", "type": "memory"}],
        "email": [{"name": "mail", "type": "memory"}]}})


def run(world: World, *args: str, key: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FOLLOWUP_CONFIG": str(world.root / "config"), "KAVENEGAR_API_KEY": key, "COLUMNS": "200"}
    return subprocess.run([FOLLOWUP, *args], env=env, capture_output=True, text=True, timeout=60)


def test_check_tells_good_and_bad_credentials_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("KAVENEGAR_API_KEY", GOOD)
    with FakeHttpServer(kavenegar) as server:
        world = world_with(tmp_path, server.url)
        good = run(world, "providers", "check", key=GOOD)
        bad = run(world, "providers", "check", key=BAD)
    assert good.returncode == 0, good.stderr
    assert "kave (kavenegar, sms): ok" in good.stdout and "credit 15,000" in good.stdout
    assert bad.returncode == 1
    assert "kave (kavenegar, sms): PROBLEM" in bad.stdout
    assert BAD not in bad.stdout + bad.stderr  # the key travels in the URL path: it is masked


def test_check_says_unreachable_in_words_not_markup(tmp_path, monkeypatch):
    monkeypatch.setenv("KAVENEGAR_API_KEY", GOOD)
    world = world_with(tmp_path, "http://127.0.0.1:9")
    result = run(world, "providers", "check", key=GOOD)
    assert result.returncode == 1
    assert "kave (kavenegar, sms): unreachable: " in result.stdout and "[red]" not in result.stdout, result.stdout


def test_list_shows_a_pause_and_resume_lifts_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KAVENEGAR_API_KEY", GOOD)
    world = world_with(tmp_path, "http://127.0.0.1:9")
    with world.engine.begin() as conn:
        conn.execute(sa.insert(ProviderState.__table__).values(
            name="kave", state="paused", reason="[418] insufficient credit",
            paused_until=datetime.now(timezone.utc) + timedelta(minutes=30), updated_at=datetime.now(timezone.utc)))
    listed = run(world, "providers", key=GOOD)
    assert listed.returncode == 0, listed.stderr
    line = next(l for l in listed.stdout.splitlines() if " kavenegar " in l)
    assert "primary" in line and "paused until" in line and "insufficient credit" in line and "20/s" in line
    assert "failover 1" in listed.stdout
    stats = run(world, "stats", key=GOOD)
    assert "provider kave is paused" in stats.stdout
    assert run(world, "providers", "resume", "kave", key=GOOD).returncode == 0
    after = run(world, "providers", key=GOOD)
    assert "paused" not in next(l for l in after.stdout.splitlines() if " kavenegar " in l)
    unknown = run(world, "providers", "resume", "nope", key=GOOD)
    assert unknown.returncode == 2 and "no provider named 'nope'" in unknown.stderr


def test_check_says_how_receipts_and_inbound_arrive_and_where_to_point_the_panel(tmp_path, monkeypatch):
    secret = "cb-7Qd2mV9xK4pL8sT1wZ6yB3nR"
    monkeypatch.setenv("KAVENEGAR_API_KEY", GOOD)
    monkeypatch.setenv("KAVE_CALLBACK_SECRET", secret)
    with FakeHttpServer(kavenegar) as server:
        world = World(tmp_path, f"sqlite:///{tmp_path}/f.db", [simple_sequence("a")], settings={"providers": {
            "sms": [{"name": "kave", "type": "kavenegar", "api_key": "${KAVENEGAR_API_KEY}", "sender": "10004346",
                     "base_url": server.url + "/v1", "callback_secret": "${KAVE_CALLBACK_SECRET}"},
                    {"name": "kave2", "type": "kavenegar", "api_key": "${KAVENEGAR_API_KEY}", "sender": "10004347",
                     "base_url": server.url + "/v1"},
                    {"name": "tw", "type": "twilio", "account_sid": "AC00000000000000000000000000000001",
                     "auth_token": "twilio-token-123", "sender": "+14155552671", "base_url": "http://127.0.0.1:9"}],
            "email": [{"name": "mail", "type": "console"}]}})
        monkeypatch.setenv("FOLLOWUP_PUBLIC_URL", "https://hooks.shop.example")
        result = run(world, "providers", "check", key=GOOD)
    lines = result.stdout.splitlines()
    setup = {lines[i].split(" ")[0]: lines[i + 1].strip() for i in range(len(lines) - 1) if lines[i + 1].startswith("  ")}
    assert setup["kave"] == ("receipts: poll + push; inbound: poll + push; "
                             "callback URL: https://hooks.shop.example/webhooks/kave/cb********nR")
    assert setup["kave2"] == "receipts: poll (push: set callback_secret); inbound: poll (push: set callback_secret)"
    assert setup["tw"] == "receipts: poll + push; inbound: push; callback URL: https://hooks.shop.example/webhooks/tw"
    assert setup["mail"] == "receipts: none; inbound: none"  # the console provider
    assert secret not in result.stdout + result.stderr
