"""``followup providers check``: how each configured provider's receipts and inbound SMS arrive, and whether
its pushes can be read (the setting they need is set), as a user runs it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli_providers import delivery_setup
from providers.registry import create_provider
from tests.fakes.httpserver import FakeHttpServer, Reply
from tests.provider_support import load_payload

from .conftest import World, simple_sequence

FOLLOWUP = str(Path(sys.executable).parent / "followup")
SECRET = "cb-7Qd2mV9xK4pL8sT1wZ6yB3nR"
URL = "https://hooks.shop.example"
GHASEDAK_NOTE = "push: none (Ghasedak's panel callback is not read: its payload is not documented)"


@pytest.mark.parametrize("settings, expected", [
    ({"type": "kavenegar", "api_key": "k" * 20, "sender": "1000", "callback_secret": SECRET},
     f"receipts: poll + push; inbound: poll + push; callback URL: {URL}/webhooks/p/cb********nR"),
    ({"type": "kavenegar", "api_key": "k" * 20, "sender": "1000"},
     "receipts: poll (push: set callback_secret); inbound: poll (push: set callback_secret)"),
    ({"type": "smsir", "api_key": "k" * 20, "sender": "3000"}, "receipts: poll; inbound: poll"),
    ({"type": "melipayamak", "api_key": "k" * 20, "sender": "5000"}, "receipts: poll; inbound: poll"),
    ({"type": "ippanel", "api_key": "k" * 20, "sender": "+983000505"}, "receipts: poll; inbound: poll"),
    ({"type": "ghasedak", "api_key": "k" * 20, "sender": "3000"}, f"receipts: poll; inbound: poll; {GHASEDAK_NOTE}"),
    ({"type": "twilio", "account_sid": "AC" + "0" * 32, "auth_token": "t" * 10, "sender": "+14155552671"},
     f"receipts: poll + push; inbound: push; callback URL: {URL}/webhooks/p"),
    ({"type": "sendgrid", "api_key": "k" * 20, "from": "a@shop.example", "webhook_key": "MFkw"},
     f"receipts: push; callback URL: {URL}/webhooks/p"),
    ({"type": "sendgrid", "api_key": "k" * 20, "from": "a@shop.example"}, "receipts: none (push: set webhook_key)"),
    ({"type": "mailgun", "api_key": "k" * 20, "domain": "mg.shop.example", "from": "a@shop.example",
      "webhook_signing_key": "s" * 20}, f"receipts: push; callback URL: {URL}/webhooks/p"),
    ({"type": "mailgun", "api_key": "k" * 20, "domain": "mg.shop.example", "from": "a@shop.example",
      "webhook_key": "s" * 20}, f"receipts: push; callback URL: {URL}/webhooks/p"),
    ({"type": "mailgun", "api_key": "k" * 20, "domain": "mg.shop.example", "from": "a@shop.example"},
     "receipts: none (push: set webhook_signing_key)"),
    ({"type": "smtp", "host": "smtp.shop.example", "port": 25, "from": "a@shop.example"}, "receipts: none"),
])
def test_each_type_says_how_receipts_and_inbound_arrive(settings, expected):
    assert delivery_setup(create_provider({"name": "p", **settings}), URL) == expected


def test_the_real_command_reports_ghasedak_as_poll_only(tmp_path, monkeypatch):
    monkeypatch.setenv("GHASEDAK_API_KEY", "g" * 24)
    def ghasedak(req):
        if req.path.endswith("/GetAccountInformation"):
            return Reply(200, load_payload("ghasedak", "account.json"))
        return Reply(404, "no route")

    with FakeHttpServer(ghasedak) as server:
        world = World(tmp_path, f"sqlite:///{tmp_path}/f.db", [simple_sequence("a")], settings={"providers": {
            "sms": [{"name": "gh", "type": "ghasedak", "api_key": "${GHASEDAK_API_KEY}", "sender": "30005088",
                     "base_url": server.url}],
            "email": [{"name": "mail", "type": "console"}]}})
        env = {**os.environ, "FOLLOWUP_CONFIG": str(world.root / "config"), "COLUMNS": "250"}
        result = subprocess.run([FOLLOWUP, "providers", "check"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("gh (ghasedak, sms): ok"))
    assert lines[at + 1].strip() == f"receipts: poll; inbound: poll; {GHASEDAK_NOTE}"
