"""``followup serve`` (the HTTP service) and ``followup apikey create|revoke NAME``."""
from __future__ import annotations

import logging

import click

__all__ = ["serve", "apikey"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.pass_obj
def serve(state, host: str, port: int) -> None:
    """Serve the API, webhooks, unsubscribe links, dashboard and /metrics (the worker runs separately).

    \b
    The dashboard password comes from FOLLOWUP_DASHBOARD_PASSWORD or service.dashboard_password (or log in
    with an API key); on an address other than loopback it must be 12 characters or more.
    FOLLOWUP_PUBLIC_URL is the URL providers call (Twilio signs it); X-Forwarded-Proto/Host are
    believed only from the addresses in service.trusted_proxies.
    """
    import uvicorn

    from . import heap
    from .console import out
    from .service import create_app
    from .service.listen import check_password, listen, password_line

    state.engine()  # refuses a missing or old schema, naming the fix
    app = create_app(state.config)
    options = app.state.ctx.options
    check_password(host, options)
    sock = listen(host, port)
    out.print(password_line(options), markup=False)
    out.print(f"serving on http://{host}:{port} (dashboard /dashboard, API /api/v1, health /healthz)", markup=False)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    # uvicorn's access log is off: it would print unsubscribe tokens and contact keys; the app logs each
    # request itself (engine.service.errors.log_path: tokens cut, keys masked, control characters escaped).
    # proxy_headers off: which proxies' X-Forwarded-* to believe is service.trusted_proxies' decision
    config = uvicorn.Config(app, access_log=False, log_config=None, server_header=False, proxy_headers=False)
    heap.settle()  # the app is loaded: keep it out of the collector's walks
    uvicorn.Server(config).run(sockets=[sock])


@click.group()
def apikey() -> None:
    """API keys for the HTTP API and dashboard."""


@apikey.command("create")
@click.argument("name")
@click.pass_obj
def apikey_create(state, name: str) -> None:
    """Create the key NAME and print it once (only its hash is stored)."""
    from .apikeys import create_key
    from .console import err

    with state.engine().begin() as conn:
        key = create_key(conn, name)
    err.print(f"API key {name!r} created; it is shown once, store it now:", markup=False)
    click.echo(key)


@apikey.command("revoke")
@click.argument("name")
@click.pass_obj
def apikey_revoke(state, name: str) -> None:
    """Revoke the key NAME at once; the dashboard sessions opened with it end too."""
    from .apikeys import revoke_key
    from .console import out

    with state.engine().begin() as conn:
        revoke_key(conn, name)
    out.print(f"API key {name!r} revoked")
