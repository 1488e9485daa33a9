"""Short links: codes, rendering at send time inside the send protocol, offer.link, preview and tracked email."""
from __future__ import annotations

import re
import textwrap
from collections import Counter
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from engine.errors import ConfigError
from engine.links import CODE_LENGTH, is_code, new_code, with_utm, utm_params
from engine.models import Link
from engine.preview import preview
from engine.settings import load_settings
from providers.errors import TransientError

SARA = {"phone": "09121234567", "email": "sara@example.com", "first_name": "سارا"}
BASE = "https://s.shop.ir"
# a code may end in "-", after which a word boundary (\b) never is: the end is "no code character follows"
SHORT = re.compile(re.escape(BASE) + r"/([A-Za-z0-9_-]{10})(?![A-Za-z0-9_-])")
LINKS = {"links": {"base_url": BASE}}


def link_sequence(name: str = "coats", channel: str = "sms", **extra) -> dict:
    return {"name": name, **extra, "touches": [
        {"name": f"t{i}", "after": "0s" if i == 0 else "1d", "channel": channel,
         "template": "link.sms.j2" if channel == "sms" else "link.email.j2"} for i in range(3)]}


TEMPLATES = {
    "link.sms.j2": 'سلام {{ contact.first_name }}، پالتوها: {{ link("https://shop.example/coats?size=m") }}',
    "offer.sms.j2": "{{ offer.title }}: {{ offer.link }}",
    "link.email.j2": textwrap.dedent("""\
        {% block subject %}پالتو{% endblock %}
        {% block text %}ببینید https://shop.example/coats. لغو: {{ unsubscribe_url }}{% endblock %}
        {% block html %}<html><body><a href="https://shop.example/coats?a=1&amp;b=2">coats</a>
        <a href="{{ unsubscribe_url }}">unsubscribe</a></body></html>{% endblock %}"""),
}


def links_of(world) -> list[dict]:
    with world.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(Link.__table__).order_by(Link.__table__.c.created_at))
                .mappings()]


# -- codes --------------------------------------------------------------------------------------
def test_a_million_codes_are_unique_url_safe_and_short():
    codes = [new_code() for _ in range(1_000_000)]
    assert len(set(codes)) == len(codes)
    assert all(len(c) == CODE_LENGTH and is_code(c) for c in codes[:10_000])
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{10}", c) for c in codes[::97])


def test_codes_are_unguessable_every_character_uniform_and_no_order_between_consecutive_codes():
    codes = [new_code() for _ in range(200_000)]
    # the first 9 characters carry 6 random bits each: every one of the 64 symbols about equally often
    for position in range(9):
        counts = Counter(c[position] for c in codes)
        assert len(counts) == 64
        expected = len(codes) / 64
        assert max(abs(n - expected) for n in counts.values()) < expected * 0.1, position
    # consecutive codes share a first character as often as chance says (1/64), not more: nothing sequential
    same_start = sum(a[0] == b[0] for a, b in zip(codes, codes[1:]))
    assert same_start < len(codes) / 64 * 1.2
    assert not is_code("short") and not is_code("x" * 11) and not is_code("abc/def.gh")


def test_utm_parameters_are_added_unless_the_address_has_them():
    params = utm_params("winter", "hello", "sms", None)
    url = with_utm("https://shop.example/coats?size=m&utm_source=insta#top", params)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert query == {"size": ["m"], "utm_source": ["insta"], "utm_medium": ["sms"], "utm_campaign": ["winter"],
                     "utm_content": ["hello"]}
    assert parts.fragment == "top"
    custom = utm_params("winter", "hello", "sms", {"utm_campaign": "yalda-1405", "utm_content": ""})
    assert parse_qs(urlsplit(with_utm("https://shop.example/", custom)).query) == {
        "utm_source": ["followup"], "utm_medium": ["sms"], "utm_campaign": ["yalda-1405"]}


