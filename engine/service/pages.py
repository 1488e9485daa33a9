"""The Jinja environment of the service's HTML pages (autoescaped; CSS inlined, nothing loaded from outside)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from ..templates import jalali_html

__all__ = ["templates", "install_filters"]

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["inline_css"] = (HERE / "static" / "style.css").read_text(encoding="utf-8")


def install_filters(tz: ZoneInfo, locale: str) -> None:
    """``when``: a UTC datetime shown in the settings' timezone, with the Jalali date where the locale is fa.

    The whole is a left-to-right ``<time>`` and the Jalali part a right-to-left ``<bdi>`` inside it, so
    neither the cell's direction nor the text around it reorders the digits.
    """

    def when(value: datetime | None) -> Markup:
        if value is None:
            return Markup("")
        local = value.astimezone(tz)
        shown = local.strftime("%Y-%m-%d %H:%M")
        if locale == "fa":
            shown = Markup("{} ({})").format(shown, jalali_html(local, with_time=True))
        return Markup('<time datetime="{}" dir="ltr">{}</time>').format(local.isoformat(), shown)

    templates.env.filters["when"] = when
    templates.env.globals["timezone_name"] = tz.key
