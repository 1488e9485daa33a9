"""``followup kpi``: the shared KPIs of marketing and sales (see :mod:`engine.kpi`)."""
from __future__ import annotations

import csv
import json
import sys
from functools import partial

import click

from .db import read_at_once, reading
from .errors import InputError

__all__ = ["kpi"]


def _shown(value) -> str:
    if value is None:
        return "–"
    return f"{value:,}" if isinstance(value, (int, float)) else str(value)


@click.command("kpi")
@click.option("--since", default="30d", show_default=True, help="The window: this long ago until now (e.g. 7d, 90d).")
@click.option("--by", type=click.Choice(["source", "sequence", "rep", "month"]), help="One row per group.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: groups, their figures and each definition.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: one line per group.")
@click.pass_obj
def kpi(state, since: str, by: str | None, as_json: bool, as_csv: bool) -> None:
    """Leads, handoffs, conversion, revenue, lead quality, objections, lifetime value and cost, in one report."""
    from .kpi import DEFINITIONS, FIGURES, kpi_report, parse_window

    if as_json and as_csv:
        raise InputError("give --json or --csv, not both")
    try:
        span = parse_window(since)
    except ValueError as err:
        raise InputError(f"--since {since!r}: {err}") from err
    engine = state.engine()
    with reading(engine) as conn:
        groups = kpi_report(conn, state.config, since=span, by=by, run=partial(read_at_once, engine))
    if as_json:
        click.echo(json.dumps({"since": since, "by": by, "groups": [g.as_dict() for g in groups],
                               "definitions": DEFINITIONS}, ensure_ascii=False, indent=2))
        return
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow([by or "group", *FIGURES, "top_objection"])
        for g in groups:
            top = g.objections[0]["objection"] if g.objections else ""
            writer.writerow([g.group, *("" if g.figures[f] is None else g.figures[f] for f in FIGURES), top])
        return
    from rich.table import Table

    from .console import out

    table = Table("figure", *(g.group for g in groups), "definition", title=f"KPIs of the last {since}")
    for name in FIGURES:
        table.add_row(name, *(_shown(g.figures[name]) for g in groups), DEFINITIONS[name])
    table.add_row("top_objections", *(", ".join(f"{o['objection']} {o['count']}" for o in g.objections[:3]) or "–"
                                      for g in groups), DEFINITIONS["top_objections"])
    out.print(table)
