"""The dashboard's catalog and its ``service.locale`` setting (the pages themselves: test_service_dashboard.py)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from engine.errors import ConfigError
from engine.service.i18n import EN, FA, reason_phrases
from engine.service.options import service_options
from engine.settings import load_settings

TEMPLATES = Path(__file__).resolve().parent.parent / "engine" / "service" / "templates"


def test_every_text_the_templates_ask_for_is_in_both_locales():
    asked = {key for page in TEMPLATES.glob("*.html")
             for key in re.findall(r"""\bt\(\s*["']([\w.:]+)["']""", page.read_text(encoding="utf-8"))}
    assert {"nav.overview", "login.heading", "seq.funnel", "contact.timeline"} <= asked
    families = {key for key in asked if key.endswith(".")}  # t("lead.error." ~ code): a family of keys
    asked -= families
    for family in families:
        assert any(k.startswith(family) for k in EN) and any(k.startswith(family) for k in FA), family
    assert asked - set(EN) == set() and asked - set(FA) == set()
    assert set(EN) - set(FA) == set(), "every English text has a Persian one"
    for key in EN:  # the same placeholders, so neither locale fails to format
        assert set(re.findall(r"{(\w+)}", EN[key])) == set(re.findall(r"{(\w+)}", FA[key])), key


def test_reasons_read_as_words_and_keep_their_timestamps():
    assert reason_phrases("fa", "offer_expired: the offer ended at 2026-12-07T06:30:00+00:00") == \
        "مهلت پیشنهاد گذشته: پیشنهاد در 2026-12-07T06:30:00+00:00 تمام شد"
    assert reason_phrases("fa", "due 2026-12-07T06:30:00Z, 1d12h after hello") == \
        "موعد 2026-12-07T06:30:00Z، ۱ روز و ۱۲ ساعت پس از hello"
    assert reason_phrases("en", "sold_out: no stock left for the offer") == "sold out: no stock left for the offer"
    assert reason_phrases("fa", "a provider's own words") == "a provider's own words"


@pytest.mark.parametrize("settings, locale", [({}, "fa"), ({"timezone": "Europe/Berlin"}, "en"),
                                              ({"service": {"locale": "en"}}, "en"),
                                              ({"timezone": "UTC", "service": {"locale": "fa"}}, "fa")])
def test_the_dashboard_speaks_persian_by_default_where_the_timezone_is_tehran(make_world, settings, locale):
    world = make_world([], settings=settings)
    assert service_options(world.config).locale == locale


def test_an_unknown_dashboard_language_is_refused_naming_the_key(make_world):
    world = make_world([])
    path = world.config.dir / "settings.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump({**raw, "service": {"locale": "de"}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"service\.locale.*'de' is not a dashboard language; use fa or en"):
        load_settings(world.config.dir)
