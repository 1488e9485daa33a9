"""Unit tests of the engine's and the providers' pure functions (no database, no network, no sleeping)."""
from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from jinja2.sandbox import SecurityError

from engine.addresses import normalize_email, normalize_phone
from engine.durations import format_duration, parse_duration
from engine.journal import LOG_FIELDS, log_line
from engine.sms import sms_info, with_footer
from engine.templates import (ContactView, OfferView, RenderError, Renderer, SequenceView, TouchView, human_duration,
                              jalali, literal_urgency)
from engine.text import mask_address, mask_phone
from engine.tokens import make_token, read_token
from engine.window import SendWindow, local_day_bounds, next_allowed
from providers.errors import ProviderConfigError
from providers.file import FileProvider
from providers.memory import MemoryProvider
from providers.ratelimit import RateLimiter, parse_rate
from providers.registry import create_provider, known_types

TEHRAN = ZoneInfo("Asia/Tehran")
TORONTO = ZoneInfo("America/Toronto")
UTC = timezone.utc
FOOTER = "لغو11"


# -- durations ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("30s", timedelta(seconds=30)),
    ("15m", timedelta(minutes=15)),
    ("2h", timedelta(hours=2)),
    ("1d12h", timedelta(days=1, hours=12)),
    ("۲h", timedelta(hours=2)),
    ("۱d۱۲h", timedelta(days=1, hours=12)),
    (" 2H ", timedelta(hours=2)),
    ("0s", timedelta(0)),
])
def test_parse_duration_reads_what_marketers_write(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text, hint", [
    ("5", "like 30m"),
    (5, "5s, 5m, 5h or 5d"),
    ("1x", "like 30m"),
    ("1d1d", "write each unit once"),
    ("-1h", "whole numbers"),
    ("", "like 30m"),
    ("1.5h", "whole numbers"),
    (None, "like 30m"),
])
def test_parse_duration_rejects_with_a_fix_hint(text, hint):
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert hint in str(caught.value)
    assert repr(text) in str(caught.value)  # the message quotes what was written


@pytest.mark.parametrize("delta, text", [
    (timedelta(seconds=30), "30s"),
    (timedelta(hours=36), "1d12h"),
    (timedelta(days=2, hours=3, minutes=4, seconds=5), "2d3h4m5s"),
    (timedelta(0), "0s"),
])
def test_format_duration_is_the_inverse_of_parse(delta, text):
    assert format_duration(delta) == text
    assert parse_duration(format_duration(delta)) == delta


# -- phones and emails -------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [
    "09121234567", "9121234567", "989121234567", "+989121234567", "00989121234567",
    "۰۹۱۲۱۲۳۴۵۶۷", "٠٩١٢١٢٣٤٥٦٧", "۰۹۱۲ ۱۲۳ ۴۵۶۷",
    "0912 123 4567", "0912-123-4567", "(0912) 123-4567", "+98 (912) 123 45 67",
])
def test_normalize_phone_reads_every_iranian_way_of_writing_a_mobile(raw):
    assert normalize_phone(raw) == "+989121234567"


@pytest.mark.parametrize("raw, expected", [
    ("+14155552671", "+14155552671"),
    ("+4915112345678", "+4915112345678"),
    ("0014155552671", "+14155552671"),
])
def test_normalize_phone_keeps_foreign_numbers_with_their_country_code(raw, expected):
    assert normalize_phone(raw, "IR") == expected


@pytest.mark.parametrize("raw, reason", [
    ("", "phone is empty"),
    (None, "phone is empty"),
    ("abc", "is not a phone number"),
    ("0912123456a", "only digits"),
    ("12345", "not a valid phone number for region IR"),
    ("+98912123456", "not a valid phone number"),
    ("091212345678", "country code"),
])
def test_normalize_phone_says_why_a_number_is_unreadable(raw, reason):
    with pytest.raises(ValueError) as caught:
        normalize_phone(raw)
    assert reason in str(caught.value)


def test_normalize_email_lowercases_the_whole_address_and_trims():
    assert normalize_email("  Sara@Example.COM ") == "sara@example.com"


@pytest.mark.parametrize("raw", ["bad@", "no-at-sign", "a@b", "a b@example.com", ""])
def test_normalize_email_rejects_invalid_addresses_with_the_address(raw):
    with pytest.raises(ValueError) as caught:
        normalize_email(raw)
    assert "is not a valid email address" in str(caught.value)


# -- SMS facts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, encoding, units, segments", [
    ("", "GSM-7", 0, 0),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("{" * 80, "GSM-7", 160, 1),  # extension characters count 2
    ("€" + "a" * 159, "GSM-7", 161, 2),
    ("[]~|^\\", "GSM-7", 12, 1),
    ("س" * 70, "UCS-2", 70, 1),
    ("س" * 71, "UCS-2", 71, 2),
    ("س" * 134, "UCS-2", 134, 2),
    ("س" * 135, "UCS-2", 135, 3),
    ("سلام، خوش آمدید", "UCS-2", 15, 1),
    ("a" * 159 + "ç", "UCS-2", 160, 3),  # one non-GSM character makes the whole text UCS-2
    ("😀", "UCS-2", 2, 1),  # an emoji is two UTF-16 units
    ("😀" * 35, "UCS-2", 70, 1),
    ("😀" * 36, "UCS-2", 72, 2),
])
def test_sms_info_counts_encoding_units_and_segments(text, encoding, units, segments):
    info = sms_info(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)


def test_sms_info_describe_is_readable():
    assert sms_info("a" * 161).describe() == "GSM-7, 161 units, 2 segments"
    assert sms_info("سلام").describe() == "UCS-2, 4 units, 1 segment"


def test_sms_segments_never_split_an_extension_character():
    # 152 letters fill segment 1 but for one septet: the escape + '{' must move to segment 2,
    # which then holds '{' + 151 letters, and the last letter needs a third segment.
    assert sms_info("a" * 152 + "{" + "a" * 152).segments == 3


@pytest.mark.parametrize("text, expected", [
    ("سلام", "سلام\n" + FOOTER),
    ("سلام  \n", "سلام\n" + FOOTER),
    ("سلام\n" + FOOTER, "سلام\n" + FOOTER),
    ("سلام\nلغو۱۱", "سلام\nلغو۱۱"),  # already ends with it, in Persian digits
    ("سلام لغو 11", "سلام لغو 11"),
])
def test_with_footer_appends_the_opt_out_once(text, expected):
    assert with_footer(text, FOOTER) == expected


def test_with_footer_is_idempotent_and_empty_disables():
    once = with_footer("hi", FOOTER)
    assert with_footer(once, FOOTER) == once
    assert once.count(FOOTER) == 1
    assert with_footer("hi  ", "") == "hi"


# -- the send window ---------------------------------------------------------------------------
WORKDAYS_IR = SendWindow(start=9 * 60, end=21 * 60, days=frozenset({5, 6, 0, 1, 2, 3}))  # sat..thu