# -- rendering at send time ---------------------------------------------------------------------
def test_a_link_in_an_sms_is_a_short_link_of_that_message_with_its_target_stored(make_world, frozen):
    world = make_world([link_sequence()], settings=LINKS, templates=TEMPLATES)
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    (sms,) = world.sms.outbox
    (code,) = SHORT.findall(sms.text)
    (link,) = links_of(world)
    (message,) = world.messages(touch="t0")
    assert link["code"] == code and link["message_id"] == message["id"] and link["contact_id"] == sara
    assert link["url"] == "https://shop.example/coats?size=m"
    query = parse_qs(urlsplit(link["target"]).query)
    assert query == {"size": ["m"], "utm_source": ["followup"], "utm_medium": ["sms"], "utm_campaign": ["coats"],
                     "utm_content": ["t0"]}
    frozen.tick(timedelta(days=1))
    world.tick()
    second = world.sms.outbox[1]
    assert SHORT.findall(second.text) != [code]  # each message its own code
    assert len(links_of(world)) == 2


def test_a_message_sent_again_after_a_retry_carries_the_same_code(make_world, frozen):
    world = make_world([link_sequence()], settings={**LINKS, "worker": {"inline_retries": 0}}, templates=TEMPLATES)
    (sara,) = world.add_contacts(SARA)
    world.sms.fail_next(TransientError("gateway busy"))
    world.enroll("coats", sara)
    world.tick()
    (tried,) = world.sms.attempts
    assert world.messages(touch="t0")[0]["status"] == "scheduled"
    frozen.tick(timedelta(minutes=2))
    world.tick()
    (sent,) = world.sms.outbox
    assert SHORT.findall(sent.text) == SHORT.findall(tried.text) and len(links_of(world)) == 1


def test_offer_link_points_at_the_offers_url(make_world, frozen):
    seq = link_sequence(offer={"code": "W20", "title": "۲۰٪ تخفیف", "url": "https://shop.example/w20?utm_source=sms"})
    seq["touches"][0]["template"] = "offer.sms.j2"
    world = make_world([seq], settings=LINKS, templates=TEMPLATES)
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    (code,) = SHORT.findall(world.sms.outbox[0].text)
    (link,) = links_of(world)
    assert link["code"] == code and link["url"] == "https://shop.example/w20?utm_source=sms"
    assert parse_qs(urlsplit(link["target"]).query)["utm_source"] == ["sms"]  # present: kept


def test_a_sequences_utm_replaces_the_defaults(make_world, frozen):
    world = make_world([link_sequence(utm={"utm_campaign": "yalda", "utm_source": "panel"})], settings=LINKS,
                       templates=TEMPLATES)
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    query = parse_qs(urlsplit(links_of(world)[0]["target"]).query)
    assert query["utm_campaign"] == ["yalda"] and query["utm_source"] == ["panel"] and query["utm_medium"] == ["sms"]


def test_without_a_base_url_a_link_fails_its_message_with_the_fix(make_world, frozen):
    world = make_world([link_sequence()], templates=TEMPLATES)
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    (row,) = world.messages(touch="t0")
    assert row["status"] == "failed" and "links.base_url" in row["reason"] and "service.public_url" in row["reason"]
    assert not world.sms.outbox and not links_of(world)


def test_the_default_base_is_the_services_public_url(make_world, frozen):
    world = make_world([link_sequence()], settings={"service": {"public_url": "https://hooks.shop.example/"}},
                       templates=TEMPLATES)
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    code = links_of(world)[0]["code"]
    assert f"https://hooks.shop.example/l/{code}" in world.sms.outbox[0].text


def test_preview_counts_the_short_links_length_in_the_segments(make_world):
    world = make_world([link_sequence()], settings=LINKS, templates={
        **TEMPLATES, "link.sms.j2": "سلام {{ contact.first_name }}، " + "پالتو " * 6 + '{{ link("https://shop.example/c") }}'})
    (row, *_rest) = preview(world.config, world.config.sequences["coats"])
    (code,) = SHORT.findall(row.rendered.text)
    assert len(code) == CODE_LENGTH and not links_of(world)  # a sample: never stored
    without = len("سلام سارا، " + "پالتو " * 6)
    assert without + 1 + len("لغو11") <= 70 < len(row.rendered.text) + 1 + len("لغو11")
    assert row.sms.segments == 2


