"""engine.service.clicks: a redirect queues its click; the writer stores the queue in one transaction, the
app's shutdown stores what is left, a full queue is written by the request itself, a failed write keeps it."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from engine.models import Engagement
from engine.service import create_app
from engine.service.clicks import ClickWriter
from tests.service_support import api_client
from tests.test_link_redirect import PHONE, link_of, world  # noqa: F401  (the fixture)


def stored(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(Engagement.__table__)).scalar_one()


def follow(client, code: str) -> None:
    assert client.get(f"/l/{code}", headers={"User-Agent": PHONE}, follow_redirects=False).status_code == 302


def test_a_redirect_answers_before_its_click_is_written_and_a_flush_writes_the_queue_at_once(world):
    client, _ = api_client(world)
    writer = client.app.state.ctx.clicks = ClickWriter(world.engine, interval=3600)
    code = link_of(world)["code"]
    follow(client, code)
    follow(client, code)
    assert (writer.pending(), stored(world.engine)) == (2, 0)
    assert writer.flush() == 2
    assert (writer.pending(), stored(world.engine)) == (0, 2)


def test_a_full_queue_is_written_by_the_request_itself(world):
    client, _ = api_client(world)
    writer = client.app.state.ctx.clicks = ClickWriter(world.engine, interval=3600, capacity=2)
    code = link_of(world)["code"]
    follow(client, code)
    follow(client, code)
    assert stored(world.engine) == 0
    follow(client, code)
    assert (writer.pending(), stored(world.engine)) == (0, 3)


def test_the_apps_shutdown_writes_the_queued_clicks(world):
    app = create_app(world.config, engine=world.engine)
    app.state.ctx.clicks = ClickWriter(world.engine, interval=3600)
    code = link_of(world)["code"]
    with TestClient(app) as client:
        follow(client, code)
        assert stored(world.engine) == 0
    assert stored(world.engine) == 1
    follow(TestClient(app), code)  # after the shutdown a click is written in its request
    assert stored(world.engine) == 2


def test_a_failed_write_keeps_the_queue_for_the_next(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/clicks.db")
    writer = ClickWriter(engine, interval=3600)
    writer._pending.append({"at": datetime(2026, 1, 1, tzinfo=timezone.utc), "kind": "clicked", "message_id": 1,
                            "contact_id": 1, "sequence": "s", "touch": "t0", "channel": "sms", "source": "link",
                            "code": "AbCdEfGhIj"})
    with pytest.raises(sa.exc.OperationalError):
        writer.flush()  # no engagements table yet
    assert writer.pending() == 1
    Engagement.__table__.create(engine)
    assert writer.flush() == 1 and writer.pending() == 0 and stored(engine) == 1
