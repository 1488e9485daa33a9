"""``followup lead won|lost|later|show|link|revoke KEY``: what became of a lead handed to sales.

KEY names the contact (a phone, an email, an external id or ``#ID``); the command acts on its latest handoff.
"""
from __future__ import annotations

import json
from datetime import datetime

import click

from .errors import InputError

__all__ = ["lead"]


@click.group()
def lead() -> None:
    """Leads handed to sales: record the outcome (won, lost, later), show one, its rep's page link."""


def _latest(state, conn, key: str) -> dict:
    import sqlalchemy as sa

    from .cli_contacts import find_by_key
    from .models import Handoff

    table = Handoff.__table__
    contact = find_by_key(state, conn, key)
    row = conn.execute(sa.select(table).where(table.c.contact_id == contact["id"]).order_by(table.c.id.desc())
                       .limit(1)).mappings().first()
    if row is None:
        raise InputError(f"{key!r} was never handed to sales (a sequence's handoff: rule does that)")
    return dict(row)


def _record(state, key: str, outcome: str, **kw) -> None:
    from .console import out
    from .leads import record_outcome

    with state.engine().begin() as conn:
        row = record_outcome(conn, state.config, _latest(state, conn, key), outcome, by="cli", **kw)
    if outcome == "won":
        detail = f"value {row['value']:g} (a converted event credited to the handoff)"
    else:
        detail = f"objection: {row['objection']}" if outcome == "lost" else f"follow up on {row['follow_up_on']}"
    out.print(f"lead #{row['contact_id']} (handoff {row['id']}, rep {row['rep']}): {outcome}, {detail}", markup=False)


@lead.command("won")
@click.argument("key")
@click.option("--value", type=float, required=True, help="What the sale was worth.")
@click.option("--note", help="A short note.")
@click.pass_obj
def lead_won(state, key: str, value: float, note: str | None) -> None:
    """The lead bought: records a converted event with VALUE, credited to the handoff."""
    _record(state, key, "won", value=value, note=note)


@lead.command("lost")
@click.argument("key")
@click.option("--objection", required=True, help="One of sales.objections (price, timing, ...) or your own words.")
@click.option("--note", help="A short note.")
@click.pass_obj
def lead_lost(state, key: str, objection: str, note: str | None) -> None:
    """The lead said no, with the objection heard."""
    _record(state, key, "lost", objection=objection, note=note)


@lead.command("later")
@click.argument("key")
@click.option("--on", "on", required=True, help="The date to follow up, YYYY-MM-DD.")
@click.option("--note", help="A short note.")
@click.pass_obj
def lead_later(state, key: str, on: str, note: str | None) -> None:
    """Follow the lead up later, on a date."""
    _record(state, key, "follow_up_later", follow_up_on=on, note=note)


@lead.command("show")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="As one JSON object.")
@click.pass_obj
def lead_show(state, key: str, as_json: bool) -> None:
    """The lead's score and its handoffs with their outcomes."""
    from .cli_contacts import find_by_key
    from .console import out
    from .leads import lead_summary

    with state.engine().connect() as conn:
        summary = lead_summary(conn, state.config, find_by_key(state, conn, key))
    summary["handoffs"] = [{**h, "at": h["at"].isoformat()} for h in summary["handoffs"]]
    if as_json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    lines = [f"score: {summary['score']:g}"] + [
        f"handoff {h['id']} {h['at']} from {h['sequence']} to {h['rep']} ({h['fired_by']}): {h['outcome'] or 'open'}"
        for h in summary["handoffs"]]
    out.print("\n".join(lines), markup=False)


@lead.command("link")
@click.argument("key")
@click.option("--renew", is_flag=True, help="Make a new link (the old one stops working), valid for "
                                            "sales.page_expires_after.")
@click.pass_obj
def lead_link(state, key: str, renew: bool) -> None:
    """The rep's page link of the lead's latest handoff."""
    from .console import out
    from .leads import lead_url, renew as renew_token

    with state.engine().begin() as conn:
        row = _latest(state, conn, key)
        if renew:
            row = renew_token(conn, state.config, row["id"])
    url = lead_url(state.config, row)
    if url is None:
        raise InputError("this link was revoked (make a new one with --renew), or settings have no secret_key")
    expires = row["token_expires_at"]
    out.print(f"{url}\n(for {row['rep']}; expires {expires:%Y-%m-%d %H:%M} UTC)"
              if isinstance(expires, datetime) else url, markup=False)


@lead.command("revoke")
@click.argument("key")
@click.pass_obj
def lead_revoke(state, key: str) -> None:
    """The rep's page link of the lead's latest handoff stops working."""
    from .console import out
    from .leads import revoke

    with state.engine().begin() as conn:
        row = _latest(state, conn, key)
        revoke(conn, row["id"])
    out.print(f"the page link of handoff {row['id']} (rep {row['rep']}) no longer works; "
              f"`followup lead link {key} --renew` makes a new one", markup=False)
