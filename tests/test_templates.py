"""engine.templates: rendering SMS and email templates in the sandbox, and their filters."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from jinja2.sandbox import SecurityError

from engine.templates import (ContactView, OfferView, RenderError, Renderer, SequenceView, TouchView, human_duration,
                              jalali, literal_urgency)


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


def test_renderer_preload_compiles_now_and_leaves_broken_templates_to_render(tmp_path):
    (tmp_path / "ok.sms.j2").write_text("سلام {{ contact.first_name }}", encoding="utf-8")
    (tmp_path / "broken.sms.j2").write_text("{% if %}", encoding="utf-8")
    renderer = Renderer(tmp_path)
    renderer.preload(["ok.sms.j2", "broken.sms.j2", "missing.sms.j2"])
    assert [name for _, name in renderer._loaded] == ["ok.sms.j2"]
    with pytest.raises(RenderError, match="broken.sms.j2"):
        renderer.render("broken.sms.j2", "sms", {})
