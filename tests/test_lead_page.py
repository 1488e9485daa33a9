"""The rep's lead page /leads/{token}: token expiry and revocation, outcomes through the page (CSRF-bound
form), the CLI and the API; a won lead is a converted event credited to the handoff."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli import cli
from engine.leads import lead_url
from engine.models import ContactEvent, Handoff
from tests.service_support import api_client, auth
from tests.test_handoff import SARA, handoffs, world  # noqa: F401  (the fixture)

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def page_path(world) -> str:
    (handoff,) = handoffs(world)
    url = lead_url(world.config, handoff)
    return url[url.index("/leads/"):]


@pytest.fixture
def lead(world):
    world.event(world.sara, "replied")
    client, key = api_client(world)
    return client, key, page_path(world)


def events(world, kind: str) -> list[dict]:
    table = ContactEvent.__table__
    with world.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).where(table.c.type == kind)).mappings()]


def post(client, path: str, **fields):
    page = client.get(path)
    assert page.status_code == 200
    return client.post(path, data={"csrf": CSRF.search(page.text).group(1), **fields}, follow_redirects=False)


def test_the_page_shows_the_lead_rtl_on_a_phone_with_its_timeline(lead):
    client, _, path = lead
    page = client.get(path + "?lang=fa")
    assert page.status_code == 200
    assert '<html lang="fa" dir="rtl">' in page.text and 'name="viewport"' in page.text
    assert "سارا رضایی" in page.text and 'href="tel:+989121234567"' in page.text
    assert '<b id="lead-score">20.0</b>' in page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    timeline = page.text[page.text.index('id="timeline"'):]
    assert timeline.count("<tr>") >= 4  # header, the sends, the reply, the cancellations


def test_won_records_a_converted_event_credited_to_the_handoff(lead, world):
    client, _, path = lead
    answer = post(client, path, outcome="won", value="1,200,000")
    assert answer.status_code == 303 and answer.headers["location"] == f"{path}?saved=1"
    (handoff,) = handoffs(world)
    assert (handoff["outcome"], handoff["value"], handoff["outcome_by"]) == ("won", 1200000, "rep Mina (lead page)")
    (sale,) = events(world, "converted")
    assert (sale["value"], sale["attributed_by"], sale["sequence"], sale["source"]) == (1200000, "handoff", "coats", "lead")
    shown = client.get(f"{path}?saved=1&lang=fa").text
    assert 'id="saved"' in shown and "نتیجه ثبت شد." in shown, shown[:3000]
    assert "مبلغ ۱٬۲۰۰٬۰۰۰" in shown, shown[:3000]
    assert "value 1,200,000" in client.get(f"{path}?lang=en").text
    # the same sale again is refused, and counted once
    assert post(client, path, outcome="won", value="5").status_code == 400
    assert len(events(world, "converted")) == 1


def test_lost_takes_a_listed_objection_or_free_text_and_later_a_date(lead, world, frozen):
    client, _, path = lead
    assert post(client, path, outcome="lost", objection="price").status_code == 303
    assert handoffs(world)[0]["objection"] == "price"
    assert post(client, path, outcome="lost", objection="price", objection_other="شوهرش مخالف است").status_code == 303
    assert handoffs(world)[0]["objection"] == "شوهرش مخالف است"
    assert post(client, path, outcome="follow_up_later", follow_up_on="2026-12-20").status_code == 303
    row = handoffs(world)[0]
    assert (row["outcome"], str(row["follow_up_on"]), row["objection"]) == ("follow_up_later", "2026-12-20", None)
    assert events(world, "converted") == []
    # the date in the page's calendar, the other one on hover
    assert '<time datetime="2026-12-20" dir="rtl" title="2026-12-20">۲۹ آذر ۱۴۰۵</time>' in client.get(path + "?lang=fa").text
    assert '<time datetime="2026-12-20" dir="ltr" title="۲۹ آذر ۱۴۰۵">2026-12-20</time>' in client.get(path + "?lang=en").text


ERROR = re.compile(r'<p class="error" id="error" data-why="(\w+)">(.*?)</p>', re.S)


@pytest.mark.parametrize("fields, code, says, in_persian", [
    ({"outcome": "won"}, "needs_value", "needs its value", "برای فروش، مبلغ آن را بنویسید"),
    ({"outcome": "won", "value": "lots"}, "not_a_number", "must be a number", "مبلغ باید عدد باشد"),
    ({"outcome": "won", "value": "-5"}, "needs_value", "needs its value", "برای فروش، مبلغ آن را بنویسید"),
    ({"outcome": "lost"}, "needs_objection", "needs its objection", "اعتراض را برگزینید"),
    ({"outcome": "follow_up_later", "follow_up_on": "tomorrow"}, "not_a_date", "YYYY-MM-DD", "«tomorrow» تاریخ نیست"),
    ({"outcome": "follow_up_later", "follow_up_on": "2020-01-01"}, "date_from_today", "from today",
     "از امروز (۲۰۲۶-۱۲-۰۵) به بعد"),
    ({"outcome": "maybe"}, "not_an_outcome", "Choose an outcome", "یک نتیجه را برگزینید"),
    ({"outcome": "lost", "objection_other": "x" * 301}, "too_long", "objection must be at most 300",
     "اعتراض باید حداکثر ۳۰۰ نویسه باشد"),
])
def test_bad_input_is_a_400_with_the_reason_in_persian_or_english_and_writes_nothing(lead, world, frozen, fields,
                                                                                    code, says, in_persian):
    client, _, path = lead
    for lang, words in (("en", says), ("fa", in_persian)):
        answer = post(client, f"{path}?lang={lang}", **fields)
        assert answer.status_code == 400
        why, text = ERROR.search(answer.text).groups()
        assert why == code and words in text, (lang, text)
    assert handoffs(world)[0]["outcome"] is None


def test_every_refusal_of_an_outcome_has_its_words_in_both_locales():
    from pathlib import Path

    from engine.service.i18n import EN, FA

    source = (Path(__file__).resolve().parent.parent / "engine" / "leads.py").read_text(encoding="utf-8")
    codes = set(re.findall(r'OutcomeError\("(\w+)"', source))
    assert {"needs_value", "needs_objection", "not_a_date", "too_long", "already_won"} <= codes
    for code in codes | {"bad_form", "cross_site", "not_a_number"}:
        assert f"lead.error.{code}" in EN and f"lead.error.{code}" in FA, code


def test_the_form_needs_its_csrf_token_and_the_same_origin(lead, world):
    client, _, path = lead
    assert client.post(path, data={"outcome": "lost", "objection": "price"}).status_code == 403
    assert client.post(path, data={"outcome": "lost", "objection": "price", "csrf": "forged"}).status_code == 403
    csrf = CSRF.search(client.get(path).text).group(1)
    answer = client.post(path, data={"outcome": "lost", "objection": "price", "csrf": csrf},
                         headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    answer = client.post(path, data={"outcome": "lost", "objection": "price", "csrf": csrf},
                         headers={"Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 403
    assert handoffs(world)[0]["outcome"] is None
    big = client.post(path, content=b"csrf=" + b"a" * 20000, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert big.status_code == 413


def test_an_expired_a_revoked_or_a_forged_token_is_a_404(lead, world, frozen, monkeypatch):
    client, _, path = lead
    (handoff,) = handoffs(world)
    head, stamp, sig = path[len("/leads/"):].split(".")
    for forged in (f"{head}.{stamp}.{sig[:-1]}A" if sig[-1] != "A" else f"{head}.{stamp}.{sig[:-1]}B",
                   f"{int(head) + 1}.{stamp}.{sig}", f"{head}.{int(stamp) + 86400}.{sig}", "x", "1.2", "9" * 300):
        forged_page = client.get(f"/leads/{forged}")
        assert forged_page.status_code == 404 and 'data-why="invalid"' in forged_page.text, forged
    monkeypatch.setenv("FOLLOWUP_CONFIG", str(world.root / "config"))
    runner = CliRunner()
    assert runner.invoke(cli, ["lead", "revoke", SARA["phone"]]).exit_code == 0
    refused = client.get(path + "?lang=fa")
    assert refused.status_code == 404 and 'data-why="invalid"' in refused.text
    assert "این پیوند معتبر نیست" in refused.text
    assert post_blind(client, path).status_code == 404
    renewed = runner.invoke(cli, ["lead", "link", SARA["phone"], "--renew"])
    assert renewed.exit_code == 0, renewed.output
    new_path = renewed.output.split()[0][renewed.output.index("/leads/"):]
    assert new_path != path and client.get(new_path).status_code == 200
    frozen.tick(world.config.settings.sales.page_expires_after + timedelta(seconds=1))
    expired = client.get(new_path)
    assert expired.status_code == 404 and 'data-why="expired"' in expired.text
    assert "This lead link has expired" in expired.text
    assert "مهلت این پیوند گذشته است" in client.get(new_path + "?lang=fa").text
    assert post_blind(client, new_path).status_code == 404


def post_blind(client, path):
    return client.post(path, data={"outcome": "lost", "objection": "price", "csrf": "x"})


def test_the_cli_records_outcomes(lead, world, monkeypatch):
    monkeypatch.setenv("FOLLOWUP_CONFIG", str(world.root / "config"))
    runner = CliRunner()
    lost = runner.invoke(cli, ["lead", "lost", SARA["phone"], "--objection", "timing"])
    assert lost.exit_code == 0 and "objection: timing" in lost.output
    bad = runner.invoke(cli, ["lead", "later", SARA["phone"], "--on", "someday"])
    assert bad.exit_code != 0 and "YYYY-MM-DD" in str(bad.exception)
    won = runner.invoke(cli, ["lead", "won", SARA["phone"], "--value", "900000"])
    assert won.exit_code == 0, won.output
    assert handoffs(world)[0]["outcome"] == "won" and events(world, "converted")[0]["attributed_by"] == "handoff"
    shown = runner.invoke(cli, ["lead", "show", SARA["phone"]])
    assert "to Mina (replied): won" in shown.output
    never = runner.invoke(cli, ["lead", "won", "#%d" % handoffs(world)[0]["id"], "--value", "1"])
    assert never.exit_code != 0


def test_the_api_records_outcomes_with_a_key_only(lead, world):
    client, key, _ = lead
    url = f"/api/v1/leads/{SARA['phone']}/outcome"
    assert client.post(url, json={"outcome": "lost", "objection": "price"}).status_code == 401
    assert client.post(url, json={"outcome": "lost"}, headers=auth(key)).status_code == 422
    assert client.post(url, json={"outcome": "won", "value": -1}, headers=auth(key)).status_code == 422
    assert client.post(url, json={"outcome": "lost", "objection": "price", "x": 1}, headers=auth(key)).status_code == 422
    assert client.post("/api/v1/leads/09350000000/outcome", json={"outcome": "lost", "objection": "price"},
                       headers=auth(key)).status_code == 404
    answer = client.post(url, json={"outcome": "won", "value": 5000}, headers=auth(key))
    assert answer.status_code == 200 and answer.json()["outcome"] == "won"
    lead_view = client.get(f"/api/v1/leads/{SARA['phone']}", headers=auth(key)).json()
    assert lead_view["handoffs"][0]["outcome"] == "won" and lead_view["score"] == 20


# -- the page in a real browser, on a phone's screen -------------------------------------------------
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def served_lead(make_world, tmp_path, db_url):
    import os

    from freezegun import freeze_time

    from tests.service_support import serving
    from tests.test_handoff import HANDOFF, TEAM
    from tests.test_links import BASE, TEMPLATES, link_sequence
    from tests.test_scoring import SALES_TEMPLATES
    from tests.service_support import SERVICE_SETTINGS

    if not db_url.startswith("sqlite"):
        pytest.skip("one browser run is enough (SQLite)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: run tests/setup_chromium.sh (apt-get install chromium)")
    world = make_world([link_sequence(handoff=HANDOFF)], templates={**TEMPLATES, **SALES_TEMPLATES},
                       settings={**SERVICE_SETTINGS, "links": {"base_url": BASE}, "sales": {"team": TEAM}})
    with freeze_time("2026-12-05 06:30:00", tz_offset=0):
        (sara,) = world.add_contacts(SARA)
        world.enroll("coats", sara)
        world.tick()
        world.event(sara, "replied")
    with serving(world.config.dir) as base:
        yield world, base + page_path(world)


@pytest.mark.slow
def test_a_rep_records_a_sale_on_a_phone_sized_screen(served_lead, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from tests.test_service_dashboard import FLAGS

    world, url = served_lead
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(url)
        assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
        assert page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing wider than the phone
        assert page.locator("#lead-name").inner_text() == "سارا رضایی"
        assert page.locator("#lead-phone").get_attribute("href") == "tel:+989121234567"
        page.locator("input[name=outcome][value=won]").check()
        page.locator("#value").fill("2500000")
        page.locator("#save").click()
        page.wait_for_load_state()
        assert "saved=1" in page.url, page.content()[-3000:]
        assert page.locator("#saved").is_visible()
        assert "فروش" in page.locator("#outcome").inner_text()
        page.locator("input[name=outcome][value=lost]").check()
        page.locator("#save").click()  # no objection: refused, with the reason in Persian (the config's locale)
        assert "اعتراض را برگزینید" in page.locator("#error").inner_text()
        browser.close()
    assert handoffs(world)[0]["outcome"] == "won"
    (sale,) = events(world, "converted")
    assert (sale["value"], sale["attributed_by"]) == (2500000, "handoff")


def test_a_value_in_persian_digits_is_read_and_hostile_input_is_a_4xx_in_the_readers_words(lead, world):
    client, _, path = lead
    page = client.get(path + "?lang=xx")  # an unknown language: the default (English in this test client)
    assert page.status_code == 200 and '<html lang="en" dir="ltr">' in page.text
    csrf = CSRF.search(page.text).group(1)
    broken = client.post(path + "?lang=fa", content=b"--x\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n",
                         headers={"Content-Type": "multipart/form-data"})  # no boundary: unreadable
    assert broken.status_code == 400 and "این فرم خوانده نشد" in broken.text
    answer = client.post(path + "?lang=fa", data={"csrf": csrf, "outcome": "won", "value": "۱٬۲۰۰٬۰۰۰"},
                         follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"{path}?saved=1&lang=fa"
    assert handoffs(world)[0]["value"] == 1200000
    again = client.post(path + "?lang=fa", data={"csrf": csrf, "outcome": "won", "value": "5"})
    assert again.status_code == 400 and "هر فروش یک بار شمرده می‌شود" in again.text
