"""``followup webhooks``: each webhook URL's state; ``replay --since``; ``resume``."""
from __future__ import annotations

import click

from .durations import parse_duration
from .errors import InputError


def _when(value) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else ""


@click.group(invoke_without_command=True)
@click.pass_context
def webhooks(ctx: click.Context) -> None:
    """The webhook URLs of settings.yaml (masked): state, pending and delivered events, failing since."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from .console import out
    from .webhook_admin import endpoint_rows

    state = ctx.obj
    if not state.config.settings.webhooks:
        out.print("no webhooks are configured (settings.yaml: webhooks: [{url, events, secret}])", markup=False)
        return
    with state.engine().connect() as conn:
        rows = endpoint_rows(conn, state.config)
    table = Table("url", "events", "state", "pending", "delivered", "oldest pending", "failing since", "last error")
    for r in rows:
        table.add_row(r["url"], ", ".join(r["events"]), r["state"], str(r["pending"]), str(r["delivered"]),
                      _when(r["oldest_pending"]), _when(r["failing_since"]), r["last_error"] or "")
    out.print(table)


@webhooks.command("replay")
@click.option("--since", required=True, help="Events created this long ago or later, e.g. 2h or 7d.")
@click.option("--url", help="Only this webhook URL (as listed); default: all.")
@click.pass_obj
def webhooks_replay(state, since: str, url: str | None) -> None:
    """Send the events of the last SINCE again, each with its own id (receivers drop what they have)."""
    from .clock import now
    from .console import out
    from .webhook_admin import replay

    try:
        span = parse_duration(since)
    except ValueError as err:
        raise InputError(f"--since {since!r}: {err}") from err
    with state.engine().begin() as conn:
        n = replay(conn, state.config, now() - span, url)
    out.print(f"{n} event(s) queued again; the worker sends them in their order", markup=False)


@webhooks.command("resume")
@click.argument("url", required=False)
@click.pass_obj
def webhooks_resume(state, url: str | None) -> None:
    """Deliver again to a paused URL (all paused ones without URL)."""
    from .console import out
    from .webhook_admin import resume

    with state.engine().begin() as conn:
        n = resume(conn, state.config, url)
    out.print(f"{n} webhook URL(s) resumed" if n else "no paused webhook URL to resume", markup=False)
