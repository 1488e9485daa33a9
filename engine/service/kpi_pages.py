"""The shared KPIs over HTTP: ``GET /api/v1/kpi`` (API key) and the dashboard page ``/dashboard/kpi`` (a viewer),
both with ``?since=30d&by=source|sequence|rep|month``. The page draws its charts as SVG on the server."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from ..clock import now
from ..durations import parse_duration
from ..kpi import BY, DEFINITIONS, FIGURES, kpi_report
from ..kpi_series import daily, funnels
from .auth import require_api_key, require_viewer
from .charts import bars, lines
from .context import ServiceContext, get_context
from .errors import ApiError
from .i18n import translate
from .pages import page_locale, templates

__all__ = ["api_router", "router"]

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_key)], tags=["api"])
router = APIRouter(dependencies=[Depends(require_viewer)], include_in_schema=False)
BY_PATTERN = "^(" + "|".join(BY) + ")$"


def _window(since: str):
    try:
        span = parse_duration(since)
    except ValueError as err:
        return None, str(err)
    if not span:
        return None, "must be longer than 0s"
    return span, None


@api_router.get("/kpi", summary="The shared KPIs of marketing and sales, optionally by source, sequence, rep or month")
def get_kpi(since: str = Query("30d", max_length=20), by: str | None = Query(None, pattern=BY_PATTERN),
            ctx: ServiceContext = Depends(get_context)) -> dict[str, Any]:
    """Each group's figures (see ``definitions``) and top objections over the last ``since``."""
    span, problem = _window(since)
    if problem:
        raise ApiError(422, "invalid window", [("since", f"{problem} (e.g. 30d)")])
    with ctx.engine.connect() as conn:
        groups = kpi_report(conn, ctx.config, since=span, by=by)
    return {"since": since, "by": by, "groups": [g.as_dict() for g in groups], "definitions": DEFINITIONS}


@router.get("/dashboard/kpi", response_class=HTMLResponse)
def kpi_page(request: Request, since: str = Query("30d", max_length=20),
             by: str | None = Query(None, pattern=BY_PATTERN), ctx: ServiceContext = Depends(get_context)):
    """The figures (each defined on hover), the funnel per sequence, sends/clicks/conversions per day, revenue by
    source and the objections' shares."""
    span, problem = _window(since)
    if problem:
        raise HTTPException(400, f"since: {problem} (e.g. 30d)")
    locale = page_locale(request)
    rtl = locale == "fa"
    until = now()
    with ctx.engine.connect() as conn:
        groups = kpi_report(conn, ctx.config, since=span, by=by, until=until)
        totals = groups if by is None else kpi_report(conn, ctx.config, since=span, until=until)
        by_source = kpi_report(conn, ctx.config, since=span, by="source", until=until)
        sequence_funnels = funnels(conn, until - span, until)
        days = daily(conn, until - span, until, ctx.config.settings.timezone)

    def word(key: str) -> str:
        return translate(locale, f"kpi.{key}")

    charts = {
        "funnels": [(seq, bars(seq, [(word(step), n, f"{n:,}") for step, n in steps], rtl=rtl))
                    for seq, steps in sequence_funnels.items()],
        "daily": lines(word("daily"), [f"{d:%m-%d}" for d, _ in days["sends"]],
                       {k: [n for _, n in v] for k, v in days.items()}, {k: word(k) for k in days}, rtl=rtl),
        "revenue": bars(word("revenue_by_source"), [(g.group, g.figures["revenue"], f"{g.figures['revenue']:,.0f}")
                                                    for g in by_source], rtl=rtl),
        "objections": bars(word("objections"), [(o["objection"], o["count"], f"{o['share']:.0%}")
                                                 for o in totals[0].objections], rtl=rtl),
    }
    return templates.TemplateResponse(request, "kpi.html", {
        "groups": groups, "figures": FIGURES, "definitions": DEFINITIONS, "since": since, "by": by, "by_choices": BY,
        "charts": charts, "labels": {k: word(k) for k in (*FIGURES, *(f"by_{b}" for b in BY))}}, headers={"Cache-Control": "no-store"})