def test_a_bad_address_in_link_fails_the_message_naming_the_template(make_world, frozen):
    world = make_world([link_sequence()], settings=LINKS,
                       templates={**TEMPLATES, "link.sms.j2": '{{ link("javascript:alert(1)") }}'})
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    (row,) = world.messages(touch="t0")
    assert row["status"] == "failed" and "link.sms.j2" in row["reason"] and "http(s) address" in row["reason"]


# -- email --------------------------------------------------------------------------------------
EMAIL = {**LINKS, "secret_key": "k" * 32, "unsubscribe_url": "https://shop.example/u/{token}"}


def test_tracked_email_rewrites_html_and_text_links_but_not_unsubscribe(make_world, frozen):
    world = make_world([link_sequence(channel="email")], templates=TEMPLATES,
                       settings={**EMAIL, "links": {"base_url": BASE, "track_email": True}})
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    (mail,) = world.email.outbox
    codes = {r["url"]: r["code"] for r in links_of(world)}
    assert set(codes) == {"https://shop.example/coats?a=1&b=2", "https://shop.example/coats"}  # html unescaped
    assert "https://shop.example/coats" not in mail.text.replace(BASE, "")
    assert f'href="{BASE}/' in mail.html and "https://shop.example/coats?a=1" not in mail.html
    assert "https://shop.example/u/" in mail.text and 'href="https://shop.example/u/' in mail.html
    assert mail.text.count(BASE) == 1 and mail.html.count(BASE) == 1
    assert set(SHORT.findall(mail.text)) | set(SHORT.findall(mail.html)) <= set(codes.values())
    assert "<img" not in mail.html  # no pixel unless track_opens


def test_tracked_email_keeps_one_code_per_address_and_adds_the_pixel_when_asked(make_world, frozen):
    templates = {**TEMPLATES, "link.email.j2": textwrap.dedent("""\
        {% block subject %}s{% endblock %}
        {% block text %}https://shop.example/coats.{% endblock %}
        {% block html %}<body><a href='https://shop.example/coats'>x</a></body>{% endblock %}""")}
    world = make_world([link_sequence(channel="email")], templates=templates,
                       settings={**EMAIL, "links": {"base_url": BASE, "track_email": True, "track_opens": True}})
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    (mail,) = world.email.outbox
    rows = links_of(world)
    by_url = {r["url"]: r["code"] for r in rows}
    assert set(by_url) == {"https://shop.example/coats", "pixel:open"}
    assert mail.text == f"{BASE}/{by_url['https://shop.example/coats']}."  # the full stop is not in the link
    assert f"<a href='{BASE}/{by_url['https://shop.example/coats']}'>" in mail.html
    assert mail.html.endswith(f'<img src="{BASE}/{by_url["pixel:open"]}" width="1" height="1" alt="" '
                              'style="display:none"></body>')


def test_untracked_email_is_sent_as_written(make_world, frozen):
    world = make_world([link_sequence(channel="email")], templates=TEMPLATES, settings=EMAIL)
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    (mail,) = world.email.outbox
    assert BASE not in mail.text + mail.html and not links_of(world)


# -- settings -----------------------------------------------------------------------------------
def _settings(tmp_path, text: str):
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "settings.yaml").write_text(
        "templates_dir: templates\nproviders:\n  sms: [{name: s, type: memory}]\n  email: [{name: e, type: memory}]\n"
        + text, encoding="utf-8")
    return load_settings(tmp_path)


