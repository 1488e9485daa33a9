"""Ghasedak's panel callback: offered, but its payload is documented nowhere we could find, so it is not read.

Receipts and inbound SMS from Ghasedak are polled (``CheckSmsStatus``, ``GetReceivedSmses``); the adapter's
docstring lists what was searched. These tests pin what a user sees: no ``callback_secret`` setting, a 404
at the callback route, and ``providers check`` saying poll-only and why.
"""
from __future__ import annotations

import pytest

from engine.cli_providers import delivery_setup
from providers.errors import ProviderConfigError
from providers.registry import create_provider
from tests.conftest import simple_sequence
from tests.service_support import SERVICE_SETTINGS, api_client

SECRET = "cb-7Qd2mV9xK4pL8sT1wZ6yB3nR"
GHASEDAK = {"name": "ghasedak", "type": "ghasedak", "api_key": "ghasedak-api-key-0123456789", "sender": "30005088"}


def test_a_callback_secret_is_refused_with_the_settings_ghasedak_takes():
    with pytest.raises(ProviderConfigError) as info:
        create_provider({**GHASEDAK, "callback_secret": SECRET})
    assert "callback_secret" in str(info.value) and "is not a setting of a 'ghasedak' provider" in str(info.value)


def test_providers_check_says_poll_only_and_why():
    provider = create_provider(GHASEDAK)
    assert provider.pushes == frozenset()
    assert delivery_setup(provider, "https://hooks.shop.example") == (
        "receipts: poll; inbound: poll; push: none (Ghasedak's panel callback is not read: its payload is not "
        "documented)")


def test_the_callback_route_answers_404_for_ghasedak(make_world):
    world = make_world([simple_sequence("drip")], settings={
        **SERVICE_SETTINGS, "providers": {"sms": [GHASEDAK], "email": [{"name": "mem-email", "type": "memory"}]}})
    client, _ = api_client(world)
    for body in (b"messageId=1&status=14", b'{"messageId": "1", "status": 14}'):
        response = client.post(f"/webhooks/ghasedak/{SECRET}", content=body)
        assert response.status_code == 404 and response.json() == {"error": "not found"}
