"""The lead score: points per fact (scoring: in settings), halving every half_life, kept on the contact."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli import cli
from engine.config import load_config
from engine.errors import ConfigError
from engine.models import Contact
from engine.scoring import facts, kept_score, score_of
from tests.service_support import SERVICE_SETTINGS, api_client, auth
from tests.test_links import BASE, SARA, TEMPLATES, link_sequence

UTC = timezone.utc
PHONE_AGENT = "Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36"
SALES_TEMPLATES = {f"_sales/{p.name}": p.read_text(encoding="utf-8")
                   for p in (Path(__file__).parent.parent / "templates" / "_sales").glob("*.j2")}


@pytest.fixture
def world(make_world, frozen):
    world = make_world([link_sequence()], templates={**TEMPLATES, **SALES_TEMPLATES},
                       settings={**SERVICE_SETTINGS, "links": {"base_url": BASE}})
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    world.sara = sara
    return world


def click(world, client, agent: str = PHONE_AGENT) -> None:
    """Sara follows the short link of her latest SMS."""
    from engine.models import Link

    table = Link.__table__
    with world.engine.connect() as conn:
        code = conn.execute(sa.select(table.c.code).order_by(table.c.created_at.desc())).scalars().first()
    assert client.get(f"/l/{code}", headers={"User-Agent": agent}, follow_redirects=False).status_code == 302
    client.app.state.ctx.clicks.flush()  # the service's click writer stores it (and scores it) within a second


def click_batch(world, client, n: int, frozen=None) -> None:
    """Sara follows the short link of her first SMS ``n`` times (an hour apart with ``frozen``), and the
    service's click writer stores the ``n`` clicks in one transaction."""
    from engine.models import Link

    with world.engine.connect() as conn:
        code = conn.execute(sa.select(Link.__table__.c.code).order_by(Link.__table__.c.created_at)).scalars().first()
    for _ in range(n):
        assert client.get(f"/l/{code}", headers={"User-Agent": PHONE_AGENT},
                          follow_redirects=False).status_code == 302
        if frozen is not None:
            frozen.tick(timedelta(hours=1))
    assert client.app.state.ctx.clicks.flush() == n


def contact_row(world) -> dict:
    with world.engine.connect() as conn:
        return dict(conn.execute(sa.select(Contact.__table__).where(Contact.__table__.c.id == world.sara))
                    .mappings().one())


def test_default_points_and_half_life_decay_on_a_frozen_clock(world, frozen):
    client, _ = api_client(world)
    click(world, client)                       # 5 points now
    world.event(world.sara, "replied")         # 20 points now
    start = datetime.now(UTC)
    with world.engine.connect() as conn:
        found = facts(conn, world.sara)
    rules = world.config.settings.scoring
    assert [f.kind for f in found] == ["clicked", "replied"]
    assert score_of(found, rules, start) == 25
    assert score_of(found, rules, start + timedelta(days=14)) == 12.5
    assert score_of(found, rules, start + timedelta(days=28)) == 6.25
    assert score_of(found, rules, start - timedelta(seconds=1)) == 0  # nothing counts before it happened
    row = contact_row(world)
    assert row["score"] == 25
    frozen.tick(timedelta(days=7))
    assert kept_score(row, rules) == round(25 * 0.5 ** 0.5, 2) == 17.68


def test_bot_clicks_do_not_score_and_the_settings_change_the_points(make_world, frozen):
    world = make_world([link_sequence()], templates=TEMPLATES,
                       settings={**SERVICE_SETTINGS, "links": {"base_url": BASE},
                                 "scoring": {"clicked": 7, "replied": 3, "half_life": "1d"}})
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    world.sara = sara
    client, _ = api_client(world)
    click(world, client, agent="WhatsApp/2.23.20.0")
    assert contact_row(world)["score"] == 0
    click(world, client)
    world.event(sara, "replied")
    assert contact_row(world)["score"] == 10
    frozen.tick(timedelta(days=1))
    world.event(sara, "converted", value=100)  # 0 points by default: the others halve after one day
    assert contact_row(world)["score"] == 5


