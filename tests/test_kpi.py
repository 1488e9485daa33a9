"""The shared KPIs on a hand-checked fixture (every expected figure is worked out in the comments)."""
from __future__ import annotations

import csv
import io
import json
import re
from functools import partial
from datetime import timedelta
from html import unescape

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from markupsafe import escape

from engine.cli import cli
from engine.errors import InputError

from engine.events import end_enrollments
from engine.db import read_at_once
from engine.kpi import BY, DEFINITIONS, kpi_report, top_objections
from engine.clock import now
from engine.leads import record_outcome
from engine.contacts import find_contact
from engine.models import Enrollment, Handoff, Message
from engine.people import forget
from tests.conftest import simple_sequence
from tests.service_support import api_client, auth

PRICED = {"providers": {"sms": [{"name": "mem-sms", "type": "memory", "price_per_segment": 100}],
                        "email": [{"name": "mem-email", "type": "memory", "price_per_email": 10}]}}


def hand_off(world, contact_id: int, rep: str) -> None:
    """What the handoff of sales writes: the enrollment ends as handed_off and a handoffs row names the rep."""
    table = Enrollment.__table__
    with world.engine.begin() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(table).where(table.c.contact_id == contact_id))
                .mappings()]
        end_enrollments(conn, rows, "handed_off", f"handed off to {rep}")
        conn.execute(sa.insert(Handoff.__table__).values(
            contact_id=contact_id, enrollment_id=rows[0]["id"], sequence=rows[0]["sequence"], rep=rep,
            fired_by="replied", score=20, at=now(), token_nonce="0" * 32, token_expires_at=now() + timedelta(days=7)))


def outcome(world, contact_id: int, what: str, **kw) -> None:
    """The rep records an outcome of the contact's handoff (as the CLI, API and lead page do)."""
    table = Handoff.__table__
    with world.engine.begin() as conn:
        row = dict(conn.execute(sa.select(table).where(table.c.contact_id == contact_id)).mappings().one())
        record_outcome(conn, world.config, row, what, **kw)


def build_shop(make_world, frozen, **settings):
    """Four leads enrolled at t0 (a Saturday, 10:00 in Tehran), two one-segment SMS each:

    - A (source instagram) buys 1,000 two hours in and 500 two days in;
    - B (source instagram) is handed off at 3 h, won by reza a day in, and buys 2,000 then;
    - C (utm_source google) is handed off at 3 h and lost by reza on price;
    - D (no source) is handed off at 3 h and lost by mina on timing.
    """
    world = make_world([simple_sequence("a")], settings={**PRICED, **settings})
    a, b, c, d = world.add_contacts({"phone": "09120000001", "source": "instagram"},
                                    {"phone": "09120000002", "source": "instagram"},
                                    {"phone": "09120000003", "utm_source": "google"},
                                    {"phone": "09120000004"})
    world.enroll("a", a, b, c, d)
    world.tick()
    frozen.tick(timedelta(hours=1))
    world.tick()
    frozen.tick(timedelta(hours=1))
    world.event(a, "converted", value=1000)
    frozen.tick(timedelta(hours=1))
    for contact, rep in ((b, "reza"), (c, "reza"), (d, "mina")):
        hand_off(world, contact, rep)
    frozen.tick(timedelta(hours=21))  # t0 + 1 day
    outcome(world, b, "won", value=2000)  # the won lead's converted event, credited to the handoff
    outcome(world, c, "lost", objection="price")
    outcome(world, d, "lost", objection="timing")
    frozen.tick(timedelta(days=1))
    world.event(a, "converted", value=500)
    world.ids = (a, b, c, d)
    return world


@pytest.fixture
def shop(make_world, frozen):
    return build_shop(make_world, frozen)


def report(world, **kw):
    with world.engine.connect() as conn:
        return {g.group: g for g in kpi_report(conn, world.config, **kw)}


