"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Log in, open the delivery log, filter by a sequence, see the reason of a skipped urgent touch, open the
contact's timeline, log out (and find the old cookie refused). A screenshot of each page goes to test-output/. Chromium comes from
tests/setup_chromium.sh; without it these tests are skipped, saying why.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlparse

import pytest
from freezegun import freeze_time

from engine.apikeys import create_key
from engine.tokens import make_token
from tests.conftest import simple_sequence, winter_sequence
from tests.service_support import (PASSWORD, SECRET, SERVICE_SETTINGS, api_client, followup, free_port, stop,
                                   wait_for_server)

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "test-output"
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
def served(make_world, tmp_path):
    """A world where the urgent last touch of `winter` was skipped (offer ended), served by a real uvicorn."""
    world = make_world([winter_sequence(expires_after="48h"), simple_sequence("drip")], settings=SERVICE_SETTINGS)
    with freeze_time("2026-12-05 06:30:00", tz_offset=0) as frozen:
        ids = world.add_contacts({"phone": "09121111111", "first_name": "سارا", "email": "sara@example.com"},
                                 {"phone": "09122222222", "first_name": "Reza"})
        world.enroll("winter", ids[0])
        world.enroll("drip", ids[1])
        world.run(frozen, datetime(2026, 12, 9, 12, 0, tzinfo=timezone.utc), step=timedelta(hours=1))
    with world.engine.begin() as conn:
        key = create_key(conn, "dashboard-test")
    port = free_port()
    server = followup("serve", "--port", str(port), config=world.config.dir)
    try:
        wait_for_server(f"http://127.0.0.1:{port}", server)
        yield f"http://127.0.0.1:{port}", key, ids
    finally:
        stop(server)


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
        page.set_default_timeout(10_000)
        yield page
        context.close()
        assert outside == [], f"the dashboard tried to load from outside: {outside}"


#: where each word (its first occurrence in the element's text) is drawn: [left, top] in pixels
WHERE_ON_SCREEN = """(element, words) => words.map(word => {
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.data.indexOf(word);
    if (at >= 0) {
      const range = document.createRange();
      range.setStart(node, at);
      range.setEnd(node, at + word.length);
      const box = range.getBoundingClientRect();
      return [Math.round(box.left), Math.round(box.top)];
    }
  }
  return null;
})"""


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"dashboard-{name}.png"), full_page=True)


def no_secrets(page, key: str) -> None:
    html = page.content()
    for secret in (PASSWORD, SECRET, key):
        assert secret not in html


def test_log_in_filter_the_log_see_a_skip_reason_open_the_timeline_and_unsubscribe(served, page):
    base, key, (sara, _reza) = served
    page.goto(base + "/dashboard/log")
    assert "/login" in page.url
    shot(page, "1-login")
    page.fill("input[name=secret]", "wrong password")
    page.click("button[type=submit]")
    assert page.locator(".error").inner_text() == "Wrong password or key."
    page.fill("input[name=secret]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/dashboard/log")

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
    # the skip at 22:00 reads «ساعت ۲۲:۰۰» from right to left; not isolated, the day (۱۶) lands beside «ساعت»
    at = skipped.locator("td").nth(1)
    assert at.locator("time").get_attribute("dir") == "ltr"
    assert at.locator("bdi").evaluate("e => [getComputedStyle(e).direction, getComputedStyle(e).unicodeBidi]") == \
        ["rtl", "isolate"]
    (day_x, day_y), (word_x, word_y), (hour_x, hour_y) = at.evaluate(WHERE_ON_SCREEN, ["۱۶", "ساعت", "۲۲:۰۰"])
    assert day_x > word_x and day_y == word_y, "the Jalali day is not the rightmost word of its line"
    assert hour_x < word_x or hour_y > word_y, "the hour does not follow «ساعت» (to its left, or on the next line)"
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


def test_every_dashboard_time_is_an_ltr_time_element_with_its_jalali_date_isolated(make_world):
    """A Jalali date and time beside LTR text is reordered by the bidi algorithm unless it is isolated."""
    offer = {k: v for k, v in winter_sequence(expires_at="1405-09-20 23:59")["offer"].items() if k != "expires_after"}
    world = make_world([{**winter_sequence(), "offer": offer}], settings=SERVICE_SETTINGS)
    with freeze_time("2026-12-05 06:30:00", tz_offset=0):
        sara = world.add_contacts({"phone": "09121111111", "first_name": "سارا"})[0]
        world.enroll("winter", sara)
        world.tick()
    client, _ = api_client(world)
    assert client.post("/login", data={"secret": PASSWORD, "next": "/dashboard"}).status_code == 200
    sent = ('<time datetime="2026-12-05T10:00:00+03:30" dir="ltr">2026-12-05 10:00 '
            '(<bdi dir="rtl" lang="fa">۱۴ آذر ۱۴۰۵، ساعت ۱۰:۰۰</bdi>)</time>')
    deadline = ('ends <time datetime="2026-12-11T23:59:00+03:30" dir="ltr">2026-12-11 23:59 '
                '(<bdi dir="rtl" lang="fa">۲۰ آذر ۱۴۰۵، ساعت ۲۳:۵۹</bdi>)</time>')
    for path, shown in [("/dashboard/log", sent), (f"/dashboard/contacts/{sara}", sent), ("/dashboard", sent),
                        ("/dashboard/sequences", deadline)]:
        html = client.get(path).text
        assert shown in html, path
        if path != "/dashboard/sequences":  # there «ساعت» is also in the previews' "time left"
            assert html.count("ساعت") == html.count('(<bdi dir="rtl" lang="fa">') > 0, f"{path}: a date not isolated"