def local(tz, *args):
    return datetime(*args, tzinfo=tz)


@pytest.mark.parametrize("at, expected", [
    (local(TEHRAN, 2026, 12, 7, 10, 0), local(TEHRAN, 2026, 12, 7, 10, 0)),  # inside: same moment
    (local(TEHRAN, 2026, 12, 7, 9, 0), local(TEHRAN, 2026, 12, 7, 9, 0)),  # start is inclusive
    (local(TEHRAN, 2026, 12, 7, 7, 15), local(TEHRAN, 2026, 12, 7, 9, 0)),  # before start: today's start
    (local(TEHRAN, 2026, 12, 7, 21, 0), local(TEHRAN, 2026, 12, 8, 9, 0)),  # end is exclusive
    (local(TEHRAN, 2026, 12, 7, 23, 30), local(TEHRAN, 2026, 12, 8, 9, 0)),  # after end: next day
    (local(TEHRAN, 2026, 12, 10, 22, 0), local(TEHRAN, 2026, 12, 12, 9, 0)),  # Thursday night → Saturday
    (local(TEHRAN, 2026, 12, 11, 12, 0), local(TEHRAN, 2026, 12, 12, 9, 0)),  # Friday noon → Saturday
])
def test_next_allowed_in_tehran_without_friday(at, expected):
    result = next_allowed(at, TEHRAN, WORKDAYS_IR)
    assert result == expected
    assert result.tzinfo == UTC


def test_next_allowed_accepts_a_utc_moment_and_returns_utc():
    # 2026-12-10 18:30 UTC is Thursday 22:00 in Tehran
    result = next_allowed(datetime(2026, 12, 10, 18, 30, tzinfo=UTC), TEHRAN, WORKDAYS_IR)
    assert result == datetime(2026, 12, 12, 5, 30, tzinfo=UTC)
    assert result.utcoffset() == timedelta(0)


def test_next_allowed_with_a_window_ending_at_midnight():
    window = SendWindow(start=9 * 60, end=24 * 60)
    late = local(TEHRAN, 2026, 12, 7, 23, 59)
    assert next_allowed(late, TEHRAN, window) == late
    assert next_allowed(local(TEHRAN, 2026, 12, 7, 8, 0), TEHRAN, window) == local(TEHRAN, 2026, 12, 7, 9, 0)


def test_next_allowed_skip_today_goes_to_the_next_allowed_day():
    at = local(TEHRAN, 2026, 12, 10, 10, 0)  # Thursday, inside the window
    assert next_allowed(at, TEHRAN, WORKDAYS_IR, skip_today=True) == local(TEHRAN, 2026, 12, 12, 9, 0)


@pytest.mark.parametrize("at, expected_utc, expected_offset", [
    # spring forward 2026-03-08 02:00 EST → 03:00 EDT: 09:00 that day is EDT (UTC-4)
    (datetime(2026, 3, 8, 6, 0, tzinfo=UTC), datetime(2026, 3, 8, 13, 0, tzinfo=UTC), timedelta(hours=-4)),
    (datetime(2026, 3, 8, 3, 0, tzinfo=UTC), datetime(2026, 3, 8, 13, 0, tzinfo=UTC), timedelta(hours=-4)),
    # fall back 2026-11-01 02:00 EDT → 01:00 EST: 09:00 that day is EST (UTC-5)
    (datetime(2026, 11, 1, 4, 30, tzinfo=UTC), datetime(2026, 11, 1, 14, 0, tzinfo=UTC), timedelta(hours=-5)),
    (datetime(2026, 11, 1, 2, 0, tzinfo=UTC), datetime(2026, 11, 1, 14, 0, tzinfo=UTC), timedelta(hours=-5)),
])
def test_next_allowed_across_dst_in_toronto(at, expected_utc, expected_offset):
    result = next_allowed(at, TORONTO, SendWindow())
    assert result == expected_utc
    shown = result.astimezone(TORONTO)
    assert (shown.date(), shown.hour, shown.minute) == (expected_utc.date(), 9, 0)
    assert shown.utcoffset() == expected_offset


@pytest.mark.parametrize("at, start, end", [
    (datetime(2026, 12, 7, 22, 0, tzinfo=UTC), TEHRAN,
     (datetime(2026, 12, 7, 20, 30, tzinfo=UTC), datetime(2026, 12, 8, 20, 30, tzinfo=UTC))),
    (datetime(2026, 3, 8, 12, 0, tzinfo=UTC), TORONTO,  # a 23-hour day
     (datetime(2026, 3, 8, 5, 0, tzinfo=UTC), datetime(2026, 3, 9, 4, 0, tzinfo=UTC))),
    (datetime(2026, 11, 1, 12, 0, tzinfo=UTC), TORONTO,  # a 25-hour day
     (datetime(2026, 11, 1, 4, 0, tzinfo=UTC), datetime(2026, 11, 2, 5, 0, tzinfo=UTC))),
])
def test_local_day_bounds(at, start, end):
    assert local_day_bounds(at, start) == end


# -- templates ---------------------------------------------------------------------------------
EMAIL_TEMPLATE = (
    "{% block subject %}Hello {{ contact.first_name }}{% endblock %}\n"
    "{% block text %}Hi {{ contact.first_name }}, code {{ offer.code }}{% endblock %}\n"
    "{% block html %}<p>Hi {{ contact.first_name }}</p>{% endblock %}\n"
)


@pytest.fixture
def templates(tmp_path):
    """A templates dir and a renderer; ``templates.write(name, source)`` adds a template."""
    renderer = Renderer(tmp_path)

    def write(name: str, source: str) -> str:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source, encoding="utf-8")
        return name

    renderer.write = write
    return renderer


def context(first_name="Sara", locale="en", time_left=None):
    offer = OfferView(code="WINTER20", title="20% off", expires_at=None, time_left=time_left, stock_left=3)
    return {"contact": ContactView(first_name=first_name, locale=locale), "offer": offer,
            "sequence": SequenceView(name="s"), "touch": TouchView(name="t", channel="sms", index=0),
            "unsubscribe_url": None}


def test_render_sms(templates):
    templates.write("a.sms.j2", "Hi {{ contact.first_name }}, code {{ offer.code }}\n\n")
    assert templates.render("a.sms.j2", "sms", context()).text == "Hi Sara, code WINTER20"


def test_render_email_blocks_with_html_autoescaped_only(templates):
    templates.write("e.email.j2", EMAIL_TEMPLATE)
    out = templates.render("e.email.j2", "email", context(first_name="<b>x</b>"))
    assert out.subject == "Hello <b>x</b>"
    assert out.text == "Hi <b>x</b>, code WINTER20"
    assert out.html == "<p>Hi &lt;b&gt;x&lt;/b&gt;</p>"


def test_email_without_html_block_has_no_html(templates):
    templates.write("e.email.j2", "{% block subject %}S{% endblock %}{% block text %}T{% endblock %}")
    out = templates.render("e.email.j2", "email", context())
    assert (out.subject, out.text, out.html) == ("S", "T", None)