def test_the_whole_report_matches_the_hand_worked_figures(shop):
    assert len(shop.messages(status="sent")) + len(shop.messages(status="delivered")) == 8
    (everything,) = report(shop).values()
    assert everything.figures == {
        "leads": 4, "handoffs": 3, "conversions": 3,
        "conversion_rate": 0.5,                 # A and B bought after enrolling
        "handoff_win_rate": 0.3333,             # B of B, C, D
        "median_days_to_convert": 0.54,         # median of 2 h (0.083 d) and 1 d
        "revenue": 3500, "revenue_per_lead": 875,
        "lead_quality": 0.3333,
        "customer_lifetime_value": 1750,        # A 1,500 and B 2,000
        "repeat_purchase_rate": 0.5,            # A of A and B
        "repeat_customer_value": 1500,
        "repeat_after_loyalty": 0,
        "cost": 800,                            # 8 SMS × 1 segment × 100
        "return_on_cost": 3.375,                # (3,500 − 800) / 800
    }
    assert everything.objections == [{"objection": "price", "count": 1, "share": 0.5},
                                     {"objection": "timing", "count": 1, "share": 0.5}]


def test_lead_quality_by_source_and_figures_by_rep(shop):
    by_source = report(shop, by="source")
    assert sorted(by_source) == ["(none)", "google", "instagram"]
    assert by_source["instagram"].figures["lead_quality"] == 1.0  # B handed off and won
    assert by_source["google"].figures["lead_quality"] == 0.0     # C lost
    assert by_source["instagram"].figures["revenue"] == 3500
    assert by_source["instagram"].figures["leads"] == 2 and by_source["instagram"].figures["cost"] == 400
    by_rep = report(shop, by="rep")
    assert by_rep["reza"].figures["handoffs"] == 2 and by_rep["reza"].figures["handoff_win_rate"] == 0.5
    assert [o["objection"] for o in by_rep["mina"].objections] == ["timing"]
    by_month = report(shop, by="month")
    assert list(by_month) == ["2026-12"]


@pytest.mark.parametrize("by", [None, *BY])
def test_the_reads_run_at_once_give_the_same_report(shop, by):
    """The dashboard runs the report's reads at once, each on a connection of its own."""
    with shop.engine.connect() as conn:
        at_once = kpi_report(conn, shop.config, by=by, run=partial(read_at_once, shop.engine))
    assert [g.as_dict() for g in at_once] == [g.as_dict() for g in report(shop, by=by).values()]


def copied_sources(world) -> dict[str, dict[int, set]]:
    """Each contact's sources as its runs and its sends carry them."""
    out: dict[str, dict[int, set]] = {}
    with world.engine.connect() as conn:
        for table in (Enrollment.__table__, Message.__table__):
            for cid, source in conn.execute(sa.select(table.c.contact_id, table.c.source)):
                out.setdefault(table.name, {}).setdefault(cid, set()).add(source)
    return out


def test_the_report_by_source_follows_the_contacts_current_source(shop):
    a, b, c, d = shop.ids
    # A moves from instagram to telegram; D, which had none, now has only a utm_source
    shop.add_contacts({"phone": "09120000001", "source": "telegram"}, {"phone": "09120000004", "utm_source": "bing"})
    by_source = report(shop, by="source")
    assert sorted(by_source) == ["bing", "google", "instagram", "telegram"]
    telegram, instagram, bing = by_source["telegram"].figures, by_source["instagram"].figures, by_source["bing"].figures
    assert (telegram["leads"], telegram["cost"], telegram["revenue"], telegram["handoffs"]) == (1, 200, 1500, 0)
    assert (instagram["leads"], instagram["cost"], instagram["revenue"], instagram["lead_quality"]) == (1, 200, 2000, 1.0)
    assert (bing["leads"], bing["cost"], bing["handoffs"], bing["lead_quality"]) == (1, 200, 1, 0.0)
    assert {table: rows[a] for table, rows in copied_sources(shop).items()} == {
        "enrollments": {"telegram"}, "messages": {"telegram"}}
    with shop.engine.begin() as conn:  # erasure leaves A with no source
        forget(conn, find_contact(conn, "09120000001", "IR"))
    by_source = report(shop, by="source")
    assert "telegram" not in by_source
    assert (by_source["(none)"].figures["leads"], by_source["(none)"].figures["cost"]) == (1, 200)
    assert {table: rows[a] for table, rows in copied_sources(shop).items()} == {
        "enrollments": {None}, "messages": {None}}


