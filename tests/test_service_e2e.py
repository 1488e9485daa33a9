"""End to end: a real uvicorn server and a real worker process on one SQLite file.

A conversion posted to the API between touch 1 and touch 2 stops touch 2.
"""
from __future__ import annotations

import json
import time
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from engine.apikeys import create_key
from engine.clock import to_utc
from engine.models import Message, WorkerStatus
from tests.service_support import SERVICE_SETTINGS, followup, free_port, stop, wait_for_server

pytestmark = pytest.mark.slow


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path}/followup.db"


def wait_until(check, what: str, timeout: float = 30.0):
    """Poll the database while the real worker works (its ticks are what we wait for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_conversion_posted_between_touch_1_and_touch_2_stops_touch_2(make_world, tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    sequence = {"name": "quick", "touches": [
        {"name": f"t{i}", "after": "0s" if i == 0 else "3s", "channel": "sms", "template": "plain.sms.j2"}
        for i in range(3)]}
    world = make_world([sequence], settings={
        **SERVICE_SETTINGS, "send_window": {"start": "00:00", "end": "24:00", "days": "all"},
        "frequency_cap": {"per_day": 10},
        "providers": {"sms": [{"name": "file-sms", "type": "file", "path": str(outbox)}],
                      "email": [{"name": "file-email", "type": "file", "path": str(outbox)}]}})
    with world.engine.begin() as conn:
        key = create_key(conn, "e2e")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = followup("serve", "--host", "127.0.0.1", "--port", str(port), config=world.config.dir)
    worker = followup("worker", "--interval", "0.3", config=world.config.dir)
    try:
        wait_for_server(base, server)
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert api.post("/api/v1/contacts", json={"phone": "09121234567", "first_name": "Sara"}).status_code == 200
        enrolled = api.post("/api/v1/enrollments", json={"sequence": "quick", "contact": "09121234567"})
        assert enrolled.json()["enrolled"] == 1
        table = Message.__table__

        def touch(name):
            with world.engine.connect() as conn:
                return conn.execute(sa.select(table).where(table.c.touch == name)).mappings().one()

        first = wait_until(lambda: touch("t0") if touch("t0")["status"] == "sent" else None, "touch 1 to be sent")
        converted = api.post("/api/v1/events", json={"contact": "+989121234567", "type": "converted",
                                                     "idempotency_key": "order-1"})
        assert converted.json()["recorded"] is True and converted.json()["ended"] == ["quick"]
        would_be_due = to_utc(first["sent_at"]) + timedelta(seconds=3)

        def ticked_after_due():
            with world.engine.connect() as conn:
                last = conn.execute(sa.select(sa.func.max(WorkerStatus.__table__.c.last_tick_at))).scalar()
            return last and to_utc(last) > would_be_due + timedelta(seconds=0.5)

        wait_until(ticked_after_due, "the worker to tick past touch 2's due time")
        assert touch("t1")["status"] == "cancelled" and touch("t2")["status"] == "cancelled"
        lines = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
        assert len(lines) == 1
        timeline = api.get("/api/v1/contacts/09121234567/timeline").json()
        assert any(i["event"] == "cancelled" and i["touch"] == "t1" and "converted" in i["reason"]
                   for i in timeline["items"])
        health = httpx.get(base + "/healthz").json()
        assert health["database"] == "ok" and health["last_tick_at"]
        assert httpx.get(base + "/api/v1/contacts/x/timeline").status_code == 401
    finally:
        server_log = stop(server)
        stop(worker)
    assert key not in server_log and "09121234567" not in server_log
