"""``followup providers``: list them, check their accounts, resume a paused one."""
from __future__ import annotations

import sys

import click

from providers.base import Provider, mask_secret
from providers.errors import ProviderError
from providers.ratelimit import parse_rate

from .errors import InputError
from .store.pauses import active_pauses, pause_text, resume_provider
from .text import grouped


@click.group(invoke_without_command=True)
@click.pass_context
def providers(ctx: click.Context) -> None:
    """The configured providers, with type, channel, rate and state (active / paused and why)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from .console import out

    state = ctx.obj
    config = state.config
    with state.engine().connect() as conn:
        pauses = active_pauses(conn)
    table = Table("name", "type", "channel", "role", "rate", "state")
    for channel, entries in config.settings.providers.items():
        for i, entry in enumerate(entries):
            pause = pauses.get(entry["name"])
            shown = f"{pause_text(pause)}: {pause.reason}" if pause else "active"
            rate = parse_rate(entry.get("rate"))
            table.add_row(entry["name"], entry.get("type", ""), channel, "primary" if i == 0 else f"failover {i}",
                          f"{rate:g}/s" if rate else "unlimited", shown)
    out.print(table)


def _mode(provider: Provider, what: str, polls: bool, push_ready: bool) -> str:
    """``poll``, ``push``, ``poll + push`` or ``none`` for ``what`` (receipts / inbound)."""
    pushes = what in provider.pushes and push_ready
    mode = " + ".join(m for m, on in (("poll", polls), ("push", pushes)) if on) or "none"
    if what in provider.pushes and not push_ready:
        mode += f" (push: set {provider.push_keys[0]})"
    return mode


def delivery_setup(provider: Provider, public_url: str | None) -> str:
    """How receipts and inbound SMS reach us from ``provider``, and the URL to give its panel (secret masked)."""
    kind = type(provider)
    unsigned = "callback_secret" in provider.optional
    secret = str(provider.settings.get("callback_secret") or "")
    ready = not provider.push_keys or any(provider.settings.get(key) for key in provider.push_keys)
    parts = [f"receipts: {_mode(provider, 'receipts', kind.delivery_status is not Provider.delivery_status, ready)}"]
    if "sms" in provider.channels:
        parts.append(f"inbound: {_mode(provider, 'inbound', kind.inbound is not Provider.inbound, ready)}")
    if provider.pushes and ready:
        base = public_url or "<public URL: set FOLLOWUP_PUBLIC_URL>"
        path = f"/webhooks/{provider.name}" + (f"/{mask_secret(secret)}" if unsigned else "")
        parts.append(f"callback URL: {base}{path}")
    if provider.push_unsupported:
        parts.append(f"push: none ({provider.push_unsupported})")
    return "; ".join(parts)


@providers.command("check")
@click.pass_obj
def providers_check(state) -> None:
    """Ask each provider for its account state (credentials, credit) before the first send does, and say
    how its receipts and inbound SMS arrive (polled, pushed to which URL)."""
    from rich.text import Text

    from .console import out
    from .service.options import service_options
    from .provider_setup import build_providers

    public_url = service_options(state.config).public_url
    bad = 0
    for channel, group in build_providers(state.config).items():
        for provider in group:
            try:
                result = provider.check()
            except (ProviderError, OSError) as err:
                out.print(Text.assemble(f"{provider.name} ({provider.type}, {channel}): ", ("unreachable", "red"), f": {err}"))
                out.print(f"  {delivery_setup(provider, public_url)}", markup=False)
                bad += 1
                continue
            credit = f", credit {grouped(result.credit)}" if result.credit is not None else ""
            mark = "ok" if result.ok else "PROBLEM"
            out.print(f"{provider.name} ({provider.type}, {channel}): {mark}: {result.detail}{credit}", markup=False)
            out.print(f"  {delivery_setup(provider, public_url)}", markup=False)
            bad += 0 if result.ok else 1
            provider.close()
    if bad:
        sys.exit(1)


@providers.command("resume")
@click.argument("name")
@click.pass_obj
def providers_resume(state, name: str) -> None:
    """Lift the pause on provider NAME now."""
    from .console import out

    names = {e["name"] for entries in state.config.settings.providers.values() for e in entries}
    if name not in names:
        raise InputError(f"no provider named {name!r}; configured: {', '.join(sorted(names))}")
    with state.engine().begin() as conn:
        resume_provider(conn, name)
    out.print(f"{name}: active")
