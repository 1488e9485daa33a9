"""Client references unique to a database: a reset database never reuses a reference the panel already has."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from engine.installation import SPAN, client_reference, message_id_of, reference_prefix
from engine.receipts import apply_reports
from providers.base import DeliveryReport, DeliveryState
from tests.fakes.httpserver import FakeHttpServer

from .conftest import World, simple_sequence
from .faults import ANYTIME, KAVE_KEY, FakeKavenegar, kavenegar_entry


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    monkeypatch.setenv("KAVENEGAR_API_KEY", KAVE_KEY)


class DedupingKavenegar(FakeKavenegar):
    """Kavenegar as its REST docs describe ``localid``: a repeated one returns the old record, sends nothing
    (``FardaDev/kavenegar-for-laravel`` ``docs/api-endpoints.md``, "Duplicate Prevention")."""

    def __init__(self):
        super().__init__()
        self.handsets: list[str] = []  # receptors a message really went to

    def __call__(self, req):
        if req.path.endswith("/sms/send.json") and req.form["localid"] in self.accepted:
            return self.ok(req.form["localid"], req.form["receptor"])
        reply = super().__call__(req)
        if req.path.endswith("/sms/send.json"):
            self.handsets.append(req.form["receptor"])
        return reply


def world(path, url) -> World:
    w = World(path, f"sqlite:///{path}/followup.db", [simple_sequence("a", after="1h")], settings={
        "send_window": ANYTIME, "providers": {"sms": [kavenegar_entry(url)],
                                              "email": [{"name": "mem-email", "type": "memory"}]}})
    w.enroll("a", *w.add_contacts({"phone": "09120000001", "first_name": "n"}))
    return w


def test_a_reset_database_sends_under_references_of_its_own(tmp_path, frozen):
    panel = DedupingKavenegar()
    with FakeHttpServer(panel) as server:
        before = world(tmp_path / "before", server.url)
        before.dispatcher.tick()
        after = world(tmp_path / "after-reset", server.url)  # a fresh database: message ids start at 1 again
        after.dispatcher.tick()
    [first], [second] = before.messages(touch="t0"), after.messages(touch="t0")
    assert first["id"] == second["id"] == 1
    assert second["status"] == "sent"
    assert panel.handsets == ["09120000001", "09120000001"]  # the second one left too
    assert len(set(panel.accepted)) == 2


def test_a_reference_is_a_positive_long_that_parses_back_only_with_our_prefix():
    largest = client_reference(9_000_000, SPAN - 1)
    assert 0 < int(largest) < 2**63
    ref = client_reference(4321, 77)
    assert ref == "4321000000000077" and message_id_of(4321, ref) == 77
    assert message_id_of(4322, ref) is None  # another installation's message
    assert message_id_of(4321, "77") is None and message_id_of(4321, "msg-77") is None


def test_db_upgrade_draws_the_prefix_once(tmp_path, frozen):
    w = World(tmp_path, f"sqlite:///{tmp_path}/followup.db", [simple_sequence("a")])
    with w.engine.begin() as conn:
        prefix = reference_prefix(conn)
        assert 1 <= prefix <= 9_000_000
        assert reference_prefix(conn) == prefix == w.dispatcher.reference_prefix
        assert conn.execute(sa.text("SELECT count(*) FROM installation")).scalar_one() == 1


def test_receipts_by_reference_match_only_this_databases_messages(tmp_path, frozen):
    w = World(tmp_path, f"sqlite:///{tmp_path}/followup.db", [simple_sequence("a")])
    w.enroll("a", *w.add_contacts({"phone": "09120000001", "first_name": "n"}))
    w.tick()
    [row] = w.messages(status="sent")
    prefix = w.dispatcher.reference_prefix
    foreign = client_reference(prefix % 9_000_000 + 1, row["id"])  # the same id in another database
    with w.engine.begin() as conn:
        assert apply_reports(conn, w.config, "mem-sms", [DeliveryReport(None, DeliveryState.DELIVERED,
                                                                        message_id=foreign)]) == 0
        assert apply_reports(conn, w.config, "mem-sms", [DeliveryReport(None, DeliveryState.DELIVERED,
                                                                        message_id=w.reference(row["id"]))]) == 1
    assert w.messages(id=row["id"])[0]["status"] == "delivered"
