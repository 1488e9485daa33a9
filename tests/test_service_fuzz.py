"""Schemathesis against the API's own OpenAPI spec: no input, valid or not, gets a 500.

Cases are generated from the spec in both modes (schema-conforming and schema-violating bodies,
paths and queries) and sent through the ASGI app with a valid key; every answer must be < 500
and every 4xx must have the documented error shape.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")

from tests.conftest import simple_sequence, winter_sequence  # noqa: E402
from tests.service_support import SERVICE_SETTINGS, api_client, auth  # noqa: E402


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_no_input_gets_a_500(make_world, mode):
    world = make_world([winter_sequence(), simple_sequence("drip")], settings=SERVICE_SETTINGS)
    world.add_contacts({"phone": "09121111111", "external_id": "c1"}, {"email": "b@example.com"})
    client, key = api_client(world)
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", client.app, headers=auth(key))
    seen: set[str] = set()
    statuses: set[int] = set()

    @given(case=schema.as_strategy(mode))
    @settings(max_examples=100, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        seen.add(f"{case.method} {case.path}")
        response = case.call(headers=auth(key))
        statuses.add(response.status_code)
        assert response.status_code < 500, (case.method, case.path, case.body, response.text)
        if response.status_code >= 400:
            body = response.json()
            assert "error" in body and isinstance(body.get("errors"), list), body

    check()
    assert len(seen) >= 4, seen
    assert statuses & {200, 422}, statuses  # the calls really reached the app
