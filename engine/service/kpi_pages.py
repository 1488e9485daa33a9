"""The shared KPIs over HTTP: ``GET /api/v1/kpi`` (API key) and the dashboard page ``/dashboard/kpi`` (a viewer),
both with ``?since=30d&by=source|sequence|rep|month``. The page draws its charts as SVG on the server, in the
page's locale (right to left and Persian digits in fa); every figure and funnel step carries its definition
(``kpi.def.<name>`` of :mod:`.i18n`) on hover."""
from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from ..db import read_at_once, reading
from ..clock import now
from ..kpi import (BY, DEFINITIONS, FIGURES, kpi_report, parse_window, revenue_by_source, sources_revenue,
                   top_objections)
from ..kpi_series import SEQUENCE_STEPS, TOUCH_STEPS, daily, funnels, touch_funnels
from ..templates import jalali
from ..text import fa_digits
from .auth import require_api_key, require_viewer
from .charts import Bar, bars, lines, sections
from .context import ServiceContext, get_context
from .errors import ApiError
from .i18n import translate
from .pages import locale_number, page_locale, templates

__all__ = ["api_router", "router"]

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_key)], tags=["api"])
router = APIRouter(dependencies=[Depends(require_viewer)], include_in_schema=False)
BY_PATTERN = "^(" + "|".join(BY) + ")$"


def _window(since: str):
    try:
        return parse_window(since), None
    except ValueError as err:
        return None, str(err)


@api_router.get("/kpi", summary="The shared KPIs of marketing and sales, optionally by source, sequence, rep or month")
def get_kpi(since: str = Query("30d", max_length=20), by: str | None = Query(None, pattern=BY_PATTERN),
            ctx: ServiceContext = Depends(get_context)) -> dict[str, Any]:
    """Each group's figures (see ``definitions``) and top objections over the last ``since``."""
    span, problem = _window(since)
    if problem:
        raise ApiError(422, "invalid window", [("since", f"{problem} (e.g. 30d)")])
    with reading(ctx.engine) as conn:
        groups = kpi_report(conn, ctx.config, since=span, by=by, run=partial(read_at_once, ctx.engine))
    return {"since": since, "by": by, "groups": [g.as_dict() for g in groups], "definitions": DEFINITIONS}


@router.get("/dashboard/kpi", response_class=HTMLResponse)
def kpi_page(request: Request, since: str = Query("30d", max_length=20),
             by: str | None = Query(None, pattern=BY_PATTERN), ctx: ServiceContext = Depends(get_context)):
    """The figures (each defined on hover), the funnel per sequence and per touch, sends/clicks/conversions per
    day, revenue by source and the objections' shares."""
    span, problem = _window(since)
    if problem:
        raise HTTPException(400, f"since: {problem} (e.g. 30d)")
    locale = page_locale(request)
    rtl = locale == "fa"
    until = now()
    touch_order = {name: [t.name for t in seq.touches] for name, seq in ctx.config.sequences.items()}
    start = until - span
    at_once = partial(read_at_once, ctx.engine)
    reads = {
        "groups": lambda conn: kpi_report(conn, ctx.config, since=span, by=by, until=until, run=at_once),
        "funnels": lambda conn: funnels(conn, start, until),
        "touches": lambda conn: touch_funnels(conn, start, until, touch_order),
        "days": lambda conn: daily(conn, start, until, ctx.config.settings.timezone),
    }
    if by != "source":  # by source, the report's groups have each source's revenue
        reads["revenue"] = lambda conn: revenue_by_source(conn, since=span, until=until)
    if by is not None:
        reads["objections"] = lambda conn: top_objections(conn, since=span, until=until)
    read = dict(zip(reads, at_once(list(reads.values()))))
    groups, sequence_funnels, per_touch, days = read["groups"], read["funnels"], read["touches"], read["days"]
    by_source = read["revenue"] if "revenue" in read else sources_revenue(groups)
    objections = read["objections"] if "objections" in read else groups[0].objections

    def word(key: str) -> str:
        return translate(locale, f"kpi.{key}")

    def number(value: float) -> str:
        return locale_number(locale, value)

    def step_bars(steps: list[tuple[str, int]]) -> list[Bar]:
        return [Bar(word(step), n, number(n), step, word(f"def.{step}")) for step, n in steps]

    def share(value: float) -> str:
        shown = translate(locale, "percent", n=f"{value * 100:.0f}")
        return fa_digits(shown) if rtl else shown

    def day_label(day) -> str:
        return jalali(day) if rtl else f"{day:%m-%d}"

    charts = {
        "funnels": [(seq, bars(seq, step_bars(steps), rtl=rtl)) for seq, steps in sequence_funnels.items()],
        "touches": [(seq, sections(f"{seq}: {word('touch_funnel')}",
                                   [(touch, step_bars(steps)) for touch, steps in rows], rtl=rtl))
                    for seq, rows in per_touch.items()],
        "daily": lines(word("daily"), [day_label(d) for d, _ in days["sends"]],
                       {k: [n for _, n in v] for k, v in days.items()}, {k: word(k) for k in days}, rtl=rtl,
                       number=number),
        "revenue": bars(word("revenue_by_source"), [Bar(source, revenue, number(revenue), hint=word("def.revenue"))
                                                    for source, revenue in by_source], rtl=rtl),
        "objections": bars(word("objections"), [Bar(o["objection"], o["count"], share(o["share"]),
                                                    hint=word("def.top_objections")) for o in objections],
                           rtl=rtl),
    }
    return templates.TemplateResponse(request, "kpi.html", {
        "groups": groups, "figures": FIGURES, "since": since, "by": by, "by_choices": BY, "charts": charts,
        "labels": {k: word(k) for k in (*FIGURES, *(f"by_{b}" for b in BY))},
        "steps": {"sequence": SEQUENCE_STEPS, "touch": TOUCH_STEPS}}, headers={"Cache-Control": "no-store"})
