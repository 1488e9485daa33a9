"""The Jinja environment of the service's HTML pages: autoescaped, CSS inlined, fonts served by the app.

Every page is in the locale of its request (:func:`page_locale`): ``?lang=`` on the URL, else the
``followup_lang`` cookie the header's switch sets, else ``service.locale``. The templates read it through:

- ``t("key", name=value)``: the catalog's text (:mod:`.i18n`), with Persian digits in fa;
- ``locale()``: ``fa`` or ``en`` (for ``<html lang dir>``);
- ``{{ when | stamp }}``: a UTC datetime in the settings' time zone inside ``<time datetime dir title>``, so
  bidi cannot reorder it: the Jalali date first in fa (the Gregorian one on hover), the other way in en;
- ``{{ on | day }}``: a date (or ``YYYY-MM-DD``) as ``<time>``: Jalali in fa (the Gregorian one on hover), the other
  way in en;
- ``{{ n | num }}``: a number in the locale's digits;
- ``{{ amount | money }}``: an amount grouped in the locale (``1,200,000`` / ``۱٬۲۰۰٬۰۰۰``);
- ``{{ value | word }}``: a stored value (event, status, channel) in words;
- ``{{ reason | reason }}``: an engine reason in words, its timestamps shown by ``stamp``;
- ``{{ "1d12h" | duration }}``: a duration from settings in words.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup, escape

from ..templates import jalali
from ..text import fa_digits, grouped
from .i18n import CATALOG, EN, LOCALES, TIMESTAMP, duration_words, reason_phrases, text

__all__ = ["templates", "page_locale", "locale_number", "LANG_COOKIE", "FONTS"]

HERE = Path(__file__).parent
LANG_COOKIE = "followup_lang"
#: the font files the app serves at /fonts/NAME (Vazirmatn, SIL OFL 1.1: static/fonts/OFL.txt)
FONTS = {p.name: p for p in (HERE / "static" / "fonts").glob("*.woff2")}
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["inline_css"] = (HERE / "static" / "style.css").read_text(encoding="utf-8")


def page_locale(request: Request) -> str:
    """The locale of this request: ``?lang=``, else the language cookie, else ``service.locale``."""
    cached = getattr(request.state, "locale", None)
    if cached:
        return cached
    for asked in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if asked in LOCALES:
            locale = asked
            break
    else:
        locale = request.app.state.ctx.options.locale
    request.state.locale = locale
    return locale


def _locale(context: Any) -> str:
    return page_locale(context["request"])


#: Persian thousands and decimal separators (U+066C, U+066B)
_FA_SEPARATORS = str.maketrans({",": "\u066c", ".": "\u066b"})


def _digits(locale: str, text: str) -> str:
    return fa_digits(text) if locale == "fa" else text


@pass_context
def t(context: Any, key: str, **values: Any) -> Markup:
    """The catalog's text for ``key`` in this page's locale, filled with ``values`` (escaped unless already
    markup, like a ``stamp``)."""
    locale = _locale(context)
    values = {k: v if isinstance(v, Markup) else _digits(locale, str(v)) for k, v in values.items()}
    return Markup(escape(_digits(locale, text(locale, key)))).format(**values)


@pass_context
def locale(context: Any) -> str:
    """This page's locale."""
    return _locale(context)


@pass_context
def stamp(context: Any, value: datetime | None) -> Markup:
    """A UTC datetime in the settings' time zone, as ``<time>`` with its own direction and the other calendar
    in ``title``."""
    if value is None:
        return Markup("")
    local = value.astimezone(context["request"].app.state.ctx.config.settings.timezone)
    return _time(context, local.isoformat(timespec="minutes"), f"{local:%Y-%m-%d %H:%M}",
                 jalali(local, with_time=True))


@pass_context
def day(context: Any, value: date | str | None) -> Markup:
    """A calendar date as ``<time>`` with its own direction and the other calendar in ``title``."""
    if not value:
        return Markup("")
    on = value if isinstance(value, date) else date.fromisoformat(str(value))
    return _time(context, on.isoformat(), on.isoformat(), jalali(on))


def _time(context: Any, machine: str, gregorian: str, persian: str) -> Markup:
    """``<time>`` showing the page's calendar, the other one in ``title``, in its own direction (bidi cannot
    reorder it)."""
    shown, other, direction = (persian, gregorian, "rtl") if _locale(context) == "fa" else (gregorian, persian, "ltr")
    return Markup('<time datetime="{}" dir="{}" title="{}">{}</time>').format(machine, direction, other, shown)


def locale_number(locale: str, value: Any) -> str:
    """An amount or count grouped as people of ``locale`` read it: ``1,200,000`` in en, ``۱٬۲۰۰٬۰۰۰`` in fa."""
    text = grouped(value)
    return fa_digits(text.translate(_FA_SEPARATORS)) if locale == "fa" else text


@pass_context
def money(context: Any, value: Any) -> str:
    """An amount grouped as people read it: ``1,200,000`` in en, ``۱٬۲۰۰٬۰۰۰`` in fa; never ``1.2e+06``."""
    return locale_number(_locale(context), value)


@pass_context
def num(context: Any, value: Any) -> str:
    """A number (or any text) with the locale's digits."""
    return _digits(_locale(context), "" if value is None else str(value))


_COUNTED = re.compile(r"^(\w+) (\d+)$")


@pass_context
def word(context: Any, value: Any) -> str:
    """A stored value (``skipped``, ``sms``, ``failover 1``) in the locale's words; unknown values as they are."""
    if value is None:
        return ""
    locale, text = _locale(context), str(value)
    counted = _COUNTED.match(text)
    if counted:
        return f"{word(context, counted.group(1))} {num(context, counted.group(2))}"
    return CATALOG.get(locale, EN).get(f"ev:{text}") or EN.get(f"ev:{text}") or text


@pass_context
def duration(context: Any, value: str | None) -> str:
    """A duration as settings write it (``48h``) in the locale's words."""
    return duration_words(_locale(context), value) if value else ""


def _parse_stamp(text: str) -> datetime | None:
    text = text.removesuffix(" UTC").removesuffix("Z")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@pass_context
def reason(context: Any, text: str | None) -> Markup:
    """An engine reason in the locale's words, every timestamp in it shown by :func:`stamp`."""
    if not text:
        return Markup("")
    locale = _locale(context)
    text = reason_phrases(locale, text)
    out, pos = [], 0
    for match in TIMESTAMP.finditer(text):
        when = _parse_stamp(match.group(0))
        if when is None:
            continue
        out += [escape(_digits(locale, text[pos:match.start()])), stamp(context, when)]
        pos = match.end()
    out.append(escape(_digits(locale, text[pos:])))
    return Markup("").join(out)


@pass_context
def csrf(context: Any) -> str:
    """The CSRF token an action form of this page carries (see :func:`.auth.csrf_token`)."""
    from .auth import csrf_token

    return csrf_token(context["request"])


templates.env.globals.update(t=t, locale=locale, csrf=csrf)
templates.env.filters.update(stamp=stamp, day=day, num=num, word=word, reason=reason, duration=duration, money=money)