def test_email_missing_block_is_a_render_error(templates):
    templates.write("e.email.j2", "{% block text %}T{% endblock %}")
    with pytest.raises(RenderError) as caught:
        templates.render("e.email.j2", "email", context())
    assert "missing: subject" in str(caught.value)
    assert caught.value.template == "e.email.j2"


@pytest.mark.parametrize("source, named", [
    ("line one\nline two {{ nope }}\n", "'nope' is undefined"),
    ("line one\nline two {{ contact.nope }}\n", "nope"),
])
def test_undefined_names_are_render_errors_naming_the_line(templates, source, named):
    templates.write("u.sms.j2", source)
    with pytest.raises(RenderError) as caught:
        templates.render("u.sms.j2", "sms", context())
    assert caught.value.line == 2
    assert named in caught.value.message
    assert str(caught.value).startswith("u.sms.j2:2: ")


def test_strict_undefined_a_default_elsewhere_does_not_hide_an_undefined_name(templates):
    templates.write("u.sms.j2", "{{ missing_var | default('x') }} {{ other }}")
    with pytest.raises(RenderError, match="'other' is undefined"):
        templates.render("u.sms.j2", "sms", context())


@pytest.mark.parametrize("source", ["Hi\n{{ contact.attrs.city }}", "Hi\n{{ contact.attrs['city'] }}",
                                    "Hi\n{% if contact.attrs.city %}x{% endif %}", "Hi\n{{ contact.attrs.city.upper() }}"])
def test_a_missing_contact_column_is_named_with_the_fix(templates, source):
    from engine.templates import Attrs, MissingAttr

    templates.write("c.sms.j2", source)
    ctx = context()
    with pytest.raises(MissingAttr) as caught:
        templates.render("c.sms.j2", "sms", ctx)
    assert (caught.value.attribute, caught.value.line) == ("city", 2)
    assert str(caught.value) == "c.sms.j2:2: contact has no attrs.city; add it or use | default(...)"
    ctx["contact"].attrs = Attrs(city="Tehran")
    assert templates.render("c.sms.j2", "sms", ctx).text in ("Hi\nTehran", "Hi\nTEHRAN", "Hi\nx")


@pytest.mark.parametrize("source, text", [
    ("{{ contact.attrs.city | default('friend') }}", "friend"),
    ("{% if contact.attrs.city is defined %}{{ contact.attrs.city }}{% else %}no city{% endif %}", "no city"),
    ("{% for k, v in contact.attrs.items() %}{{ k }}={{ v }}{% endfor %}.", "."),
])
def test_a_missing_contact_column_can_be_given_a_default(templates, source, text):
    templates.write("d.sms.j2", source)
    assert templates.render("d.sms.j2", "sms", context()).text == text


def test_template_syntax_error_names_the_line(templates):
    templates.write("s.sms.j2", "ok\n{% if %}\n")
    with pytest.raises(RenderError) as caught:
        templates.render("s.sms.j2", "sms", context())
    assert caught.value.line == 2


def test_missing_template_is_a_render_error(templates):
    with pytest.raises(RenderError, match="nowhere.sms.j2"):
        templates.render("nowhere.sms.j2", "sms", context())


@pytest.mark.parametrize("source", [
    "{{ contact.__class__.__mro__ }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ contact.__init__.__globals__ }}",
    "{{ (contact | attr('__class__')).__mro__ }}",
    "{{ '{0.__class__.__mro__}'.format(contact) }}",
    "{{ self._TemplateReference__context }}",
    "{{ touch.__class__.__mro__ }}",
    "{{ touch['__class__'] }}",
    "{{ offer.__dataclass_fields__ }}",
    "{{ sequence.__init__.__globals__ }}",
    "{{ (touch | attr('__reduce_ex__'))(2) }}",
])
def test_the_sandbox_refuses_to_reach_internals(templates, source):
    templates.write("evil.sms.j2", source)
    with pytest.raises((SecurityError, RenderError)) as caught:
        templates.render("evil.sms.j2", "sms", context())
    shown = str(caught.value)
    for leak in ("<class ", "object at 0x", "__builtins__", "<function ", "subprocess", "os.path"):
        assert leak not in shown


def test_touch_and_sequence_read_as_attributes_or_keys(templates):
    templates.write("k.sms.j2", "{{ touch.name }}/{{ touch['name'] }}/{{ touch.index }} {{ sequence['name'] }}")
    assert templates.render("k.sms.j2", "sms", context()).text == "t/t/0 s"


@pytest.mark.parametrize("name", ["{{ 7*7 }}", "{% raw %}{{ 7*7 }}{% endraw %}", "{# x #}{{ contact }}"])
def test_contact_data_is_printed_literally(templates, name):
    templates.write("a.sms.j2", "Hi {{ contact.first_name }}!")
    assert templates.render("a.sms.j2", "sms", context(first_name=name)).text == f"Hi {name}!"


def test_variables_lists_top_level_names(templates):
    templates.write("v.sms.j2", "{{ contact.first_name }} {% if offer %}{{ offer.code }}{% endif %}")
    assert templates.variables("v.sms.j2") == {"contact", "offer"}


def test_filters_fa_digits_jalali_duration_in_templates(templates):
    templates.write("f.sms.j2", "{{ 2026 | fa_digits }}|{{ day | jalali }}|{{ offer.time_left | duration }}")
    ctx = {**context(time_left=timedelta(days=2, hours=3), locale="fa"), "day": date(2026, 12, 7)}
    assert templates.render("f.sms.j2", "sms", ctx).text == "۲۰۲۶|۱۶ آذر ۱۴۰۵|۲ روز و ۳ ساعت"
    ctx["contact"] = ContactView(locale="en")
    assert templates.render("f.sms.j2", "sms", ctx).text.endswith("|2 days 3 hours")


def test_jalali():
    assert jalali(date(2026, 12, 7)) == "۱۶ آذر ۱۴۰۵"
    assert jalali(datetime(2026, 12, 7, 10, 5)) == "۱۶ آذر ۱۴۰۵"
    assert jalali(datetime(2026, 12, 7, 10, 5), with_time=True) == "۱۶ آذر ۱۴۰۵، ساعت ۱۰:۰۵"
    assert jalali(date(2026, 3, 21)) == "۱ فروردین ۱۴۰۵"
    assert jalali(None) == ""


def test_the_jalali_filter_isolates_its_date_in_html_only(templates):
    templates.write("j.email.j2", "{% block subject %}تا {{ day | jalali(true) }}{% endblock %}"
                                  "{% block text %}تا {{ day | jalali(true) }}{% endblock %}"
                                  "{% block html %}<p>Ends {{ day | jalali(true) }}{{ none | jalali }}</p>{% endblock %}")
    out = templates.render("j.email.j2", "email", {**context(), "day": datetime(2026, 12, 7, 22, 0), "none": None})
    assert out.html == '<p>Ends <bdi dir="rtl" lang="fa">۱۶ آذر ۱۴۰۵، ساعت ۲۲:۰۰</bdi></p>'
    assert out.subject == out.text == "تا ۱۶ آذر ۱۴۰۵، ساعت ۲۲:۰۰"


