"""Handoff to sales: the rules (replied, score, a click of one touch), the rep chosen (round robin with
weights, match by attribute), the enrollment ended as handed_off, and the rep told once through the providers."""
from __future__ import annotations

from datetime import timedelta
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from engine.config import load_config
from engine.errors import ConfigError
from engine.handoff import choose_rep
from engine.handoff_rules import HandoffRule
from engine.models import Handoff
from engine.sales_settings import Rep, SalesSettings
from tests.service_support import SERVICE_SETTINGS, api_client
from tests.test_links import BASE, TEMPLATES, link_sequence
from tests.test_scoring import SALES_TEMPLATES, click, click_batch

SARA = {"phone": "09121234567", "email": "sara@example.com", "first_name": "سارا", "last_name": "رضایی",
        "city": "تهران"}
TEAM = [{"name": "Mina", "phone": "09351111111", "email": "mina@shop.example", "weight": 2},
        {"name": "Omid", "phone": "09352222222"}]
HANDOFF = {"when": {"any": ["replied", {"score": 30}, {"clicked": "t2"}]}, "assign": "round_robin"}


def write_config(tmp_path: Path, settings: dict, sequence: dict | None = None) -> Path:
    """A config folder with these settings (and one sequence) for load_config's checks."""
    folder = tmp_path / "config"
    (folder / "sequences").mkdir(parents=True, exist_ok=True)
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "plain.sms.j2").write_text("hi", encoding="utf-8")
    (folder / "settings.yaml").write_text(yaml.safe_dump(
        {"database_url": f"sqlite:///{tmp_path}/db.sqlite", "templates_dir": "../templates",
         "providers": {"sms": [{"name": "m", "type": "memory"}], "email": [{"name": "e", "type": "memory"}]},
         **settings},
        allow_unicode=True), encoding="utf-8")
    seq = sequence or {"name": "s", "touches": [{"name": f"t{i}", "after": "1h", "channel": "sms",
                                                 "template": "plain.sms.j2"} for i in range(3)]}
    (folder / "sequences" / "s.yaml").write_text(yaml.safe_dump(seq, allow_unicode=True, sort_keys=False),
                                                 encoding="utf-8")
    return folder


@pytest.fixture
def world(make_world, frozen):
    world = make_world([link_sequence(handoff=HANDOFF)], templates={**TEMPLATES, **SALES_TEMPLATES},
                       settings={**SERVICE_SETTINGS, "links": {"base_url": BASE}, "sales": {"team": TEAM},
                                 "service": {"public_url": "https://f.shop.example"}})
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    world.sara = sara
    return world


def handoffs(world) -> list[dict]:
    with world.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(Handoff.__table__).order_by(Handoff.__table__.c.id)).mappings()]


def test_a_reply_hands_the_lead_off_cancels_marketing_and_tells_the_rep_once(world, frozen):
    result = world.event(world.sara, "replied")
    (handoff,) = handoffs(world)
    assert (handoff["rep"], handoff["fired_by"], handoff["sequence"], handoff["score"]) == ("Mina", "replied", "coats", 20)
    enrollment = world.enrollment(world.sara, "coats")
    assert enrollment["status"] == "handed_off" and enrollment["ended_reason"] == "handed off to Mina: replied"
    assert result.ended == []  # not ended again as replied
    pending = world.messages(contact_id=world.sara, sequence="coats", status="cancelled")
    assert [m["touch"] for m in pending] == ["t1", "t2"]
    assert all(m["reason"] == "handed off to Mina: replied" for m in pending)
    world.tick()
    world.tick()
    (sms,) = [m for m in world.sms.outbox if m.to == "+989351111111"]
    assert "سارا رضایی" in sms.text and "+989121234567" in sms.text and "امتیاز 20" in sms.text
    assert "https://f.shop.example/leads/%d." % handoff["id"] in sms.text
    (mail,) = world.email.outbox
    assert mail.to == "mina@shop.example" and "سارا رضایی" in mail.subject
    notes = world.messages(sequence="_sales")
    assert [(m["touch"], m["status"]) for m in notes] == [("notify-sms", "sent"), ("notify-email", "sent")]
    client, key = api_client(world)
    page = client.get(f"/dashboard/contacts/{world.sara}?lang=en", headers={"Authorization": f"Bearer {key}"}).text
    handed = page[page.index('id="handoffs"'):]
    assert "Mina" in handed and "replied" in handed and "handed off" in page
    # the same reply again (or any later fact) hands nothing off twice and tells nobody again
    world.event(world.sara, "replied")
    world.tick()
    assert len(handoffs(world)) == 1 and len(world.messages(sequence="_sales")) == 2