def test_the_migration_copies_each_contacts_source_onto_its_runs_and_sends(shop, db_url):
    from alembic import command

    from engine.db import _alembic_config, make_engine, upgrade

    a, b, c, d = shop.ids
    expected = {k: (g.figures, g.objections) for k, g in report(shop, by="source").items()}
    engine = make_engine(db_url)
    cfg = _alembic_config(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0023_run_marks")
    upgrade(db_url)
    copies = copied_sources(shop)
    assert copies["enrollments"] == copies["messages"] == {a: {"instagram"}, b: {"instagram"}, c: {"google"},
                                                           d: {None}}
    assert {k: (g.figures, g.objections) for k, g in report(shop, by="source").items()} == expected
    if engine.dialect.name == "postgresql":  # the triggers the backfill turned off are on again
        with engine.connect() as conn:
            assert set(conn.exec_driver_sql("SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'messages'::regclass "
                                            "AND NOT tgisinternal").scalars()) == {"O"}
    engine.dispose()


def test_the_objections_beside_a_report_by_group_are_the_whole_reports(shop, frozen):
    for days in (0, 1, 40):  # lost within the window, and a window with none
        frozen.tick(timedelta(days=days))
        (everything,) = report(shop).values()
        with shop.engine.connect() as conn:
            assert top_objections(conn, since=timedelta(days=30), until=now()) == everything.objections
    assert everything.objections == []


def test_the_window_leaves_out_what_came_before_it(shop, frozen):
    frozen.tick(timedelta(days=40))
    (everything,) = report(shop).values()
    assert (everything.figures["leads"], everything.figures["revenue"], everything.figures["cost"]) == (0, 0, 0)
    assert everything.figures["conversion_rate"] is None and everything.objections == []
    (longer,) = report(shop, since=timedelta(days=60)).values()
    assert longer.figures["revenue"] == 3500


def test_the_cli_prints_json_and_csv_with_each_definition(shop):
    config = str(shop.config.dir)
    runner = CliRunner()
    as_json = runner.invoke(cli, ["--config", config, "kpi", "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["definitions"] == DEFINITIONS and data["groups"][0]["revenue"] == 3500
    as_csv = runner.invoke(cli, ["--config", config, "kpi", "--by", "source", "--csv"])
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {r["source"]: r["lead_quality"] for r in rows} == {"(none)": "0.0", "google": "0.0", "instagram": "1.0"}
    assert {r["source"]: r["top_objection"] for r in rows}["google"] == "price"
    table = runner.invoke(cli, ["--config", config, "kpi"], terminal_width=300)
    assert table.exit_code == 0 and "return_on_cost" in table.stdout and "3.375" in table.stdout
    bad = runner.invoke(cli, ["--config", config, "kpi", "--since", "soon"])
    assert isinstance(bad.exception, InputError) and "--since 'soon'" in str(bad.exception)
    empty = runner.invoke(cli, ["--config", config, "kpi", "--since", "0d"])
    assert isinstance(empty.exception, InputError) and "longer than 0s" in str(empty.exception)


def test_the_api_answers_the_same_report_to_a_key_and_4xx_to_bad_input(shop):
    client, key = api_client(shop)
    assert client.get("/api/v1/kpi").status_code == 401
    answer = client.get("/api/v1/kpi", params={"by": "source"}, headers=auth(key))
    assert answer.status_code == 200
    body = answer.json()
    assert {g["group"]: g["lead_quality"] for g in body["groups"]} == {"(none)": 0.0, "google": 0.0, "instagram": 1.0}
    assert body["definitions"]["lead_quality"] == DEFINITIONS["lead_quality"]
    assert client.get("/api/v1/kpi", params={"since": "soon"}, headers=auth(key)).status_code == 422
    assert client.get("/api/v1/kpi", params={"by": "colour"}, headers=auth(key)).status_code == 422


def test_the_page_shows_each_figure_with_its_definition_and_draws_svg(shop):
    client, key = api_client(shop)
    page = client.get("/dashboard/kpi", params={"lang": "en"}, headers=auth(key))
    assert page.status_code == 200
    html = page.text
    assert f'title="{escape(DEFINITIONS["conversion_rate"])}"' in html and "3,500" in html
    assert html.count("<svg") == 5 and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    fa = client.get("/dashboard/kpi", params={"lang": "fa", "by": "source"}, headers=auth(key))
    assert fa.status_code == 200 and 'dir="rtl"' in fa.text and "instagram" in fa.text
    assert client.get("/dashboard/kpi", params={"since": "x"}, headers=auth(key)).status_code == 400


# -- after the sale: on_converted ------------------------------------------------------------------------
def test_a_conversion_enrolls_in_the_loyalty_sequence_once_and_the_repeat_purchase_is_counted(make_world, frozen):
    world = make_world([simple_sequence("a", on_converted={"enroll": "thank-you-loyalty"}),
                        simple_sequence("thank-you-loyalty", after="3d")], settings=PRICED)
    (sara,) = world.add_contacts({"phone": "09121111111", "source": "instagram"})
    world.enroll("a", sara)
    world.tick()
    frozen.tick(timedelta(hours=2))
    first = world.event(sara, "converted", value=1000)
    assert [(s.sequence, s.outcome) for s in first.started] == [("thank-you-loyalty", "enrolled")]
    assert world.enrollment(sara, "a")["status"] == "converted"
    world.tick()  # the loyalty sequence's first touch
    frozen.tick(timedelta(days=1))
    second = world.event(sara, "converted", value=400)  # a repeat purchase ends the loyalty run
    assert second.ended == ["thank-you-loyalty"] and second.started == []
    frozen.tick(timedelta(days=1))
    third = world.event(sara, "converted", value=300, sequence="a")
    # a sale credited to "a" again: reentry: never (the default) keeps the contact out of the loyalty sequence
    assert [(s.sequence, s.outcome) for s in third.started] == [("thank-you-loyalty", "finished")]
    (everything,) = report(world).values()
    assert everything.figures["repeat_after_loyalty"] == 2
    assert everything.figures["repeat_purchase_rate"] == 1.0 and everything.figures["customer_lifetime_value"] == 1700


def test_on_converted_must_name_another_sequence(make_world):
    from engine.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        make_world([simple_sequence("a", on_converted={"enroll": "thanks"})])
    (problem,) = caught.value.problems
    assert problem.key == "on_converted.enroll" and "'thanks' names no sequence" in problem.message


# -- the funnel per touch ----------------------------------------------------------------------------------
def build_touch_shop(make_world, frozen, **settings):
    """Four contacts P, Q, R, S enrolled at t0 in ``coats`` (three SMS touches a day apart, each with a short link):

    - day 0: t0 goes to all four (4 sent); receipts confirm P's, Q's and R's (3 delivered); P and Q click it and
      a bot follows S's link (2 clicked: a bot's is not a person's); P buys 1,000 two hours in, credited to t0 by
      its click (1 converted);
    - day 1: t1 goes to Q, R and S (3 sent); a receipt confirms Q's (1 delivered); Q clicks it (1 clicked) and buys
      2,000 an hour later, credited to t1 by the click; R buys 500 without a click, credited to t1 by the send
      (the last message that reached R, within a day) (2 converted);
    - day 2: t2 goes to S only (1 sent, nothing else).
    """
    from engine.receipts import apply_reports
    from providers.base import DeliveryReport, DeliveryState
    from tests.test_attribution import click
    from tests.test_links import LINKS, TEMPLATES, link_sequence

    world = make_world([link_sequence("coats")], settings={**LINKS, **settings}, templates=TEMPLATES)
    p, q, r, s = world.add_contacts(*({"phone": f"0912000001{i}"} for i in range(4)))
    world.enroll("coats", p, q, r, s)

    def delivered(touch: str, *contacts: int) -> None:
        rows = [m for m in world.messages(touch=touch) if m["contact_id"] in contacts]
        with world.engine.begin() as conn:
            changed = apply_reports(conn, world.config, rows[0]["provider"],
                                    [DeliveryReport(m["provider_message_id"], DeliveryState.DELIVERED) for m in rows])
        assert changed == len(contacts)

    world.tick()
    delivered("t0", p, q, r)
    click(world, "t0", contact=p)
    click(world, "t0", contact=q)
    click(world, "t0", contact=s, agent="WhatsApp/2.23.20.0")
    frozen.tick(timedelta(hours=2))
    world.event(p, "converted", value=1000)
    frozen.tick(timedelta(hours=22))
    world.tick()
    delivered("t1", q)
    click(world, "t1", contact=q)
    frozen.tick(timedelta(hours=1))
    world.event(q, "converted", value=2000)
    world.event(r, "converted", value=500)
    frozen.tick(timedelta(hours=23))
    world.tick()
    world.ids = (p, q, r, s)
    return world


#: what build_touch_shop's story makes of each touch: sent, delivered, clicked, converted
TOUCH_FIGURES = {"t0": [4, 3, 2, 1], "t1": [3, 1, 1, 2], "t2": [1, 0, 0, 0]}


def test_the_funnel_per_touch_matches_the_hand_worked_figures(make_world, frozen):
    from engine.kpi_series import TOUCH_STEPS, funnels, touch_funnels

    world = build_touch_shop(make_world, frozen)
    from engine.models import ContactEvent

    credited = {(e["contact_id"], e["touch"], e["attributed_by"])
                for e in world._rows(ContactEvent.__table__, {"type": "converted"})}
    p, q, r, _ = world.ids
    assert credited == {(p, "t0", "click"), (q, "t1", "click"), (r, "t1", "send")}
    until = now()
    with world.engine.connect() as conn:
        per_touch = touch_funnels(conn, until - timedelta(days=30), until, {"coats": ["t0", "t1", "t2"]})
        assert funnels(conn, until - timedelta(days=30), until)["coats"] == [
            ("enrolled", 4), ("sent", 4), ("clicked", 2), ("converted", 3)]
        # a window that starts after day 0's sends leaves t0 out, and its conversion with it
        later = touch_funnels(conn, until - timedelta(hours=30), until, {"coats": ["t0", "t1", "t2"]})
    assert per_touch == {"coats": [(touch, list(zip(TOUCH_STEPS, n))) for touch, n in TOUCH_FIGURES.items()]}
    assert [touch for touch, _ in later["coats"]] == ["t1", "t2"]


def readme_definitions() -> dict[str, str]:
    """The README's list of the KPI page's figures and funnel steps: name → definition (without Markdown)."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Shared KPIs"):]
    section = section[:section.index("\n## ")]
    return {name: words.replace("`", "") for name, words in re.findall(r"^\| `(\w+)` \| (.+) \|$", section, re.M)}


def hover_texts(html: str) -> dict[str, set[str]]:
    """Each figure or step on the page and the definitions its hover shows (a table row's or a step's ``title``,
    a chart bar's ``<title>`` after its value)."""
    shown: dict[str, set[str]] = {}
    for name, words in re.findall(r'data-(?:figure|step)="(\w+)"><th title="([^"]*)"', html) + \
            re.findall(r'<abbr data-step="(\w+)" title="([^"]*)"', html):
        shown.setdefault(name, set()).add(unescape(words))
    for name, words in re.findall(r'<g class="row" data-step="(\w+)"><title>[^<]*?: [^<(]* \(([^<]*)\)</title>', html):
        shown.setdefault(name, set()).add(unescape(words))
    return shown


def test_every_figure_on_the_page_has_its_readme_definition_in_english_and_persian(make_world, frozen):
    from engine.kpi_series import STEPS
    from engine.service.i18n import EN, FA
    from engine.text import fa_digits

    world = build_touch_shop(make_world, frozen)
    client, key = api_client(world)
    readme = readme_definitions()
    assert readme == {**DEFINITIONS, **STEPS}, "the README lists each figure with the engine's own definition"
    pages = {lang: client.get("/dashboard/kpi", params={"lang": lang}, headers=auth(key)) for lang in ("en", "fa")}
    assert all(page.status_code == 200 for page in pages.values())
    english, persian = hover_texts(pages["en"].text), hover_texts(pages["fa"].text)
    assert set(english) == set(persian) == set(readme)
    for name, words in readme.items():
        assert english[name] == {words}, name
        in_persian = FA[f"kpi.def.{name}"]
        assert persian[name] == {fa_digits(in_persian)}, name
        assert in_persian != EN[f"kpi.def.{name}"] and re.search("[\u0600-\u06ff]", in_persian), name