@pytest.mark.parametrize("delta, fa, en", [
    (timedelta(days=2, hours=3), "۲ روز و ۳ ساعت", "2 days 3 hours"),
    (timedelta(hours=1), "۱ ساعت", "1 hour"),
    (timedelta(days=1, hours=2, minutes=30), "۱ روز و ۲ ساعت", "1 day 2 hours"),
    (timedelta(minutes=45), "۴۵ دقیقه", "45 minutes"),
    (timedelta(seconds=-5), "۰ دقیقه", "0 minutes"),
])
def test_human_duration_in_fa_and_en(delta, fa, en):
    assert human_duration(delta, "fa") == fa
    assert human_duration(delta, "en") == en


@pytest.mark.parametrize("source, found", [
    ("Hurry, only 3 left!", [(1, "only 3")]),
    ("24 hours left, hurry", [(1, "24 hours")]),
    ("سلام\nفقط ۳ عدد مانده", [(2, "فقط 3")]),
    ("تا ۲۴ ساعت دیگر", [(1, "24 ساعت")]),
])
def test_literal_urgency_finds_written_countdowns(source, found):
    assert literal_urgency(source) == found


@pytest.mark.parametrize("source", [
    "only {{ offer.stock_left }} left",
    "{{ offer.time_left | duration }} left",
    "{{ 24 }} hours {% if offer.stock_left < 10 %}!{% endif %}",
    "A good coat lasts for years.",
])
def test_literal_urgency_ignores_what_comes_from_jinja(source):
    assert literal_urgency(source) == []


# -- an offer's deadline ----------------------------------------------------------------------
def offer_config(tmp_path, offer: str, timezone_name: str = "Asia/Tehran"):
    """A config folder whose one sequence has the offer lines ``offer`` (YAML, indented under ``offer:``)."""
    cfg = tmp_path / "config"
    (cfg / "sequences").mkdir(parents=True)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.sms.j2").write_text("کد {{ offer.code }} تا {{ offer.expires_at | jalali }}",
                                                     encoding="utf-8")
    (cfg / "settings.yaml").write_text(
        f"database_url: sqlite:///{tmp_path}/t.db\ntemplates_dir: ../templates\ntimezone: {timezone_name}\n"
        "providers: {sms: [{name: m, type: memory}]}\n", encoding="utf-8")
    touches = "".join(f"  - {{name: t{i}, after: 1h, channel: sms, template: t.sms.j2}}\n" for i in range(3))
    (cfg / "sequences" / "s.yaml").write_text(f"name: s\noffer:\n  code: W20\n  title: coats\n{offer}touches:\n"
                                              f"{touches}", encoding="utf-8")
    return cfg


def load_problems(cfg) -> list[str]:
    from engine.config import load_config
    from engine.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_config(cfg)
    return [p.message for p in caught.value.problems]


@pytest.mark.parametrize("offer, timezone_name, expected_utc", [
    ("  expires_at: 1405-09-20 23:59\n", "Asia/Tehran", datetime(2026, 12, 11, 20, 29, tzinfo=UTC)),
    ("  expires_at: ۱۴۰۵-۰۹-۲۰ ۲۳:۵۹\n", "Asia/Tehran", datetime(2026, 12, 11, 20, 29, tzinfo=UTC)),
    ("  expires_at: 1405-09-20 23:59:00\n", "Asia/Tehran", datetime(2026, 12, 11, 20, 29, tzinfo=UTC)),  # a YAML datetime
    ("  expires_at: 1405-09-20 23:59\n", "Europe/Berlin", datetime(2026, 12, 11, 22, 59, tzinfo=UTC)),
    ("  expires_at: 1405-09-20T23:59+00:00\n", "Asia/Tehran", datetime(2026, 12, 11, 23, 59, tzinfo=UTC)),
    ("  expires_at: 1405-02-31 10:00\n", "Asia/Tehran", datetime(2026, 5, 21, 6, 30, tzinfo=UTC)),  # no Gregorian 31/2
    ("  expires_at: 2026-12-11 23:59\n", "Asia/Tehran", datetime(2026, 12, 11, 20, 29, tzinfo=UTC)),
    ("  expires_at: 2026-12-11T23:59:00+03:30\n", "UTC", datetime(2026, 12, 11, 20, 29, tzinfo=UTC)),
    ("  calendar: jalali\n  expires_at: 1500-01-01 00:00\n", "UTC", datetime(2121, 3, 21, tzinfo=UTC)),
    ("  calendar: gregorian\n  expires_at: 1405-09-20 23:59\n", "UTC", datetime(1405, 9, 20, 23, 59, tzinfo=UTC)),
])
def test_offer_expires_at_reads_jalali_years_in_the_settings_timezone(tmp_path, offer, timezone_name, expected_utc):
    from engine.config import load_config

    config = load_config(offer_config(tmp_path, offer, timezone_name))
    assert config.sequences["s"].offer.expires_at == expected_utc


@pytest.mark.parametrize("offer, says", [
    ("  expires_at: 2026-12-11\n", "'2026-12-11' has no time of day; add one, e.g. '2026-12-11 23:59'"),
    ("  expires_at: 1405-12-30 23:59\n", "'1405-12-30 23:59' is not a time in the Jalali calendar: day is out of range"),
    ("  expires_at: soon\n", "'soon' is not a date and time; write it like 1405-09-20 23:59 (Jalali) or "
                              "2026-12-11 23:59 (Gregorian)"),
    ("  calendar: persian\n  expires_at: 1405-09-20 23:59\n", "'persian': use jalali or gregorian"),
])
def test_a_bad_offer_deadline_is_one_message_without_python_reprs(tmp_path, offer, says):
    problems = load_problems(offer_config(tmp_path, offer))
    assert len(problems) == 1 and problems[0].startswith(says), problems
    assert "datetime." not in problems[0]


def test_validate_says_an_ended_offer_in_both_calendars(tmp_path):
    from freezegun import freeze_time

    from engine.validate import validate

    with freeze_time("2026-12-12 00:00:00"):
        _, problems = validate(offer_config(tmp_path, "  expires_at: 1405-09-20 23:59\n"))
    ended = [p.message for p in problems if p.key == "offer.expires_at"]
    assert ended == ["the offer ended at 2026-12-11 23:59 Asia/Tehran (Jalali 1405-09-20 23:59); urgent touches will "
                     "all be skipped — move the deadline or remove the offer"], problems


# -- unsubscribe tokens ------------------------------------------------------------------------
def test_token_roundtrip():
    for cid, channel in ((1, "sms"), (123456789, "email")):
        assert read_token("s3cret", make_token("s3cret", cid, channel)) == (cid, channel)


