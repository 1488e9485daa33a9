"""``followup alerts``: the alert conditions and their state; ``alerts test`` sends a test alert."""
from __future__ import annotations

import sys

import click

from .clock import to_utc
from .errors import InputError


def _configured(state):
    alerts = state.config.settings.alerts
    if alerts is None:
        raise InputError("no alerts are configured; add alerts: {to: [...], on: [...]} to settings.yaml "
                         "(see the README, Alerts)")
    return alerts


@click.group(invoke_without_command=True)
@click.pass_context
def alerts(ctx: click.Context) -> None:
    """The alert conditions of settings.yaml, each with its state and when ops were last told."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from .alerts import states
    from .console import out

    settings = _configured(ctx.obj)
    with ctx.obj.engine().connect() as conn:
        rows = states(conn)
    table = Table("condition", "key", "state", "since", "ops told", "last alert", "detail")
    for condition in settings.on:
        mine = sorted((k, r) for k, r in rows.items() if k == condition.kind or k.startswith(condition.kind + ":"))
        if not mine:
            table.add_row(condition.describe(), "", "clear", "", "", "", "never fired")
        for key, row in mine:
            last = to_utc(row["last_sent_at"])
            table.add_row(condition.describe(), key, row["state"], f"{to_utc(row['since']):%Y-%m-%d %H:%M} UTC",
                          row["notified"] or "", f"{last:%Y-%m-%d %H:%M} UTC" if last else "", row["detail"] or "")
    out.print(table)
    out.print("to: " + ", ".join(f"{channel} {address}" for channel, address in settings.to), markup=False)


@alerts.command("test")
@click.pass_obj
def alerts_test(state) -> None:
    """Send a test alert to every recipient through the configured providers, and say what became of each."""
    from .alerts import send_alert
    from .console import out
    from .sending import Sender
    from .provider_setup import build_providers

    settings = _configured(state)
    providers = build_providers(state.config)
    try:
        sender = Sender(providers, inline_retries=state.config.settings.worker.inline_retries)
        deliveries = send_alert(sender, settings, "followup test alert: alerts reach you "
                                                  "(sent by `followup alerts test`)")
    finally:
        for group in providers.values():
            for provider in group:
                provider.close()
    failed = 0
    for d in deliveries:
        if d.outcome.kind == "sent":
            out.print(f"{d.channel} {d.to}: sent via {d.outcome.provider}", markup=False)
        else:
            failed += 1
            out.print(f"{d.channel} {d.to}: {d.outcome.kind}: {d.outcome.reason}", markup=False)
    if failed:
        sys.exit(1)