@pytest.mark.parametrize("scoring, where, says", [
    ({"clicked": "lots"}, "scoring.clicked", "must be a number of points"),
    ({"half_life": "soon"}, "scoring.half_life", "soon"),
    ({"bounced": 3}, "scoring.bounced", "unknown key"),
])
def test_bad_scoring_settings_name_the_file_line_and_key(tmp_path, scoring, where, says):
    from tests.test_handoff import write_config

    folder = write_config(tmp_path, {"scoring": scoring})
    with pytest.raises(ConfigError) as err:
        load_config(folder)
    text = str(err.value)
    assert "settings.yaml:" in text and where in text and says in text


def test_contacts_show_the_api_and_the_dashboard_show_the_score(world, frozen, monkeypatch):
    client, key = api_client(world)
    click(world, client)
    world.event(world.sara, "replied")
    monkeypatch.setenv("FOLLOWUP_CONFIG", str(world.root / "config"))
    result = CliRunner().invoke(cli, ["contacts", "show", "#%d" % world.sara])
    assert result.exit_code == 0, result.output
    assert "score: 25" in result.output
    shown = CliRunner().invoke(cli, ["contacts", "show", "#%d" % world.sara, "--json"])
    assert '"score": 25' in shown.output
    timeline = client.get(f"/api/v1/contacts/{SARA['phone']}/timeline", headers=auth(key))
    assert timeline.status_code == 200, timeline.text
    assert timeline.json()["score"] == 25
    dashboard = client.get(f"/dashboard/contacts/{world.sara}?lang=en", headers=auth(key))
    assert dashboard.status_code == 200
    assert re.search(r'<p id="score">Lead score: <b>25(\.0)?</b></p>', dashboard.text), dashboard.text[:2000]


def test_each_fact_adds_its_decayed_points_to_the_kept_score(world, frozen):
    """The score kept one fact at a time is the score of all the facts recomputed: clicks through the short
    link, replies, and provider-reported clicks that arrive days after they happened."""
    from engine.engagement import EngagementEvent
    from engine.receipts import apply_pushed

    client, _ = api_client(world)
    (sent,) = [m for m in world.messages() if m["provider_message_id"]]
    for i in range(30):
        frozen.tick(timedelta(hours=7))
        if i % 3 == 0:
            world.event(world.sara, "replied")
        elif i % 3 == 1:
            click(world, client)
        else:
            with world.engine.begin() as conn:
                apply_pushed(conn, world.config, sent["provider"], [EngagementEvent(
                    "click", sent["provider_message_id"], at=datetime.now(UTC) - timedelta(days=i % 5),
                    event_id=f"late-{i}")])
    with world.engine.connect() as conn:
        found = facts(conn, world.sara)
    assert [f.kind for f in found].count("clicked") == 20 and len(found) == 30
    rules = world.config.settings.scoring
    row = contact_row(world)
    assert abs(kept_score(row, rules) - score_of(found, rules, datetime.now(UTC))) <= 0.01
    frozen.tick(timedelta(days=3))
    assert abs(kept_score(row, rules) - score_of(found, rules, datetime.now(UTC))) <= 0.01


def test_clicks_written_in_one_batch_each_count(world, frozen):
    """The service writes its queued clicks in one transaction: three clicks of one contact in a batch score
    three times, with the contact's row read and written once."""
    client, _ = api_client(world)
    click_batch(world, client, 3, frozen)
    with world.engine.connect() as conn:
        found = facts(conn, world.sara)
    assert [f.kind for f in found] == ["clicked"] * 3
    rules = world.config.settings.scoring
    assert kept_score(contact_row(world), rules) == score_of(found, rules, datetime.now(UTC)) > 14.9