def test_token_is_url_safe_and_hides_the_contact_id():
    token = make_token("s3cret", 123456789, "sms")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert "123456789" not in token
    raw = _unb64(token)
    assert b"123456789" not in raw and b"sms" not in raw


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_tampered_or_foreign_tokens_are_refused():
    token = make_token("s3cret", 42, "sms")
    raw = _unb64(token)
    for index in (0, len(raw) // 2, len(raw) - 1):  # the payload, the middle, the signature
        tampered = bytearray(raw)
        tampered[index] ^= 0x01
        assert read_token("s3cret", _b64(bytes(tampered))) is None, index
    assert read_token("s3cret", _b64(raw[:-1])) is None
    assert read_token("other-secret", token) is None
    for garbage in ("", "!!!", "abc", "A" * 40):
        assert read_token("s3cret", garbage) is None


def test_tokens_differ_per_channel():
    assert make_token("s3cret", 42, "sms") != make_token("s3cret", 42, "email")
    assert read_token("s3cret", make_token("s3cret", 42, "email")) == (42, "email")


def test_one_token_does_not_reveal_other_contacts_ids():
    mine = _unb64(make_token("s3cret", 1000, "sms"))  # an attacker's own link; they know their id
    mask = bytes(a ^ b for a, b in zip(mine, b"1000:sms"))
    theirs = _unb64(make_token("s3cret", 4321, "sms"))
    recovered = bytes(a ^ b for a, b in zip(theirs, mask))
    assert not recovered.startswith(b"4321")


# -- masking in the delivery log ---------------------------------------------------------------
def test_mask_phone():
    assert mask_phone("+989121234567") == "+98912***4567"
    assert mask_phone("") == ""
    assert mask_phone(None) == ""


def test_log_line_masks_phones_and_emails_in_reasons():
    row = {k: None for k in LOG_FIELDS}
    row.update(at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), message_id=7, contact_id=3, event="failed",
               reason="rejected +989121234567 and sara@example.com", worker="w-1")
    data = json.loads(log_line(row))
    assert data["reason"] == "rejected +98912***4567 and s***@example.com"
    assert data["at"] == "2026-01-02T03:04:05Z"
    assert "worker" not in data
    assert set(data) == set(LOG_FIELDS) - {"worker"}


def test_log_lines_are_json_whatever_the_reason_holds():
    from engine.journal import log_lines as _log_lines

    at = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    reasons = ['پنل گفت: "شماره 09121234567 مسدود است"\nخط دوم \\ \t', None, "", "rejected", "rejected",
               "50% off ended: %s %(x)s %%"]
    rows = [(at, i, i + 100, "زمستان", "t0", "sms", "kave", "failed", reason, 1, f'id "{i}" \\' if i else None, "w-1")
            for i, reason in enumerate(reasons)]
    rows.append((at, 6, 106, "٪۵۰ %s", "t0", "sms", "kave", "sent", None, 1, "id %d %s", "w-1"))
    lines = _log_lines(rows).split("\n")
    assert len(lines) == len(rows)
    parsed = [json.loads(line) for line in lines]
    assert parsed[0]["reason"] == 'پنل گفت: "شماره 0912***4567 مسدود است"\nخط دوم \\ \t'
    assert [p["reason"] for p in parsed[1:]] == [None, "", "rejected", "rejected", "50% off ended: %s %(x)s %%", None]
    assert [p["message_id"] for p in parsed] == [0, 1, 2, 3, 4, 5, 6] and parsed[0]["at"] == "2026-01-02T03:04:05.600000Z"
    assert [p["provider_message_id"] for p in parsed] == [None, *(f'id "{i}" \\' for i in range(1, 6)), "id %d %s"]
    assert parsed[6]["sequence"] == "٪۵۰ %s" and parsed[6]["event"] == "sent"
    assert parsed[0]["sequence"] == "زمستان" and "\\u" not in lines[0]  # Persian as itself, not \u escapes


def test_mask_address_hides_the_middle_of_national_numbers_too():
    assert mask_address("receptor 09121234567 is blocked") == "receptor 0912***4567 is blocked"


# -- rate limiter ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, per_second", [
    ("20/s", 20.0), ("600/m", 10.0), ("1/2s", 0.5), ("5000/h", 5000 / 3600), (" 10 / s ", 10.0),
    ("1.5/s", 1.5), (None, None), ("", None), (0, None), (5, 5.0),
])
def test_parse_rate(text, per_second):
    if per_second is None:
        assert parse_rate(text) is None
    else:
        assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["fast", "0/s", "10/d", "-1/s", "10"])
def test_parse_rate_rejects_with_an_example(text):
    with pytest.raises(ProviderConfigError) as caught:
        parse_rate(text)
    assert caught.value.key == "rate"
    assert "20/s" in caught.value.message


class FakeClock:
    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_spaces_reservations_without_sleeping():
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    assert [round(limiter.reserve(), 6) for _ in range(4)] == [0.0, 0.1, 0.2, 0.3]
    clock.now += 0.25  # time passes: the queue drains
    assert limiter.reserve() == pytest.approx(0.15)
    clock.now += 10
    assert limiter.reserve() == 0.0


def test_rate_limiter_unlimited_and_acquire_uses_the_given_sleep():
    assert RateLimiter(None).reserve() == 0.0
    slept = []
    limiter = RateLimiter(4, clock=FakeClock())
    for _ in range(3):
        limiter.acquire(sleep=slept.append)
    assert slept == [0.25, 0.5]


# -- provider registry -------------------------------------------------------------------------
def test_unknown_provider_type_lists_the_known_ones():
    with pytest.raises(ProviderConfigError) as caught:
        create_provider({"name": "x", "type": "pigeon"})
    assert caught.value.key == "type"
    assert "'pigeon'" in caught.value.message
    for known in ("file", "memory", "kavenegar", "smtp"):
        assert known in caught.value.message
    assert known_types() == sorted(known_types()) and "file" in known_types()


@pytest.mark.parametrize("timeout", ["ten", -1, 0, True, 3600])
def test_a_provider_timeout_that_is_not_a_bound_is_refused_at_start(timeout):
    """Every provider call waits at most ``timeout``; a value that bounds nothing is a config error, not a hang."""
    with pytest.raises(ProviderConfigError) as caught:
        create_provider({"name": "k", "type": "kavenegar", "api_key": "k", "sender": "1", "timeout": timeout})
    assert caught.value.key == "timeout" and "e.g. timeout: 10" in caught.value.message
    for good in (0.5, 30, "15"):  # a number, or its text from ${ENV}
        provider = create_provider({"name": "k", "type": "kavenegar", "api_key": "k", "sender": "1", "timeout": good})
        assert provider.timeout == float(good)


