"""Marketing hands over to sales and the shared KPIs see it: a reply hands a lead to a rep (a signed
``handed_off`` webhook), the rep records the outcome through the CLI and the API (a signed ``lead_outcome``
webhook), and ``followup kpi`` counts the handoffs, wins, objections and revenue per rep from those records."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.control import list_sequences
from engine.webhook_delivery import Deliverer
from tests.service_support import SERVICE_SETTINGS, api_client, auth
from tests.test_handoff import HANDOFF, SARA, TEAM
from tests.test_links import BASE, TEMPLATES, link_sequence
from tests.test_scoring import SALES_TEMPLATES
from tests.webhook_receiver import SECRET, Receiver, settings_for

ALI = {"phone": "09127654321", "first_name": "علی", "last_name": "کریمی", "source": "instagram"}


@pytest.fixture
def receiver(monkeypatch):
    monkeypatch.setenv("CRM_WEBHOOK_SECRET", SECRET)
    with Receiver() as hooks:
        yield hooks


@pytest.fixture
def world(make_world, frozen, receiver, monkeypatch):
    world = make_world([link_sequence(handoff=HANDOFF)], templates={**TEMPLATES, **SALES_TEMPLATES},
                       settings={**SERVICE_SETTINGS, "links": {"base_url": BASE}, "sales": {"team": TEAM},
                                 "service": {"public_url": "https://f.shop.example"},
                                 **settings_for(receiver.url, events=("handed_off", "lead_outcome", "converted"))})
    world.sara, world.ali = world.add_contacts({**SARA, "source": "google"}, ALI)
    world.enroll("coats", world.sara, world.ali)
    world.tick()
    world.deliverer = Deliverer(world.config, world.engine, sleep=lambda _: None)
    monkeypatch.setenv("FOLLOWUP_CONFIG", str(world.root / "config"))
    return world


def delivered(world, receiver) -> list[tuple[str, int, dict]]:
    """Deliver the outbox; what the receiver took this time (type, contact id, data without the contact)."""
    before = len(receiver.accepted)
    world.deliverer.run()
    assert receiver.rejected == [] and receiver.repeats == []
    return [(b["type"], b["data"]["contact"]["id"], {k: v for k, v in b["data"].items() if k != "contact"})
            for b in receiver.accepted[before:]]


def kpi(by: str | None = None) -> dict[str, dict]:
    answer = CliRunner().invoke(cli, ["kpi", "--json", *(["--by", by] if by else [])])
    assert answer.exit_code == 0, answer.output
    return {g["group"]: g for g in json.loads(answer.stdout)["groups"]}


def test_a_lead_handed_off_lost_and_another_won_reach_the_webhook_and_the_kpis(world, receiver):
    world.event(world.sara, "replied")
    assert delivered(world, receiver) == [
        ("handed_off", world.sara, {"sequence": "coats", "rep": "Mina", "score": 20, "fired_by": "replied"})]

    lost = CliRunner().invoke(cli, ["lead", "lost", SARA["phone"], "--objection", "price"])
    assert lost.exit_code == 0, lost.output
    assert delivered(world, receiver) == [
        ("lead_outcome", world.sara, {"outcome": "lost", "value": None, "objection": "price", "rep": "Mina"})]

    (everything,) = kpi().values()
    assert everything["leads"] == 2  # the reps' own _sales enrollments are not leads
    assert (everything["handoffs"], everything["handoff_win_rate"], everything["revenue"]) == (1, 0.0, 0)
    assert everything["top_objections"] == [{"objection": "price", "count": 1, "share": 1.0}]
    assert list(kpi("rep")) == ["(none)", "Mina"]  # Ali has no handoff yet
    assert kpi("rep")["Mina"]["top_objections"][0]["objection"] == "price"

    world.event(world.ali, "replied")  # round robin by weight: Omid (0 of 1) before Mina (1 of 2)
    assert delivered(world, receiver) == [
        ("handed_off", world.ali, {"sequence": "coats", "rep": "Omid", "score": 20, "fired_by": "replied"})]
    client, key = api_client(world)
    answer = client.post(f"/api/v1/leads/{ALI['phone']}/outcome", json={"outcome": "won", "value": 1200000},
                         headers=auth(key))
    assert answer.status_code == 200, answer.text
    (sale, outcome) = delivered(world, receiver)
    assert sale[:2] == ("converted", world.ali) and (sale[2]["sequence"], sale[2]["value"]) == ("coats", 1200000)
    assert outcome == ("lead_outcome", world.ali,
                       {"outcome": "won", "value": 1200000.0, "objection": None, "rep": "Omid"})

    (everything,) = kpi().values()
    assert (everything["leads"], everything["handoffs"], everything["handoff_win_rate"]) == (2, 2, 0.5)
    assert (everything["conversions"], everything["revenue"]) == (1, 1200000)
    assert everything["top_objections"] == [{"objection": "price", "count": 1, "share": 1.0}]
    by_rep = kpi("rep")
    assert sorted(by_rep) == ["Mina", "Omid"]
    assert (by_rep["Mina"]["handoffs"], by_rep["Mina"]["handoff_win_rate"]) == (1, 0.0)
    assert (by_rep["Omid"]["handoff_win_rate"], by_rep["Omid"]["revenue"]) == (1.0, 1200000)
    with world.engine.connect() as conn:  # what `followup sequences` lists
        states = {row.name: (row.state, row.active) for row in list_sequences(conn, world.config)}
    assert states["coats"] == ("active", 0)
    assert states["_sales"][0] == "active"  # the built-in sequence of the reps' notices is never orphaned
    by_source = kpi("source")
    assert (by_source["google"]["lead_quality"], by_source["instagram"]["lead_quality"]) == (0.0, 1.0)
