"""``followup sequences``: list every sequence; pause, resume, stop, migrate one; unenroll a contact from one."""
from __future__ import annotations

import click


__all__ = ["sequences"]


@click.group(invoke_without_command=True)
@click.pass_context
def sequences(ctx: click.Context) -> None:
    """Every sequence the database or config knows: version, state, active enrollments, what is due.

    \b
    state: active, paused, stopped, or orphaned (its file is gone: its messages are held, not sent)
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from .console import out
    from .control import list_sequences

    state = ctx.obj
    zone = state.config.settings.timezone
    with state.engine().connect() as conn:
        rows = list_sequences(conn, state.config)
    if not rows:
        out.print("no sequences yet: add one under config/sequences/")
        return
    table = Table("sequence", "version", "state", "active", "due in 24 h", f"next due ({zone.key})", box=None)
    for row in rows:
        table.add_row(row.name, row.version or "", row.state, str(row.active), str(row.due_24h),
                      row.next_due.astimezone(zone).strftime("%Y-%m-%d %H:%M") if row.next_due else "")
    out.print(table)


def _act(state, action, name: str, *args) -> None:
    from .console import out

    with state.engine().begin() as conn:
        out.print(action(conn, state.config, name, *args), markup=False)


#: the commands that act on a whole sequence: each is the engine.control function of the same name
ACTIONS = {
    "pause": "Hold NAME's due messages (deferred: sequence paused) until `resume`; none is dropped.",
    "resume": "Make a paused or stopped NAME active again; its held messages are due at once.",
    "stop": "End every active enrollment in NAME as stopped, cancel their pending messages, take no new ones.",
}


def _register(verb: str, doc: str) -> None:
    @sequences.command(verb, help=doc)
    @click.argument("name")
    @click.pass_obj
    def command(state, name: str) -> None:
        from . import control

        _act(state, getattr(control, verb), name)


for _verb, _doc in ACTIONS.items():
    _register(_verb, _doc)


@sequences.command("unenroll")
@click.argument("name")
@click.option("--contact", "key", required=True, help="A phone (any format), email, external id or #ID.")
@click.pass_obj
def unenroll_cmd(state, name: str, key: str) -> None:
    """Take one contact out of NAME: its enrollment ends as unenrolled, its pending messages are cancelled."""
    from .cli_contacts import find_by_key
    from .control import unenroll

    with state.engine().connect() as conn:
        contact = find_by_key(state, conn, key)
    _act(state, unenroll, name, contact)


@sequences.command("migrate")
@click.argument("name")
@click.pass_obj
def migrate_cmd(state, name: str) -> None:
    """Move NAME's active enrollments on an older version (its file changed) to the current one.

    \b
    Touches match by name: what was sent stays sent and is not sent again; the next touch is due
    `after` the last one sent; a touch the new version no longer has: its pending message is cancelled;
    a new touch before where a contact is now is skipped for it. See the README.
    """
    from .console import out
    from .versions import migrate

    with state.engine().begin() as conn:
        report = migrate(conn, state.config, name)
    for line in report.lines():
        out.print(line, markup=False)
