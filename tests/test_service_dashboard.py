"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Log in, open the delivery log, filter by a sequence, see the reason of a skipped urgent touch, open the
contact's timeline, log out (and find the old cookie refused). A screenshot of each page goes to test-output/. Chromium comes from
tests/setup_chromium.sh; without it these tests are skipped, saying why.

The same dashboard in Persian (the default where the timezone is Asia/Tehran): right-to-left, Persian digits,
Jalali dates with the Gregorian one on hover, contacts by name and masked phone, reasons in words, the shipped
Vazirmatn font; the screenshots docs/dashboard-fa.png and docs/dashboard-en.png (in the README) come from it.
"""
from __future__ import annotations

from contextlib import contextmanager

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlparse

import pytest
from freezegun import freeze_time

from engine.apikeys import create_key
from engine.tokens import make_token
from tests.conftest import simple_sequence, winter_sequence
from tests.service_support import PASSWORD, SECRET, SERVICE_SETTINGS, serving

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "test-output"
DOCS = Path(__file__).resolve().parent.parent / "docs"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                 reason=f"{CHROMIUM} is missing: run tests/setup_chromium.sh (apt-get install chromium)")]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path}/followup.db"


@pytest.fixture
def served(make_world, tmp_path, request):
    """A world where the urgent last touch of `winter` was skipped (offer ended), served by a real uvicorn;
    ``service.locale`` is the fixture's parameter, or unset."""
    locale = getattr(request, "param", None)
    settings = {**SERVICE_SETTINGS, **({"service": {"locale": locale}} if locale else {})}
    world = make_world([winter_sequence(expires_after="48h"), simple_sequence("drip")], settings=settings)
    with freeze_time("2026-12-05 06:30:00", tz_offset=0) as frozen:
        ids = world.add_contacts({"phone": "09121111111", "first_name": "سارا", "email": "sara@example.com"},
                                 {"phone": "09122222222", "first_name": "Reza"})
        world.enroll("winter", ids[0])
        world.enroll("drip", ids[1])
        world.run(frozen, datetime(2026, 12, 9, 12, 0, tzinfo=timezone.utc), step=timedelta(hours=1))
    with world.engine.begin() as conn:
        key = create_key(conn, "dashboard-test")
    with serving(world.config.dir) as base:
        yield base, key, ids


@pytest.fixture
def page(tmp_path):
    SHOTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(tmp_path / "chromium-profile"), executable_path=CHROMIUM,
                                                        headless=True, args=FLAGS)
        outside: list[str] = []

        def only_local(route):
            host = urlparse(route.request.url).hostname
            if host == "127.0.0.1":
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", only_local)
        page = context.new_page()
        page.set_viewport_size({"width": 1280, "height": 800})
        page.set_default_timeout(10_000)
        yield page
        context.close()
        assert outside == [], f"the dashboard tried to load from outside: {outside}"


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"dashboard-{name}.png"), full_page=True)


def log_in(page, landing: str, refused: str) -> None:
    """On the login page: a wrong password is refused with ``refused``, the right one lands on ``landing``."""
    page.fill("input[name=secret]", "wrong password")
    page.click("button[type=submit]")
    assert page.locator(".error").inner_text() == refused
    page.fill("input[name=secret]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(landing)


@contextmanager
def dashboard_page(base: str, profile: Path, path: str = "/dashboard/sequences"):
    """A headless Chromium page logged in to the dashboard at ``base`` (after a refused wrong password), on
    ``path`` in English; the browser is closed afterwards."""
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                        args=FLAGS)
        try:
            page = context.new_page()
            page.set_default_timeout(10_000)
            page.goto(base + path)
            log_in(page, base + path + "*", refused="گذرواژه یا کلید نادرست است.")
            page.goto(base + path + "?lang=en")
            yield page
        finally:
            context.close()


def no_secrets(page, key: str) -> None:
    html = page.content()
    for secret in (PASSWORD, SECRET, key):
        assert secret not in html


@pytest.mark.parametrize("served", ["en"], indirect=True)
def test_log_in_filter_the_log_see_a_skip_reason_open_the_timeline_and_unsubscribe(served, page):
    base, key, (sara, _reza) = served
    page.goto(base + "/dashboard/log")
    assert "/login" in page.url
    shot(page, "1-login")
    log_in(page, base + "/dashboard/log", refused="Wrong password or key.")

    page.click("text=Overview")
    page.wait_for_url(base + "/dashboard")
    assert page.locator("text=mem-sms").count() >= 1
    shot(page, "2-overview")
    no_secrets(page, key)

    page.click("text=Delivery log")
    page.wait_for_url(base + "/dashboard/log")
    assert "drip" in page.locator("#log").inner_text()
    shot(page, "3-log")
    page.select_option("select[name=sequence]", "winter")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/dashboard/log?sequence=winter**")
    rows = page.locator("#log tr").all_inner_texts()[1:]
    assert rows and all("winter" in r for r in rows) and not any("drip" in r for r in rows)
    skipped = page.locator("#log tr", has_text="last-chance").filter(has_text="skipped")
    assert skipped.count() == 1
    reason = skipped.locator("td").nth(8).inner_text()
    assert "offer" in reason, reason
    shot(page, "4-log-winter")

    skipped.locator("td a").first.click()
    page.wait_for_url(f"{base}/dashboard/contacts/{sara}")
    timeline = page.locator("#timeline").inner_text()
    assert "skipped" in timeline and "last-chance" in timeline and "سارا" in page.content()
    assert page.locator("#timeline td.bidi").first.evaluate("e => getComputedStyle(e).unicodeBidi") == "plaintext"
    shot(page, "5-contact")
    no_secrets(page, key)

    page.click("text=Sequences")
    page.wait_for_url(base + "/dashboard/sequences")
    preview = page.locator("#seq-winter pre.preview").first
    assert preview.get_attribute("dir") == "auto" and "عزیز" in preview.inner_text()
    assert preview.evaluate("e => getComputedStyle(e).direction") == "rtl"
    assert "WINTER20" in page.locator("#seq-winter").inner_text()
    shot(page, "6-sequences")

    # logging out ends the session on the server: the cookie copied before is refused afterwards
    copied = [c for c in page.context.cookies() if c["name"] == "followup_session"]
    page.click("text=Log out")
    page.wait_for_url(base + "/login")
    page.context.add_cookies(copied)
    page.goto(base + "/dashboard")
    assert "/login" in page.url

    # the one-click unsubscribe page: Persian right-to-left, English left-to-right
    page.goto(f"{base}/u/{make_token(SECRET, sara, 'sms')}")
    assert page.locator("section[lang=fa]").evaluate("e => getComputedStyle(e).direction") == "rtl"
    assert page.locator("section[lang=en]").evaluate("e => getComputedStyle(e).direction") == "ltr"
    shot(page, "7-unsubscribe")
    page.click("#unsubscribe")
    page.wait_for_selector("#done")
    shot(page, "8-unsubscribed")