def test_create_file_and_memory_providers(tmp_path):
    file_provider = create_provider({"name": "out", "type": "file", "path": str(tmp_path / "o.jsonl")})
    memory = create_provider({"name": "mem", "type": "memory"})
    assert isinstance(file_provider, FileProvider) and file_provider.name == "out"
    assert isinstance(memory, MemoryProvider) and memory.channels == {"sms", "email"}


@pytest.mark.parametrize("settings, key, words", [
    ({"name": "f", "type": "file"}, "path", "is required"),
    ({"name": "k", "type": "kavenegar", "sender": "1000"}, "api_key", "is required"),
    ({"type": "file", "path": "x"}, "name", "needs a name"),
    ({"name": "f", "type": "file", "path": "x", "colour": "red"}, "colour", "is not a setting"),
])
def test_provider_setting_errors_name_the_key(settings, key, words):
    with pytest.raises(ProviderConfigError) as caught:
        create_provider(settings)
    assert caught.value.key == key
    assert words in caught.value.message
    assert str(caught.value).startswith(f"{key}: ")


def test_provider_repr_masks_secrets():
    provider = create_provider({"name": "k", "type": "kavenegar", "sender": "1000", "api_key": "ABCDEF-secret-123456"})
    shown = repr(provider)
    assert "ABCDEF-secret-123456" not in shown and "secret" not in shown
    assert "AB********56" in shown and "'1000'" in shown


# -- the HTTP providers' request preparation ------------------------------------------------------
@pytest.mark.parametrize("call", [
    dict(method="POST", path="KEY/sms/send.json",
         data={"receptor": "09121234567", "message": "سلام مریم عزیز، ۲ روز تا پایان تخفیف\nلغو11",
               "sender": "10004346", "localid": "42", "empty": None, "to": ["a@x.ir", "b@x.ir"]}),
    dict(method="POST", path="/api/send", json={"text": "سلام", "numbers": ["+989121234567"]},
         headers={"ApiKey": "k", "Accept": "application/json"}),
    dict(method="get", path="status", params={"ids": "1,2", "q": "a b"}, auth=("api", "s3cret")),
    dict(method="POST", path="v3/x/messages", data={"to": "a@x.ir"}, headers={"content-type": "text/plain"}),
])
def test_http_provider_prepares_the_same_request_as_requests_session_request(call):
    import requests

    from providers.http import HttpCall
    from providers.twilio import TwilioProvider

    provider = TwilioProvider("p", {"account_sid": "AC1", "auth_token": "t", "sender": "+15550000000",
                                    "base_url": "http://127.0.0.1:9/v1"})
    c = HttpCall(**call)
    url = f"http://127.0.0.1:9/v1/{c.path.lstrip('/')}"
    ours = provider._prepare(c, url)
    theirs = provider.session.prepare_request(requests.Request(
        c.method, url, params=c.params, data=c.data, json=c.json, headers=dict(c.headers), auth=c.auth))
    assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
    assert dict(ours.headers) == dict(theirs.headers)


@pytest.mark.parametrize("raw", ["+989121234567", "+989351111111", "09121234567", "+98 912 123 4567", "9121234567",
                                 "+982112345678", "+14165550199", "+98912123456", "+9891212345678"])
def test_national_reads_stored_numbers_without_parsing_and_agrees_with_the_parser(raw):
    from providers.errors import PermanentRecipientError
    from providers.iran import _national, national

    expected = _national(raw)
    if expected is None:
        with pytest.raises(PermanentRecipientError):
            national(raw)
    else:
        assert national(raw) == expected


# -- the delivery log's batched insert --------------------------------------------------------------
@pytest.mark.parametrize("url", ["sqlite", "postgresql"])
def test_append_log_writes_every_value_and_null_back_as_given(tmp_path, url):
    """Columns empty in a whole chunk are written as NULL literals, the rest bound: the rows read back the same."""
    import os

    import sqlalchemy as sa

    from engine.db import make_engine, upgrade
    from engine.journal import LOG_FIELDS
    from engine.store import LOG_ROWS_PER_INSERT, append_log

    if url == "postgresql":
        if not os.environ.get("FOLLOWUP_TEST_POSTGRES_URL"):
            pytest.skip("FOLLOWUP_TEST_POSTGRES_URL is not set")
        from .faults import reset_postgres

        url = reset_postgres(os.environ["FOLLOWUP_TEST_POSTGRES_URL"])
    else:
        url = f"sqlite:///{tmp_path}/log.db"
    upgrade(url)
    at = datetime(2026, 11, 26, 9, 30, 0, 123456, tzinfo=UTC)
    rows = [dict(at=at, message_id=i, contact_id=i % 7 or None, sequence="welcome-fa", touch="first", channel="sms",
                 provider=None, event="sent", reason="ضرب‌الاجل: ۳ روز" if i == 3 else None, attempt=1,
                 provider_message_id=None, worker="w1") for i in range(LOG_ROWS_PER_INSERT + 5)]
    rows.append(dict(at=at, message_id=None, contact_id=None, sequence=None, touch=None, channel=None,
                     provider="kavenegar", event="provider_paused", reason="HTTP 403", attempt=0,
                     provider_message_id=None, worker=None))
    engine = make_engine(url)
    with engine.begin() as conn:
        append_log(conn, rows)
    with engine.connect() as conn:
        got = [dict(r) for r in conn.execute(sa.text(f"SELECT {', '.join(LOG_FIELDS)} FROM delivery_log "
                                                     "ORDER BY id")).mappings()]
    for row in got:
        row["at"] = row["at"] if isinstance(row["at"], datetime) else datetime.fromisoformat(row["at"])
        row["at"] = row["at"].replace(tzinfo=UTC) if row["at"].tzinfo is None else row["at"]
    assert got == rows
    engine.dispose()


# -- the worker's background WAL checkpoint and heap policy --------------------------------------
def test_checkpointer_copies_the_log_back_into_the_database_file(tmp_path):
    import os
    import sqlite3
    import threading

    from engine.walcheckpoint import Checkpointer

    path = str(tmp_path / "wal.db")
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # only the checkpointer copies pages back here
    writer.execute("CREATE TABLE t (x TEXT)")
    writer.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 2000)
    assert os.path.getsize(path) < 100_000 < os.path.getsize(path + "-wal")  # the rows are only in the log
    done = threading.Event()
    checkpointer = Checkpointer(path, interval=0)
    run = checkpointer._checkpoint
    checkpointer._checkpoint = lambda conn: (run(conn), done.set())  # type: ignore[method-assign]
    checkpointer.poke()
    assert done.wait(30), "the checkpoint thread never ran"
    checkpointer.close()
    assert os.path.getsize(path) > 1_000_000  # now they are in the database file
    assert writer.execute("SELECT count(*) FROM t").fetchone()[0] == 2000
    writer.close()


