"""The KPI page in a real browser (Chromium): the figures with their definitions on hover, the four SVG charts,
and right to left in Persian."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from engine.kpi import DEFINITIONS
from tests.service_support import SERVICE_SETTINGS, serving
from tests.test_kpi import build_shop

# the browser tests' marks (slow; skipped without Chromium or Playwright) and their SQLite-only database
from tests.test_service_dashboard import CHROMIUM, FLAGS, db_url, log_in, pytestmark, sync_api  # noqa: F401


def a_recent_saturday() -> datetime:
    """10:00 in Tehran on the latest Saturday at least 8 days ago: the server reads the real clock, so the shop's
    two days must lie inside its default 30-day window."""
    day = datetime.now(timezone.utc).replace(hour=6, minute=30, second=0, microsecond=0) - timedelta(days=8)
    while day.weekday() != 5:
        day -= timedelta(days=1)
    return day


@pytest.fixture
def served(make_world):
    with freeze_time(a_recent_saturday(), tz_offset=0) as clock:
        world = build_shop(make_world, clock, **SERVICE_SETTINGS)
    with serving(world.config.dir) as base:
        yield base


def test_the_kpi_page_shows_the_figures_defined_on_hover_and_charts_right_to_left(served, tmp_path):
    base = served
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                        headless=True, args=FLAGS)
        requests: list[str] = []
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.set_default_timeout(10_000)
        page.goto(base + "/dashboard/kpi")
        log_in(page, base + "/dashboard/kpi*", refused="گذرواژه یا کلید نادرست است.")
        page.goto(base + "/dashboard/kpi?lang=en")
        revenue = page.locator("tr[data-figure=revenue]")
        assert revenue.locator("th").get_attribute("title") == DEFINITIONS["revenue"]
        assert revenue.locator("td").inner_text() == "3,500"
        assert page.locator("tr[data-figure=conversion_rate] td").inner_text() == "50.0%"
        assert page.locator("tr[data-figure=return_on_cost] td").inner_text() == "3.38"
        assert "price 1" in page.locator("tr[data-figure=top_objections] td").inner_text()
        assert page.locator("svg.chart").count() == 4
        assert page.locator("svg.chart polyline.series").count() == 3
        ltr_label, chart = (page.locator("svg.chart").first.locator("text").first.bounding_box(),
                            page.locator("svg.chart").first.bounding_box())
        page.goto(base + "/dashboard/kpi?lang=fa&by=source")
        assert page.locator("html").get_attribute("dir") == "rtl"
        assert page.locator("tr[data-figure=lead_quality] td").all_inner_texts() == ["۰.۰٪", "۰.۰٪", "۱۰۰.۰٪"]  # (none), google, instagram
        rtl_label = page.locator("svg.chart").first.locator("text").first.bounding_box()
        # the funnel's first label (enrolled) stands at the left in English and at the right in Persian
        middle = chart["x"] + chart["width"] / 2
        assert ltr_label["x"] + ltr_label["width"] < middle < rtl_label["x"]
        assert all(u.startswith(base) for u in requests), [u for u in requests if not u.startswith(base)]
        context.close()
