"""The Jinja environment of the service's HTML pages (autoescaped; CSS inlined, nothing loaded from outside)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates

from ..templates import jalali

__all__ = ["templates", "install_filters"]

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["inline_css"] = (HERE / "static" / "style.css").read_text(encoding="utf-8")


def install_filters(tz: ZoneInfo, locale: str) -> None:
    """``when``: a UTC datetime shown in the settings' timezone, with the Jalali date where the locale is fa."""

    def when(value: datetime | None) -> str:
        if value is None:
            return ""
        local = value.astimezone(tz)
        text = local.strftime("%Y-%m-%d %H:%M")
        return f"{text} ({jalali(local, with_time=True)})" if locale == "fa" else text

    templates.env.filters["when"] = when
    templates.env.globals["timezone_name"] = tz.key