def test_checkpointer_never_started_closes_and_a_failing_checkpoint_is_only_logged(tmp_path, caplog):
    import sqlite3

    from engine.walcheckpoint import Checkpointer

    Checkpointer(str(tmp_path / "never.db")).close()  # no commit, no thread
    bad = Checkpointer(str(tmp_path / "x.db"))
    conn = sqlite3.connect(":memory:")
    conn.close()
    bad._checkpoint(conn)  # a closed connection: sqlite3.ProgrammingError is not a crash of the thread
    assert "background checkpoint" in caplog.text


def test_heap_settle_freezes_what_is_loaded_and_collects_the_young_less_often():
    import gc

    from engine import heap

    before = gc.get_threshold()
    try:
        heap.settle()
        assert gc.get_freeze_count() > 1000
        assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_renderer_preload_compiles_now_and_leaves_broken_templates_to_render(tmp_path):
    (tmp_path / "ok.sms.j2").write_text("سلام {{ contact.first_name }}", encoding="utf-8")
    (tmp_path / "broken.sms.j2").write_text("{% if %}", encoding="utf-8")
    renderer = Renderer(tmp_path)
    renderer.preload(["ok.sms.j2", "broken.sms.j2", "missing.sms.j2"])
    assert [name for _, name in renderer._loaded] == ["ok.sms.j2"]
    with pytest.raises(RenderError, match="broken.sms.j2"):
        renderer.render("broken.sms.j2", "sms", {})


@pytest.mark.parametrize("expired", [True, False])
def test_recoverys_search_reads_the_partial_index_not_the_whole_table(tmp_path, expired):
    # ordered by id, SQLite walked every message on every tick (120 ms a tick at a million): bench 3
    from engine.clock import now
    from engine.db import make_engine, upgrade
    from engine.recovery import in_flight_query

    url = f"sqlite:///{tmp_path}/plan.db"
    upgrade(url)
    engine = make_engine(url)
    sql = str(in_flight_query(engine, now() if expired else None).compile(engine,
                                                                          compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    engine.dispose()
    assert "USING INDEX ix_messages_lease" in plan and "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize("phone, fixed", [
    ("+989121234567", False),   # an Iranian mobile (the fast path)
    ("+982188776655", True),    # a Tehran landline
    ("+983132221100", True),    # an Isfahan landline
    ("+14155552671", False),    # US numbers may be either: taken as a mobile
    ("+442079460000", True),    # a London landline
    ("", False), (None, False),
])
def test_landline(phone, fixed):
    from engine.addresses import landline

    assert landline(phone) is fixed


# -- limits on what comes in ------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["phone", "email", "first_name", "last_name", "timezone", "locale", "external_id"])
def test_the_csv_import_and_the_api_share_each_fields_length_limit(field):
    from pydantic import ValidationError

    from engine.contacts import parse_row
    from engine.fields import MAX_LENGTH
    from engine.service.schemas import ContactIn

    limit = MAX_LENGTH[field]
    too_long = {"phone": "09121234567", field: "x" * (limit + 1)}
    with pytest.raises(ValueError) as refused:
        parse_row(too_long, "IR")
    assert str(refused.value) == f"{field}: {limit + 1:,} characters, over the limit of {limit:,}; shorten it"
    with pytest.raises(ValidationError):
        ContactIn(**too_long)
    at_limit = {"phone": "09121234567", field: "x" * limit}
    ContactIn(**at_limit)  # the API takes it; parse_row may refuse it for what it says, never for its length
    try:
        parse_row(at_limit, "IR")
    except ValueError as err:
        assert "over the limit" not in str(err)


def test_the_csv_import_limits_tags_and_extra_columns_as_the_api_does():
    from engine.contacts import parse_row

    with pytest.raises(ValueError, match=r"^tags: a tag of 101 characters, over the limit of 100; shorten it$"):
        parse_row({"phone": "09121234567", "tags": "ok;" + "t" * 101}, "IR")
    with pytest.raises(ValueError, match=r"^tags: 51 tags, over the limit of 50"):
        parse_row({"phone": "09121234567", "tags": ";".join(f"t{i}" for i in range(51))}, "IR")
    with pytest.raises(ValueError, match=r"^attrs: 51 extra columns, over the limit of 50"):
        parse_row({"phone": "09121234567", **{f"c{i}": "v" for i in range(51)}}, "IR")
    with pytest.raises(ValueError, match=r"^attrs: a column name of 101 characters"):
        parse_row({"phone": "09121234567", "c" * 101: "v"}, "IR")