def test_a_click_of_the_named_touch_hands_off_and_the_message_says_what_was_clicked(make_world, frozen):
    world = make_world([link_sequence(handoff={"when": {"any": [{"clicked": "t1"}]}})],
                       templates={**TEMPLATES, **SALES_TEMPLATES},
                       settings={**SERVICE_SETTINGS, "links": {"base_url": BASE}, "sales": {"team": TEAM[1:]}})
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    client, _ = api_client(world)
    click(world, client)  # t0: not the one
    assert handoffs(world) == []
    frozen.tick(timedelta(days=1, minutes=1))
    world.tick()
    click(world, client)  # t1
    (handoff,) = handoffs(world)
    assert handoff["fired_by"] == "clicked t1" and handoff["rep"] == "Omid"
    world.tick()
    (sms,) = [m for m in world.sms.outbox if m.to == "+989352222222"]
    assert "کلیک: t0, t1" in sms.text
    assert world.messages(sequence="_sales")[0]["touch"] == "notify-sms"  # Omid has no email: one touch


def scored_world(make_world, score: int):
    """Sara enrolled in a sequence handing off at ``score``, her first SMS sent; the world and an API client."""
    world = make_world([link_sequence(handoff={"when": {"any": [{"score": score}]}})],
                       templates={**TEMPLATES, **SALES_TEMPLATES},
                       settings={**SERVICE_SETTINGS, "links": {"base_url": BASE}, "sales": {"team": TEAM}})
    (world.sara,) = world.add_contacts(SARA)
    world.enroll("coats", world.sara)
    world.tick()
    return world, api_client(world)[0]


def test_the_score_threshold_hands_off(make_world, frozen):
    world, client = scored_world(make_world, 24)
    sara = world.sara
    click(world, client)  # 5
    assert handoffs(world) == []
    world.event(sara, "replied", sequence="coats")  # 25 ≥ 24
    (handoff,) = handoffs(world)
    assert handoff["fired_by"] == "score >= 24" and handoff["score"] == 25


def test_clicks_written_in_one_batch_hand_off_once_at_the_click_that_crossed_the_score(make_world, frozen):
    """The service writes its queued clicks in one transaction: of three clicks of one lead in a batch, the
    second crosses the score (5, 10, 15 ≥ 10); the lead is handed off once, with the score of that click."""
    world, client = scored_world(make_world, 10)
    click_batch(world, client, 3)
    (handoff,) = handoffs(world)
    assert handoff["fired_by"] == "score >= 10" and handoff["score"] == 10
    assert world.enrollment(world.sara, "coats")["status"] == "handed_off"


def _rule(by=None):
    from engine.handoff_rules import Condition

    return HandoffRule((Condition("replied"),), assign_by=by)


def _assign(world, team, rule, contact, n):
    """Choose ``n`` reps in a row, writing each as a handoff so the round robin moves on."""
    chosen = []
    with world.engine.begin() as conn:
        for _ in range(n):
            rep = choose_rep(conn, SalesSettings(team=team), rule, contact)
            taken = conn.execute(sa.select(sa.func.count()).select_from(Handoff.__table__)).scalar()
            conn.execute(sa.insert(Handoff.__table__).values(
                contact_id=1, enrollment_id=1000 + taken, sequence="coats", rep=rep.name, fired_by="replied", score=0,
                at=world.now(), token_expires_at=world.now()))
            chosen.append(rep.name)
    return chosen


def test_round_robin_follows_the_weights(world):
    world.now = lambda: __import__("engine.clock", fromlist=["now"]).now()
    team = (Rep("A", phone="+989350000001", weight=2), Rep("B", phone="+989350000002"),
            Rep("C", phone="+989350000003"))
    chosen = _assign(world, team, _rule(), {"attrs": {}}, 8)
    assert chosen == ["A", "B", "C", "A", "A", "B", "C", "A"]


def test_assign_by_attribute_takes_the_matching_rep_else_the_unmatched_ones(world):
    world.now = lambda: __import__("engine.clock", fromlist=["now"]).now()
    team = (Rep("Tehran1", phone="+989350000001", match={"city": "تهران"}),
            Rep("Tehran2", phone="+989350000002", match={"city": "تهران"}),
            Rep("Shiraz", phone="+989350000003", match={"city": "شیراز"}),
            Rep("Anyone", phone="+989350000004"))
    assert _assign(world, team, _rule("city"), {"attrs": {"city": "تهران"}}, 3) == ["Tehran1", "Tehran2", "Tehran1"]
    assert _assign(world, team, _rule("city"), {"attrs": {"city": "شیراز"}}, 2) == ["Shiraz", "Shiraz"]
    assert _assign(world, team, _rule("city"), {"attrs": {"city": "تبریز"}}, 2) == ["Anyone", "Anyone"]
    assert _assign(world, team, _rule("city"), {"attrs": {}}, 1) == ["Anyone"]


def test_an_attribute_match_in_a_world_sends_to_the_citys_rep(make_world, frozen):
    team = [{"name": "Shiraz", "phone": "09353333333", "match": {"city": "شیراز"}},
            {"name": "Tehran", "email": "t@shop.example", "match": {"city": "تهران"}}]
    world = make_world([link_sequence(handoff={"when": {"any": ["replied"]}, "assign": {"by": "attrs.city"}})],
                       templates={**TEMPLATES, **SALES_TEMPLATES},
                       settings={**SERVICE_SETTINGS, "links": {"base_url": BASE}, "sales": {"team": team}})
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    world.event(sara, "replied")
    assert handoffs(world)[0]["rep"] == "Tehran"
    world.tick()
    (mail,) = world.email.outbox
    assert mail.to == "t@shop.example"


