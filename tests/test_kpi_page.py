"""The KPI page in a real browser (Chromium): the figures with their definitions on hover, the five SVG charts,
and right to left in Persian; the funnel per touch on a hand-worked story (tests.test_kpi.build_touch_shop)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from engine.kpi import DEFINITIONS
from tests.service_support import SERVICE_SETTINGS, serving
from tests.test_kpi import build_shop, build_touch_shop

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
def served(make_world, request):
    """The story of the fixture's parameter (a builder of tests.test_kpi; build_shop unless given), served."""
    build = getattr(request, "param", build_shop)
    with freeze_time(a_recent_saturday(), tz_offset=0) as clock:
        world = build(make_world, clock, **SERVICE_SETTINGS)
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
        # the funnels per sequence and per touch, the days, revenue by source, the objections
        assert page.locator("svg.chart").count() == 5
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


@pytest.mark.parametrize("served", [build_touch_shop], indirect=True)
def test_the_funnel_per_touch_shows_the_hand_worked_figures_right_to_left_with_persian_hover(served, tmp_path):
    from engine.service.i18n import FA
    from engine.text import fa_digits
    from tests.test_kpi import TOUCH_FIGURES
    from tests.test_service_dashboard import SHOTS, dashboard_page

    base = served
    with dashboard_page(base, tmp_path / "profile", "/dashboard/kpi") as page:
        page.goto(base + "/dashboard/kpi?lang=fa")
        assert page.locator("html").get_attribute("dir") == "rtl"
        funnel = page.locator("section.touch-funnel[data-sequence=coats] svg.chart")
        assert funnel.count() == 1
        for touch, figures in TOUCH_FIGURES.items():
            rows = funnel.locator(f"g.section[data-section={touch}] g.row")
            assert rows.locator("text.value").all_text_contents() == [fa_digits(n) for n in figures], touch
            assert [rows.nth(i).get_attribute("data-step") for i in range(4)] == \
                ["touch_sent", "touch_delivered", "touch_clicked", "touch_converted"]
        # hover: each bar's <title> names the step, its figure and its definition in Persian
        converted = funnel.locator("g.section[data-section=t1] g.row[data-step=touch_converted] > title")
        assert converted.text_content() == f"خرید: ۲ ({FA['kpi.def.touch_converted']})"
        sent = page.locator("abbr[data-step=touch_sent]")
        assert sent.get_attribute("title") == FA["kpi.def.touch_sent"]
        assert page.locator("tr[data-figure=leads] th").get_attribute("title") == FA["kpi.def.leads"]
        # right to left: the step's label stands right of its bar, inside the drawing, and the figure left of the
        # bar, which grows leftwards from the same edge as the next one
        first = funnel.locator("g.section[data-section=t0] g.row").first
        label, bar = first.locator("text").first.bounding_box(), first.locator("rect").bounding_box()
        figure, drawing = first.locator("text.value").bounding_box(), funnel.bounding_box()
        assert figure["x"] + figure["width"] <= bar["x"] and bar["x"] + bar["width"] <= label["x"]
        assert label["x"] + label["width"] <= drawing["x"] + drawing["width"] and figure["x"] >= drawing["x"]
        smaller = funnel.locator("g.section[data-section=t0] g.row").nth(1).locator("rect").bounding_box()
        assert abs((smaller["x"] + smaller["width"]) - (bar["x"] + bar["width"])) < 1 and smaller["x"] > bar["x"]
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "kpi-touch-funnel-fa.png"), full_page=True)
        page.goto(base + "/dashboard/kpi?lang=en")
        en_rows = page.locator("section.touch-funnel svg g.section[data-section=t0] g.row")
        assert en_rows.locator("text.value").all_text_contents() == ["4", "3", "2", "1"]
        assert page.locator("abbr[data-step=touch_sent]").get_attribute("title") == \
            "messages of the touch sent within the window"