@pytest.mark.parametrize("value, problem", [
    (None, None), (2, None), (255, None),
    (0, "0 must be a whole number from 1 to 255 (the default is 4)"),
    ("many", "'many' must be a whole number from 1 to 255"), (True, "True must be"), (256, "256 must be"),
])
def test_max_sms_segments_is_read_and_checked_with_its_line(tmp_path, value, problem):
    import yaml

    from engine.errors import ConfigError
    from engine.sequences import load_sequences

    touches = [{"name": f"t{i}", "after": "1h", "channel": "sms", "template": "x.j2"} for i in range(3)]
    doc = {"name": "s", "touches": touches, **({} if value is None else {"max_sms_segments": value})}
    (tmp_path / "sequences").mkdir()
    (tmp_path / "sequences" / "s.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    if problem is None:
        assert load_sequences(tmp_path)["s"].max_sms_segments == (value or 4)
        return
    with pytest.raises(ConfigError) as err:
        load_sequences(tmp_path)
    (only,) = err.value.problems
    assert (only.key, only.line) == ("max_sms_segments", 3 + 4 * len(touches)) and problem in only.message


# -- contact import: Persian text, spreadsheet headers and files, counts ------------------------------
def test_names_get_persian_letters_without_zero_width_junk_and_digits_in_phones_read():
    from engine.contacts import parse_row

    row = parse_row({"phone": "٠٩١٢ ١٢٣ ٤٥٦٧", "first_name": "\u200fعلي\u200b", "last_name": "كريمي\u200cها\ufeff"}, "IR")
    assert (row.phone, row.first_name, row.last_name) == ("+989121234567", "علی", "کریمی\u200cها")  # ZWNJ kept
    assert parse_row({"phone": "۰۹۱۲۱۲۳۴۵۶۷", "first_name": "يكتا"}, "IR").first_name == "یکتا"


@pytest.mark.parametrize("header, read", [
    (["\ufeffPhone ", "Email"], ["phone", "email"]),
    (["MOBILE", "First Name", "last-name", "E-mail"], ["phone", "first_name", "last_name", "email"]),
    (["موبایل", "نام", "نام خانوادگی", "ایمیل"], ["phone", "first_name", "last_name", "email"]),
    (["تلفن همراه", "نام\u200cخانوادگی", "شهر"], ["phone", "last_name", "شهر"]),
    (["شماره", " City "], ["phone", "City"]),
    (["ايميل", "Tags"], ["email", "tags"]),  # an Arabic ي typed in the header
])
def test_a_spreadsheet_header_is_read_as_the_import_columns(header, read):
    from engine.columns import canonical_header

    assert canonical_header(header, "leads.csv") == read


def test_two_columns_read_as_one_are_refused_naming_both():
    from engine.columns import canonical_header
    from engine.errors import InputError

    with pytest.raises(InputError, match=r"^leads.csv:1: the columns Phone, موبایل are all read as phone; keep one"):
        canonical_header(["Phone", "موبایل", "name"], "leads.csv")


@pytest.mark.parametrize("content, says", [
    (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40, "is an Excel workbook (.xlsx)"),
    ("phone,first_name\n09121234567,سارا\n".encode("utf-16"), "is UTF-16 text"),
    ("phone,first_name\n09121234567,سارا\n".encode("utf-16-le"), "is UTF-16 text"),  # no BOM
    ("phone;first_name\n09121234567;سارا\n".encode(), "leads.csv:1: the header is separated by semicolons (;)"),
    ("\ufeffphone\tname\n09121234567\tسارا\n".encode(), "leads.csv:1: the header is separated by tabs"),
])
def test_a_file_saved_wrong_gets_one_line_naming_it_and_the_fix(tmp_path, content, says):
    from engine.csvcheck import check_readable
    from engine.errors import InputError

    path = tmp_path / "leads.csv"
    path.write_bytes(content)
    with pytest.raises(InputError) as refused:
        check_readable(path)
    message = str(refused.value)
    assert says in message and message.endswith("save it from the spreadsheet as CSV UTF-8 (comma delimited)")
    assert "\n" not in message


def test_a_duplicate_in_a_later_batch_is_counted_once_and_a_second_import_changes_nothing(make_world, monkeypatch,
                                                                                          tmp_path):
    import engine.contacts
    from engine.contacts import import_csv, import_summary

    from tests.conftest import winter_sequence

    world = make_world([winter_sequence()])
    world.add_contacts({"phone": "09125555555", "first_name": "Old"})
    monkeypatch.setattr(engine.contacts, "BATCH", 2)
    path = tmp_path / "leads.csv"
    path.write_text("phone,first_name,city\n09121111111,Sara,Tehran\n09125555555,,\n09122222222,Ali,\n"
                    "۰۹۱۲۱۱۱۱۱۱۱,Sarah,Shiraz\nbad,X,\n09125555555,Old,Karaj\n", encoding="utf-8")
    first = import_csv(world.engine, path, "IR")
    assert import_summary(first) == ("6 rows: 2 created, 1 updated, 0 unchanged, 2 duplicates of an earlier row "
                                     "(lines 5, 7), 1 bad; 1 with a warning")
    assert first.warnings == [(5, "a duplicate of an earlier row for the same contact: its first_name, city "
                                  "differ, and the earlier row's value is kept")]
    again = import_csv(world.engine, path, "IR")
    assert import_summary(again) == ("6 rows: 0 created, 0 updated, 3 unchanged, 2 duplicates of an earlier row "
                                     "(lines 5, 7), 1 bad; 1 with a warning")
    assert again.contact_ids == first.contact_ids and len(first.contact_ids) == 3


def test_importing_a_file_twice_reports_no_update_when_two_rows_name_one_contact(make_world, tmp_path):
    from engine.contacts import import_csv
    from tests.conftest import winter_sequence

    world = make_world([winter_sequence()])
    path = tmp_path / "leads.csv"
    path.write_text("phone,email,first_name,tags\n09121111111,,Sara,winter\n09122222222,,Ali,\n"
                    "+989121111111,sara@example.com,Sarah,vip\n", encoding="utf-8")
    assert import_csv(world.engine, path, "IR").created == 2
    again = import_csv(world.engine, path, "IR")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)  # the third row is the first one's again
    assert again.duplicates == [4]
    with world.engine.connect() as conn:
        stored = conn.execute(sa.text("select first_name, email, tags from contacts where phone = '+989121111111'"))
        assert stored.one() == ("Sara", "sara@example.com", ";vip;winter;")  # the first row's name; the rest merged


def test_a_good_mobile_beside_a_bad_email_is_imported_with_a_warning_on_its_line(make_world, tmp_path):
    from engine.contacts import import_csv
    from tests.conftest import winter_sequence

    world = make_world([winter_sequence()])
    path = tmp_path / "leads.csv"
    path.write_text("phone,email\n09121111111,ali@\nnot-a-phone,bad@\n", encoding="utf-8")
    report = import_csv(world.engine, path, "IR")
    assert report.created == 1 and [line for line, _ in report.errors] == [3]  # both bad: nothing to keep
    [(line, warning)] = report.warnings
    assert line == 2 and warning.startswith("email: 'ali@' is not a valid email address")
    assert warning.endswith("imported without this email, fix it and import again to add it")


# -- YAML syntax errors: the line of the mistake, in words to act on ------------------------------------
# each text marks the line of the mistake with "# <-"
@pytest.mark.parametrize("text, says", [
    ("name: s\ntouches:\n  - name: a\n    after: 1d\n   channel: sms  # <-\n", "line this key up with the keys beside it"),
    ("name: s\nlocale: fa\n  oops: 1  # <-\nb: 2\n", "a ':' where no key can start"),
    ("name: s\ndescription: a: b  # <-\nb: 2\n", "put a value that contains ': ' in quotes"),
    ("name: s\nexit_on converted  # <-\nb: 2\nc: 3\n", "a key without its ':'"),
    ("name: s\nexit_on:converted  # <-\nb: 2\n", "without a space after the ':'"),
    ("name: s\noffer:\n\tcode: X  # <-\nb: 2\n", "a tab character; YAML indents with spaces only"),
    ('name: s\ndescription: "winter sale  # <-\nb: 2\nc: 3\nd: 4\n', 'a quote opened on line 2 is never closed'),
    ("name: s\ndescription: 'winter sale  # <-\nb: 2\nc: 3\n", "a quote opened on line 2 is never closed"),
    ("name: s\nexit_on: [converted, replied  # <-\nb: 2\nc: 3\n", "a [ opened on line 2 is not closed with ]"),
    ("name: s\noffer: {code: X, title: Y  # <-\nb: 2\n", "a { opened on line 2 is not closed with }"),
    ("name: s\ntouches:\n  - name: a\n    after: 1d\n  channel: sms  # <-\n", "a key at the indentation of the list's"),
    ("name: s\ndescription: 'it's new'  # <-\n", "text after a quoted value"),
    ("name: s\ndescription: `x`  # <-\n", "a value cannot start with `; put the value in quotes"),
])
def test_a_yaml_syntax_error_points_at_the_mistake_and_says_what_to_check(tmp_path, text, says):
    from engine.errors import ConfigError
    from engine.yamlfile import load_yaml

    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    mistake = next(i for i, line in enumerate(text.splitlines(), 1) if line.endswith("# <-"))
    with pytest.raises(ConfigError) as raised:
        load_yaml(path)
    [problem] = raised.value.problems
    assert problem.line == mistake and problem.message.startswith("YAML syntax error: ") and says in problem.message, problem