@pytest.mark.parametrize("handoff, where, says", [
    ({"when": {"any": ["repled"]}}, "handoff.when.any[0]", "is not a condition"),
    ({"when": {"any": [{"clicked": "nope"}]}}, "handoff.when.any[0].clicked", "is not a touch of this sequence"),
    ({"when": {"any": [{"score": -3}]}}, "handoff.when.any[0].score", "above 0"),
    ({"when": ["replied"]}, "handoff.when", "must be {any:"),
    ({"when": {"any": ["replied"]}, "assign": "random"}, "handoff.assign", "round_robin"),
    ({"when": {"any": ["replied"]}, "asign": "round_robin"}, "handoff.asign", "unknown key"),
])
def test_bad_handoff_rules_say_file_line_and_fix(tmp_path, handoff, where, says):
    seq = {"name": "s", "touches": [{"name": f"t{i}", "after": "1h", "channel": "sms", "template": "plain.sms.j2"}
                                    for i in range(3)], "handoff": handoff}
    folder = write_config(tmp_path, {"sales": {"team": TEAM}}, seq)
    with pytest.raises(ConfigError) as err:
        load_config(folder)
    text = str(err.value)
    assert "s.yaml:" in text and where in text and says in text, text


@pytest.mark.parametrize("sales, where, says", [
    ({"team": [{"name": "X"}]}, "sales.team[0]", "needs a phone or an email"),
    ({"team": [{"name": "X", "phone": "12"}]}, "sales.team[0].phone", "+989121234567"),
    ({"team": [{"name": "X", "phone": "09121234567", "weight": 0}]}, "sales.team[0].weight", "1 to 100"),
    ({"team": [{"name": "X", "phone": "09121234567"}, {"name": "X", "email": "x@y.example"}]},
     "sales.team[1].name", "named twice"),
    ({"objections": "price"}, "sales.objections", "list of short texts"),
])
def test_bad_sales_settings_say_file_line_and_fix(tmp_path, sales, where, says):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, {"sales": sales}))
    text = str(err.value)
    assert "settings.yaml:" in text and where in text and says in text, text


def test_a_handoff_without_a_team_is_a_problem_of_the_sequence(tmp_path):
    seq = {"name": "s", "touches": [{"name": f"t{i}", "after": "1h", "channel": "sms", "template": "plain.sms.j2"}
                                    for i in range(3)], "handoff": {"when": {"any": ["replied"]}}}
    folder = write_config(tmp_path, {"secret_key": "k" * 32}, seq)
    with pytest.raises(ConfigError) as err:
        load_config(folder)
    assert [str(p) for p in err.value.problems] == [
        f"{Path(os.path.relpath(folder / 'sequences' / 's.yaml'))}:15: handoff: this sequence hands leads to sales, "
        f"but {os.path.relpath(folder / 'settings.yaml')} has no sales.team; add sales: {{team: [{{name: Sara, "
        "phone: '+989121234567'}]}"]
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, {"sales": {"team": TEAM}}, seq))  # a team, but no key or templates
    text = str(err.value)
    assert "secret_key: sequences hand leads to sales: set secret_key" in text
    assert "_sales/notify.sms.j2 must exist" in text and "_sales/notify.email.j2 must exist" in text
    for name, body in SALES_TEMPLATES.items():
        (tmp_path / "templates" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "templates" / name).write_text(body, encoding="utf-8")
    load_config(write_config(tmp_path, {"sales": {"team": TEAM}, "secret_key": "k" * 32}, seq))


def test_a_providers_click_event_hands_off_too(make_world, frozen):
    """SendGrid's or Mailgun's own click of an email (applied by engine.receipts) is a fact like our link's."""
    from providers.base import EngagementEvent

    from engine.receipts import apply_pushed

    mail = link_sequence("mail", channel="email", handoff={"when": {"any": [{"clicked": "t0"}]}})
    world = make_world([mail], templates={**TEMPLATES, **SALES_TEMPLATES},
                       settings={**SERVICE_SETTINGS, "sales": {"team": TEAM[1:]}})
    (sara,) = world.add_contacts(SARA)
    world.enroll("mail", sara)
    world.tick()
    (sent,) = world.messages(sequence="mail", status="sent")
    frozen.tick(timedelta(minutes=5))
    with world.engine.begin() as conn:
        opened = apply_pushed(conn, world.config, "mem-email",
                              [EngagementEvent("open", None, world.reference(sent["id"]), event_id="e1")])
    assert opened == 1 and handoffs(world) == []  # an open is 1 point; the rule wants a click of t0
    with world.engine.begin() as conn:
        apply_pushed(conn, world.config, "mem-email",
                     [EngagementEvent("click", None, world.reference(sent["id"]), event_id="e2")])
    (handoff,) = handoffs(world)
    assert (handoff["fired_by"], handoff["score"]) == ("clicked t0", 6)
    assert world.enrollment(sara, "mail")["status"] == "handed_off"