def _font_loaded(page) -> bool:
    return page.evaluate("""document.fonts.ready.then(() =>
        [...document.fonts].some(f => f.family.replace(/"/g, '') == 'Vazirmatn' && f.status == 'loaded'))""")


def test_the_dashboard_speaks_persian_right_to_left_with_jalali_dates_and_switches_to_english(served, page):
    base, key, (sara, _reza) = served
    page.goto(base + "/dashboard/log?sequence=winter")
    assert page.locator("html").get_attribute("lang") == "fa" and page.locator("html").get_attribute("dir") == "rtl"
    log_in(page, base + "/dashboard/log", refused="گذرواژه یا کلید نادرست است.")
    page.goto(base + "/dashboard/log?sequence=winter")

    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    assert page.locator("header").inner_text().split()[1:3] == ["نمای", "کلی"]
    assert _font_loaded(page), "the shipped Vazirmatn font did not load"
    assert re.fullmatch(r"[۰-۹]+", page.locator("#log tr").nth(1).locator("td").first.inner_text())
    # contacts by name and masked phone, never the whole number
    skipped = page.locator("#log tr", has_text="last-chance").filter(has_text="رد شده")
    assert skipped.count() == 1
    contact = skipped.locator("td a.contact")
    assert contact.locator("bdi").first.inner_text() == "سارا"
    assert contact.locator("bdi.address").inner_text() == "+۹۸۹۱۲***۱۱۱۱"
    assert "9121111111" not in page.content() and "۹۱۲۱۱۱۱۱۱۱" not in page.content()
    # the reason in words, its timestamp a Jalali date in Tehran time, isolated, the Gregorian one on hover
    reason = skipped.locator("td").nth(8)
    assert reason.inner_text().startswith("مهلت پیشنهاد گذشته: پیشنهاد در ")
    stamp = reason.locator("time")
    assert stamp.get_attribute("dir") == "rtl" and "آذر ۱۴۰۵" in stamp.inner_text()
    assert stamp.evaluate("e => getComputedStyle(e).unicodeBidi") == "isolate"
    assert stamp.get_attribute("datetime").endswith("+03:30")
    assert re.fullmatch(r"2026-12-\d\d \d\d:\d\d", stamp.get_attribute("title"))
    at = skipped.locator("td").nth(1).locator("time")
    assert "۱۴۰۵" in at.inner_text() and at.get_attribute("title").startswith("2026-12-")
    page.screenshot(path=str(DOCS / "dashboard-fa.png"))
    shot(page, "fa-log")

    page.click("text=نمای کلی")
    page.wait_for_url(base + "/dashboard")
    assert page.locator("text=mem-sms").count() >= 1 and _font_loaded(page)
    shot(page, "fa-overview")
    page.goto(f"{base}/dashboard/contacts/{sara}")
    assert page.locator("h1#contact").inner_text().startswith("سارا")
    assert "رد شده" in page.locator("#timeline").inner_text()
    no_secrets(page, key)
    shot(page, "fa-contact")
    page.click("text=دنباله‌ها")
    page.wait_for_url(base + "/dashboard/sequences")
    assert "پیش‌نمایش" in page.locator("#seq-winter h3").inner_text()
    assert page.locator("#seq-winter pre.preview").first.evaluate("e => getComputedStyle(e).direction") == "rtl"
    shot(page, "fa-sequences")

    # the switch keeps English for this browser until switched back
    page.goto(base + "/dashboard/log?sequence=winter")
    page.click("#lang")
    page.wait_for_url(base + "/dashboard/log")
    assert page.locator("html").get_attribute("dir") == "ltr" and "Delivery log" in page.locator("h1").inner_text()
    page.goto(base + "/dashboard/log?sequence=winter")
    assert page.locator("html").get_attribute("lang") == "en"
    skipped = page.locator("#log tr", has_text="last-chance").filter(has_text="skipped")
    assert skipped.locator("td").nth(8).inner_text().startswith("offer expired: the offer ended at 2026-12-")
    assert "آذر ۱۴۰۵" in skipped.locator("td").nth(8).locator("time").get_attribute("title")
    assert skipped.locator("td a.contact").inner_text().split() == ["سارا", "+98912***1111"]
    page.screenshot(path=str(DOCS / "dashboard-en.png"))
    page.click("#lang")
    page.wait_for_url(base + "/dashboard/log")
    assert page.locator("html").get_attribute("lang") == "fa"
