"""Per-touch clicks, attributed conversions and revenue: in the funnel, `followup stats`, the contact's timeline,
and the dashboard in a real headless Chromium (see tests/test_service_dashboard.py for the browser set-up)."""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from engine.apikeys import create_key
from engine.cli import cli
from engine.reports import funnel, unattributed
from engine.service.queries import contact_timeline
from tests.service_support import SERVICE_SETTINGS, serving
from tests.test_attribution import ALI, click
from tests.test_links import LINKS, SARA, TEMPLATES, link_sequence


def clicked_and_bought(world, frozen) -> tuple[int, int]:
    """Sara clicks t0 and buys for 1,200,000; Ali gets t0, clicks nothing, buys nothing. Returns their ids."""
    sara, ali = world.add_contacts(SARA, ALI)
    world.enroll("coats", sara, ali)
    world.tick()
    frozen.tick(timedelta(minutes=5))
    click(world, "t0", contact=sara)
    click(world, "t0", agent="WhatsApp/2.23", contact=sara)  # a preview: not a click
    frozen.tick(timedelta(hours=1))
    world.event(sara, "converted", value=1_200_000)
    return sara, ali


def test_the_funnel_counts_unique_human_clicks_attributed_conversions_and_revenue_per_touch(make_world, frozen):
    world = make_world([link_sequence()], settings=LINKS, templates=TEMPLATES)
    clicked_and_bought(world, frozen)
    with world.engine.connect() as conn:
        data = funnel(conn, "coats", ["t0", "t1", "t2"])
        loose = unattributed(conn)
    t0 = data["touches"]["t0"]
    assert (t0["sent"], t0["clicks"], t0["click_rate"], t0["attributed_conversions"], t0["attributed_revenue"],
            t0["revenue_per_sent"]) == (2, 1, 0.5, 1, 1_200_000.0, 600_000.0)
    assert data["touches"]["t1"]["clicks"] == 0 and data["touches"]["t1"]["revenue_per_sent"] == 0.0
    assert (data["clicks"], data["attributed_conversions"], data["attributed_revenue"], data["conversion_rate"]) == \
        (1, 1, 1_200_000.0, 0.5)
    assert loose == {"conversions": 0, "revenue": 0.0}


def test_followup_stats_prints_clicks_and_revenue_grouped(make_world, frozen):
    world = make_world([link_sequence()], settings=LINKS, templates=TEMPLATES)
    clicked_and_bought(world, frozen)
    runner = CliRunner()
    shown = runner.invoke(cli, ["--config", str(world.config.dir), "stats", "coats"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "coats: 1 messages clicked (50.0% of sent), 1 conversions attributed, revenue 1,200,000 " \
           "(600,000 per message sent)" in shown.output
    assert "e+06" not in shown.output
    data = json.loads(runner.invoke(cli, ["--config", str(world.config.dir), "stats", "coats", "--json"]).output)
    assert data["sequences"][0]["touches"]["t0"]["attributed_revenue"] == 1_200_000.0
    assert data["not_attributed"] == {"conversions": 0, "revenue": 0.0}


def test_the_timeline_shows_clicks_and_the_conversions_credited_message(make_world, frozen):
    world = make_world([link_sequence()], settings=LINKS, templates=TEMPLATES)
    sara, _ = clicked_and_bought(world, frozen)
    with world.engine.connect() as conn:
        items = contact_timeline(conn, {"id": sara})["items"]
    clicks = [i for i in items if i["kind"] == "engagement"]
    assert [(i["event"], i["touch"], i["source"]) for i in clicks] == [("clicked", "t0", "link"),
                                                                      ("clicked_bot", "t0", "link")]
    (sale,) = [i for i in items if i["kind"] == "event"]
    assert (sale["touch"], sale["attributed_by"], sale["message_id"]) == ("t0", "click", clicks[0]["message_id"])


# -- the dashboard in a real browser ---------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
browser = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                             reason=f"{CHROMIUM} is missing: run tests/setup_chromium.sh (apt-get install chromium)")


@pytest.fixture
def served(make_world, tmp_path, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("one browser run is enough (SQLite)")
    world = make_world([link_sequence()], settings={**SERVICE_SETTINGS, **LINKS}, templates=TEMPLATES)
    with freeze_time("2026-12-05 06:30:00", tz_offset=0) as frozen:
        sara, _ = clicked_and_bought(world, frozen)
    with world.engine.begin() as conn:
        key = create_key(conn, "stats-test")
    with serving(world.config.dir) as base:
        yield base, key, sara


@pytest.mark.slow
@browser
def test_the_dashboard_shows_clicks_and_revenue_per_touch_in_both_languages(served, tmp_path):
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from tests.test_service_dashboard import dashboard_page

    base, _key, sara = served
    with dashboard_page(base, tmp_path / "profile") as page:
        row = page.locator("#seq-coats tr[data-touch=t0]")
        assert row.locator("td.clicks").inner_text() == "1"
        assert row.locator("td.click-rate").inner_text() == "50.0%"
        assert row.locator("td.conversions").inner_text() == "1"
        assert row.locator("td.revenue").inner_text() == "1,200,000"
        assert row.locator("td.revenue-per-sent").inner_text() == "600,000"
        assert "revenue 1,200,000" in page.locator("#seq-coats").inner_text()
        assert page.locator("#seq-coats tr[data-touch=t1] td.revenue").inner_text() == "0"
        page.goto(base + "/dashboard/sequences?lang=fa")
        row = page.locator("#seq-coats tr[data-touch=t0]")
        assert row.locator("td.revenue").inner_text() == "۱٬۲۰۰٬۰۰۰"
        assert row.locator("td.clicks").inner_text() == "۱"
        page.goto(f"{base}/dashboard/contacts/{sara}?lang=en")
        timeline = page.locator("#timeline").inner_text()
        assert "clicked (bot)" in timeline and "credited to t0 (by click)" in timeline
        assert "value 1,200,000" in timeline