def test_the_links_and_attribution_settings_parse_with_their_defaults(tmp_path):
    plain = _settings(tmp_path, "")
    assert (plain.links.base_url, plain.links.track_email, plain.links.track_opens) == (None, False, False)
    assert plain.attribution.click_window == timedelta(days=5)
    assert plain.attribution.send_window == {"sms": timedelta(days=1), "email": timedelta(days=3)}
    given = _settings(tmp_path, "links: {base_url: 'https://s.shop.ir/', track_email: true, expire_after: 30d}\n"
                                "attribution: {click_window: 2d, send_window: 6h}\n")
    assert (given.links.base_url, given.links.track_email, given.links.expire_after) == \
        ("https://s.shop.ir", True, timedelta(days=30))
    assert given.attribution.send_window == {"sms": timedelta(hours=6), "email": timedelta(hours=6)}


def test_bad_links_and_attribution_settings_say_where_and_how(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        _settings(tmp_path, "links:\n  base_url: ftp://s.shop.ir\n  track_email: yes please\n  colour: red\n"
                            "attribution:\n  send_window: {sms: 1 week, fax: 1d}\n")
    found = [str(p) for p in caught.value.problems]
    for where, says in [("settings.yaml:6: links.base_url", "must be an http(s) address"),
                        ("settings.yaml:7: links.track_email", "must be true or false"),
                        ("settings.yaml:8: links.colour", "unknown key; links takes base_url"),
                        ("settings.yaml:10: attribution.send_window.sms", "is not a duration"),
                        ("settings.yaml:10: attribution.send_window.fax", "unknown channel")]:
        assert any(p.startswith(where + ":") and says in p for p in found), (where, found)


def test_a_sequences_offer_url_and_utm_are_checked(make_world):
    with pytest.raises(ConfigError) as caught:
        make_world([link_sequence(offer={"code": "W", "title": "t", "url": "shop.example/coats"},
                                  utm={"utm_term": "x", "utm_campaign": ["a"]})], settings=LINKS, templates=TEMPLATES)
    found = " | ".join(str(p) for p in caught.value.problems)
    assert "offer.url" in found and "full http(s) address" in found
    assert "utm.utm_term: unknown key; utm takes utm_source" in found and "utm.utm_campaign" in found


def test_a_message_taken_over_after_its_worker_died_is_sent_again_with_the_same_code(make_world, frozen):
    """The worker died at the provider: the message is `sending` with its code stored. Recovery asks the provider,
    which has no record, schedules it again, and the new send carries the code the first one did."""
    world = make_world([link_sequence()], settings=LINKS, templates=TEMPLATES)
    (sara,) = world.add_contacts(SARA)
    world.enroll("coats", sara)
    world.tick()
    (first,) = world.sms.outbox
    (row,) = world.messages(touch="t0")
    world.sms.outbox.clear()  # the provider never got it
    with world.engine.begin() as conn:
        conn.execute(sa.text("UPDATE messages SET status = 'sending', lease_owner = 'dead', lease_token = 'x', "
                             "lease_until = :past WHERE id = :id"),
                     {"past": row["sent_at"] - timedelta(minutes=1), "id": row["id"]})
    frozen.tick(timedelta(minutes=10))
    world.tick()
    world.tick()
    (again,) = world.sms.outbox
    assert world.messages(touch="t0")[0]["status"] == "sent"
    assert SHORT.findall(again.text) == SHORT.findall(first.text) and len(links_of(world)) == 1


def test_an_address_over_2000_bytes_fails_its_message_and_the_worker_goes_on(make_world, frozen):
    long = "https://shop.example/" + "پالتو" * 250  # 1,250 characters, 2,521 bytes in UTF-8
    world = make_world([link_sequence()], settings=LINKS,
                       templates={**TEMPLATES, "link.sms.j2": '{{ link("' + long + '") }}'})
    sara, ali = world.add_contacts(SARA, {"phone": "09351234567", "first_name": "علی"})
    world.enroll("coats", sara, ali)
    world.tick()
    rows = world.messages(touch="t0")
    assert [r["status"] for r in rows] == ["failed", "failed"] and "at most 2,000" in rows[0]["reason"]
    assert not links_of(world)
