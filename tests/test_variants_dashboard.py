"""Per-variant figures in `followup stats`, the API and the dashboard (a real headless Chromium)."""
from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from engine.abtests import promote
from engine.cli import State, cli
from engine.clock import now
from tests.journey_support import engage
from tests.service_support import SERVICE_SETTINGS, api_client, auth, serving
from tests.test_link_stats import browser
from tests.test_variants import TEMPLATES, ab_sequence, contacts, value_messages


def variants_sent(world, frozen) -> Counter:
    """Twelve contacts get the value touch; the story readers click. Returns sends per variant."""
    ids = contacts(world, 12)
    world.enroll("coats", *ids)
    world.tick()
    frozen.tick(timedelta(hours=1))
    world.tick()
    for m in value_messages(world):
        if m["variant"] == "story":
            engage(world, m["contact_id"], "value")
    return Counter(m["variant"] for m in value_messages(world))


def test_stats_and_the_api_show_each_variant(make_world, frozen):
    world = make_world([ab_sequence(min_per_variant=100)], settings=SERVICE_SETTINGS, templates=TEMPLATES)
    sent = variants_sent(world, frozen)
    result = CliRunner().invoke(cli, ["--config", str(world.root / "config"), "stats", "coats", "--json"], obj=State())
    assert result.exit_code == 0, result.output
    test = json.loads(result.output)["sequences"][0]["variants"]["value"]
    assert test["state"] == "running"
    assert {n: (v["sent"], v["clicks"]) for n, v in test["variants"].items()} == \
        {"story": (sent["story"], sent["story"]), "discount": (sent["discount"], 0)}
    client, key = api_client(world)
    body = client.get("/api/v1/sequences/coats/stats", headers=auth(key)).json()
    assert body["variants"]["value"]["variants"]["story"]["p_best"] > 0.9


@pytest.fixture
def served(make_world, tmp_path, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("one browser run is enough (SQLite)")
    world = make_world([ab_sequence(min_per_variant=100)], settings=SERVICE_SETTINGS, templates=TEMPLATES)
    with freeze_time("2026-12-05 06:30:00", tz_offset=0) as frozen:
        sent = variants_sent(world, frozen)
        with world.engine.begin() as conn:
            promote(conn, "coats", "value", "story", now())
    with serving(world.config.dir) as base:
        yield base, sent


@pytest.mark.slow
@browser
def test_the_dashboard_shows_the_variants_and_the_winner(served, tmp_path):
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from tests.test_service_dashboard import dashboard_page

    base, sent = served
    with dashboard_page(base, tmp_path / "profile") as page:
        test = page.locator("#ab-coats-value")
        assert test.get_attribute("data-state") == "winner"
        assert test.locator("p.ab-state").inner_text() == "winner: story"
        assert test.locator("tr[data-variant=story] td.sent").inner_text() == str(sent["story"])
        assert test.locator("tr[data-variant=story] td.clicks").inner_text() == str(sent["story"])
        assert test.locator("tr[data-variant=discount] td.sent").inner_text() == str(sent["discount"])
        assert test.locator("tr[data-variant=discount] td.clicks").inner_text() == "0"
        page.goto(base + "/dashboard/sequences?lang=fa")
        assert page.locator("#ab-coats-value p.ab-state").inner_text() == "برنده: story"
