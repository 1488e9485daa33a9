"""The ``followup`` command line."""
from __future__ import annotations

import json
import logging
import shutil
import sys
import time
import traceback

from pathlib import Path
from typing import IO

import click
import sqlalchemy as sa

# Only what every command needs is imported here; the rest (rich, contact import, the HTTP service) is
# imported inside the commands that use it: the worker's memory is mostly the modules it has loaded.
from .clock import now
from .config import Config, load_config
from .console import err, out
from .db import check_schema, make_engine, upgrade
from .dberrors import database_error
from .durations import parse_duration
from .errors import ConfigError, FollowupError, InputError
from .text import grouped


class State:
    """What every command shares: the config folder, loaded at first use, and the global flags."""

    def __init__(self, config_path: str | None = None, verbose: bool = False):
        self.config_path = config_path
        self.verbose = verbose
        self._config: Config | None = None

    @property
    def database_url(self) -> str | None:
        """The database URL of the loaded config; None before a command has loaded it."""
        return self._config.settings.database_url if self._config is not None else None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def engine(self, check: bool = True) -> sa.Engine:
        engine = make_engine(self.config.settings.database_url)
        if check:
            check_schema(engine)
        return engine


pass_state = click.make_pass_decorator(State)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="FOLLOWUP_CONFIG", type=click.Path(file_okay=False),
              help="Config folder (default ./config, or $FOLLOWUP_CONFIG).")
@click.option("-v", "--verbose", is_flag=True, help="Log more, and show the traceback of an error.")
@click.version_option(package_name="followup")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """followup: SMS and email follow-up sequences with honest urgency.

    \b
    Typical first run:
      followup init .                 write a starter config/ and templates/
      followup validate               check settings, sequences and templates
      followup db upgrade             create the database
      followup contacts import leads.csv
      followup enroll winter-sale --tag winter
      followup worker                 send what is due, inside the send window
    """
    configure_logging(verbose)
    state = ctx.ensure_object(State)
    state.config_path, state.verbose = config_path, verbose


def configure_logging(verbose: bool = False, stream: IO[str] | None = None) -> None:
    """What every command logs, to stderr: the worker's delivery log as JSON lines, its notes as text."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        stream=stream or sys.stderr)
    for noisy in ("apscheduler", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# -- setup ---------------------------------------------------------------------------------
@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Write into a folder that already has a config/ or templates/, "
                                            "overwriting the starter files.")
def init(directory: str, force: bool) -> None:
    """Write a starter config/ and templates/ into DIRECTORY (default: here)."""
    starter = Path(__file__).parent / "starter"
    target = Path(directory)
    files = [src for src in sorted(starter.rglob("*")) if src.is_file() and "__pycache__" not in src.parts]
    existing = [name for name in ("config", "templates") if (target / name).is_dir() and any((target / name).iterdir())]
    if existing and not force:
        would = "\n".join(f"  {src.relative_to(starter)}" for src in files)
        raise InputError(f"{target.resolve()} already has {' and '.join(f'{n}/' for n in existing)}; init writes the "
                         f"starter files below (demo sequences included) and would put back any you deleted.\n{would}\n"
                         "Pass --force to write them anyway, or choose an empty folder.")
    for src in files:
        dest = target / src.relative_to(starter)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    out.print(f"wrote {len(files)} files into {target.resolve()}")
    out.print("next: followup --config " + str(target / "config") + " validate")


@cli.command("validate")
@pass_state
def validate_cmd(state: State) -> None:
    """Check settings, sequences, templates, providers and honest urgency."""
    from .validate import validate

    config, found = validate(state.config_path)
    for problem in found:
        err.print(str(problem), markup=False)
    problems = [p for p in found if not p.warning]
    if problems:
        err.print(f"[red]{len(problems)} problem{'s' if len(problems) != 1 else ''} found[/red]")
        sys.exit(2)
    _print_sms_costs(config)
    out.print(f"[green]ok[/green]: settings, {len(config.sequences)} sequence(s), "
              f"{sum(len(s.touches) for s in config.sequences.values())} templates and "
              f"{sum(len(v) for v in config.settings.providers.values())} provider(s) are valid")


def _print_sms_costs(config: Config) -> None:
    """Each SMS touch's encoding, segments and, where the provider has a price_per_segment, its cost."""
    from .preview import preview
    from .samples import database_attrs, sample_contact

    attrs = database_attrs(config.settings.database_url)
    for seq in config.sequences.values():
        for row in preview(config, seq, sample_contact(config, seq, attrs)):
            if row.channel == "sms" and row.sms is not None:
                cost = f", cost {grouped(row.cost)} per message" if row.cost is not None else ""
                out.print(f"{seq.name}/{row.touch}: {row.sms.describe()}{cost}", markup=False)


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_state
def db_upgrade(state: State) -> None:
    """Create the schema, or migrate it to this version."""
    url = state.config.settings.database_url
    before, after = upgrade(url)
    shown = make_engine(url).url.render_as_string(hide_password=True)
    out.print(f"database {shown}: " + (f"already at {after}" if before == after else f"{before or 'empty'} → {after}"))


# -- contacts and enrollment --------------------------------------------------------------
@cli.group()
def contacts() -> None:
    """Contacts: import from CSV, list, show one, forget one (erasure)."""


def _import(state: State, path: Path):
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from .contacts import import_csv, import_summary

    engine = state.engine()
    size = path.stat().st_size if path.exists() else 0
    with Progress(TextColumn("importing {task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=err.console, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task(path.name, total=size)
        report = import_csv(engine, path, state.config.settings.default_region,
                            progress=lambda n: progress.advance(task, n))
    for line, reason in report.errors:
        err.print(f"{path}:{line}: {reason}", markup=False)
    for line, warning in report.warnings:
        err.print(f"{path}:{line}: warning: {warning}", markup=False)
    out.print(f"{path}: {import_summary(report)}", markup=False)
    return report


@contacts.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_state
def contacts_import(state: State, file: Path) -> None:
    """Import contacts from a CSV (phone, email, first_name, last_name, timezone, locale, tags, external_id).

    The header may use the names in the README's table (Mobile, موبایل, First Name, ایمیل...).
    Rows are upserted by external_id, else phone, else email; other columns become attrs; a later row
    for the same contact is a duplicate (it fills empty fields, adds tags; the earlier row's values win).
    Bad rows are listed with their line numbers; exit status 1 if any row was bad.
    """
    report = _import(state, file)
    if report.errors:
        sys.exit(1)


@cli.command()
@click.argument("sequence")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False, path_type=Path), help="Import this CSV, then enroll its contacts.")
@click.option("--contact", "keys", multiple=True, help="A phone (any format), email or external id. Repeatable.")
@click.option("--tag", help="Every contact with this tag.")
@pass_state
def enroll(state: State, sequence: str, csv_file: Path | None, keys: tuple[str, ...], tag: str | None) -> None:
    """Enroll contacts in SEQUENCE."""
    from .contacts import find_contact
    from .enrollment import enroll as do_enroll
    from .models import Contact
    from .people import has_tag

    if sum(bool(x) for x in (csv_file, keys, tag)) != 1:
        raise InputError("give exactly one of --csv FILE, --contact KEY (repeatable) or --tag TAG")
    config = state.config
    config.sequence(sequence)
    engine = state.engine()
    ids: list[int] = []
    if csv_file:
        ids = _import(state, csv_file).contact_ids
    elif keys:
        with engine.connect() as conn:
            missing = []
            for key in keys:
                found = find_contact(conn, key, config.settings.default_region)
                if found:
                    ids.append(found["id"])
                else:
                    missing.append(key)
        if missing:
            raise InputError(f"no contact matches {', '.join(missing)}; import them first with `followup contacts import`")
    else:
        table = Contact.__table__
        with engine.connect() as conn:
            ids = list(conn.execute(sa.select(table.c.id).where(has_tag(tag))).scalars())
        if not ids:
            out.print(f"no contact has the tag {tag!r}")
    with engine.begin() as conn:
        report = do_enroll(conn, config, sequence, ids)
    for cid in report.already_active:
        out.print(f"contact {cid}: already active in {sequence}, nothing to do")
    for cid, why in report.finished:
        out.print(f"contact {cid}: not enrolled again: {why}", markup=False)
    for cid, why in report.refused:
        out.print(f"contact {cid}: not enrolled: {why}", markup=False)
    finished = f", {len(report.finished)} already enrolled/finished" if report.finished else ""
    out.print(f"{sequence}: {len(report.enrolled)} enrolled, {len(report.already_active)} already active{finished}, "
              f"{len(report.refused)} not enrolled")


@cli.command()
@click.argument("key")
@click.argument("kind", metavar="EVENT")
@click.option("--key", "event_key", metavar="ID", help="What the event is about (a cart, an order): one run per key; "
                                                      "as an exit event it ends only that key's run.")
@click.option("--data", "data_text", metavar="JSON", help="The event's data as a JSON object; templates read it as "
                                                          "event.data.")
@click.option("--sequence", help="Only this sequence (default: all the contact's sequences).")
@click.option("--channel", type=click.Choice(["sms", "email", "all"]), default=None, help="For (un/re)subscribe.")
@click.option("--value", type=float, help="Order value, for revenue in stats.")
@click.option("--idempotency-key", help="The order or message id: the same key twice is recorded once.")
@pass_state
def event(state: State, key: str, kind: str, event_key: str | None, data_text: str | None, sequence: str | None,
          channel: str | None, value: float | None, idempotency_key: str | None) -> None:
    """Record that contact KEY did EVENT.

    EVENT is converted, replied, unsubscribed or resubscribed, or any event name of yours (cart_abandoned)
    that sequences trigger on or exit on."""
    from .contacts import find_contact
    from .eventnames import parse_data
    from .events import record_event

    data = None
    if data_text is not None:
        try:
            data = parse_data(data_text)
        except ValueError as error:
            raise InputError(f"--data: {error}") from None
    engine = state.engine()
    with engine.begin() as conn:
        contact = find_contact(conn, key, state.config.settings.default_region)
        if contact is None:
            raise InputError(f"no contact matches {key!r} (a phone in any format, an email or an external id)")
        result = record_event(conn, state.config, contact, kind, sequence=sequence, channel=channel, value=value,
                              idempotency_key=idempotency_key, key=event_key, data=data)
    if result.warning:
        err.print(f"warning: {result.warning}", markup=False)
    if not result.recorded:
        out.print(f"contact {contact['id']}: {kind} not recorded: {result.note}", markup=False)
        return
    ended = f"; ended {', '.join(result.ended)}" if result.ended else ""
    out.print(f"contact {contact['id']}: {kind} recorded{ended}; {result.cancelled} pending touch(es) cancelled"
              + (f" ({result.note})" if result.note else ""), markup=False)
    for started in result.started:
        out.print(f"  {started.sequence}: {started.outcome.replace('_', ' ')}"
                  + (f": {started.reason}" if started.reason else ""), markup=False)


# -- the worker --------------------------------------------------------------------------
@cli.command()
@click.option("--once", is_flag=True, help="Run one pass and exit.")
@click.option("--interval", type=float, default=10.0, show_default=True, help="Seconds between ticks.")
@click.option("--wait", "wait_for_lock", is_flag=True, help="On SQLite, wait for a running worker instead of exiting.")
@pass_state
def worker(state: State, once: bool, interval: float, wait_for_lock: bool) -> None:
    """Run the background worker: send due touches; Ctrl-C or SIGTERM stops it cleanly."""
    from .worker import run_worker

    sys.exit(run_worker(state.config, interval=interval, once=once, wait_for_lock=wait_for_lock))


# -- looking -------------------------------------------------------------------------------
@cli.command("preview")
@click.argument("sequence")
@click.option("--contact", "key", help="For this contact: its stored messages if enrolled, else the plan for it.")
@pass_state
def preview_cmd(state: State, sequence: str, key: str | None) -> None:
    """Show every touch of SEQUENCE as it would go out: when, channel, text, SMS segments."""
    from rich.text import Text

    from .contacts import find_contact
    from .preview import preview, sms_text
    from .preview_enrolled import contact_preview
    from .samples import database_attrs, sample_contact
    from .templates import jalali

    config = state.config
    seq = config.sequence(sequence)
    contact = None
    if key:
        with state.engine().connect() as conn:
            contact = find_contact(conn, key, config.settings.default_region)
            if contact is None:
                raise InputError(f"no contact matches {key!r}")
            head, rows = contact_preview(config, conn, seq, contact)
        out.print(head, markup=False)
    else:
        rows = preview(config, seq, sample_contact(config, seq, database_attrs(config.settings.database_url)))
    for row in rows:
        when = row.when.strftime("%Y-%m-%d %H:%M %Z")
        if ((contact or {}).get("locale") or config.settings.locale) == "fa":
            when += f"  ({jalali(row.when, with_time=True)})"
        out.rule(" · ".join(filter(None, (row.touch, row.channel, row.status, when))))
        if row.note:
            out.print(Text(row.note, style="yellow"))
        if row.error:
            out.print(Text(row.error, style="red"))
            continue
        if row.rendered is None:  # a message already done, or one not rendered
            continue
        if row.channel == "email":
            out.print(f"Subject: {row.rendered.subject}", markup=False)
            out.print(row.rendered.text, markup=False)
            if row.rendered.html:
                out.print(f"[dim](+ HTML part, {len(row.rendered.html)} characters)[/dim]")
        else:
            out.print(sms_text(config, row.rendered, (contact or {}).get("locale")), markup=False)
            cost = f", cost {grouped(row.cost)}" if row.cost is not None else ""
            out.print(f"[dim]{row.sms.describe()}{cost}[/dim]")


@cli.command()
@click.option("--sequence")
@click.option("--contact", "key", help="A phone, email or external id.")
@click.option("--event", "event_name", help="sent, delivered, failed, skipped, deferred, cancelled, unknown, ...")
@click.option("--since", help="Only the last DURATION, e.g. 2h or 1d.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new rows.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.option("--limit", type=click.IntRange(min=1), help="The newest N rows (default: 200 for the table, all with --json).")
@click.option("--utc", is_flag=True, help="Times in UTC instead of the settings' timezone (--json is always UTC).")
@pass_state
def logs(state: State, sequence, key, event_name, since, follow, as_json, limit, utc) -> None:
    """The delivery log: every state change of every message, with its reason."""
    from zoneinfo import ZoneInfo

    from rich.table import Table

    from .contacts import find_contact
    from .journal import log_line
    from .reports import contact_labels, log_filter_values, log_query

    engine = state.engine()
    contact_id = None
    if limit is None and not as_json:
        limit = 200
    with engine.connect() as conn:
        if sequence or event_name:
            known = log_filter_values(conn, list(state.config.sequences))
            for option, value in (("sequence", sequence), ("event", event_name)):
                if value and value not in known[option]:
                    raise InputError(f"--{option} {value!r} matches nothing; known: {', '.join(sorted(known[option]))}")
        if key:
            contact = find_contact(conn, key, state.config.settings.default_region)
            if contact is None:
                raise InputError(f"no contact matches {key!r}")
            contact_id = contact["id"]
    try:
        since_at = now() - parse_duration(since) if since else None
    except ValueError as error:
        raise InputError(f"--since: {error}") from None
    last_id = 0

    zone = ZoneInfo("UTC") if utc else state.config.settings.timezone

    def emit(rows):
        nonlocal last_id
        rows = list(rows)
        table = None if as_json else Table(f"at ({zone.key})", "msg", "contact", "sequence", "touch", "ch", "provider",
                                           "event", "reason", box=None)
        if table is not None:
            with engine.connect() as conn:
                labels = contact_labels(conn, {r["contact_id"] for r in rows if r["contact_id"]})
        for row in rows:
            last_id = max(last_id, row["id"])
            if as_json:
                print(log_line(row), flush=True)
            else:
                table.add_row(row["at"].astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"), str(row["message_id"] or ""),
                              labels.get(row["contact_id"], {}).get("text", ""), row["sequence"] or "", row["touch"] or "",
                              row["channel"] or "", row["provider"] or "", row["event"], row["reason"] or "")
        if table is not None and table.row_count:
            out.print(table)

    with engine.connect() as conn:
        rows = list(log_query(conn, sequence=sequence, contact_id=contact_id, event=event_name, since=since_at,
                              limit=limit, newest_first=True))
    emit(reversed(rows))
    while follow:
        time.sleep(1.0)
        with engine.connect() as conn:
            emit(list(log_query(conn, sequence=sequence, contact_id=contact_id, event=event_name, after_id=last_id,
                                limit=None)))


@cli.command()
@click.argument("sequence", required=False)
@click.option("--json", "as_json", is_flag=True)
@pass_state
def stats(state: State, sequence: str | None, as_json: bool) -> None:
    """The funnel per sequence: enrolled, per touch sent/delivered/failed/skipped, converted."""
    from rich.table import Table

    from .abtests import variant_report
    from .reports import TOUCH_COUNTS, funnel, unattributed
    from .store.pauses import active_pauses, pause_text

    config = state.config
    names = [config.sequence(sequence).name] if sequence else sorted(config.sequences)
    with state.engine().connect() as conn:
        data = [funnel(conn, n, [t.name for t in config.sequences[n].touches]) for n in names]
        for item in data:  # per-variant figures of the touches with A/B variants
            item["variants"] = variant_report(conn, config.sequences[item["sequence"]])
        paused = active_pauses(conn)
        loose = unattributed(conn)
    if as_json:
        print(json.dumps({"sequences": data, "not_attributed": loose,
                          "paused_providers": {k: v.reason for k, v in paused.items()}},
                         ensure_ascii=False, indent=2))
        return
    for item in data:
        table = Table("touch", *TOUCH_COUNTS, "clicks", "click rate", "conversions", "revenue", "revenue/sent",
                      title=f"{item['sequence']}: {item['enrolled']} enrolled, {item['converted']} converted "
                            f"({item['conversion_rate']:.1%}), revenue {grouped(item['revenue'])}")
        for touch, c in item["touches"].items():
            table.add_row(touch, *(str(c.get(k, 0)) for k in (*TOUCH_COUNTS, "clicks")),
                          f"{c['click_rate']:.1%}", str(c["attributed_conversions"]), grouped(c["attributed_revenue"]),
                          grouped(c["revenue_per_sent"]))
        out.print(table)
        for touch, test in item["variants"].items():
            out.print(f"{item['sequence']}/{touch} A/B ({test['metric']}): {test['state']}"
                      + (f", winner {test['winner']}" if test["winner"] else "") + "; " + ", ".join(
                          f"{name} sent {v['sent']} clicks {v['clicks']} conversions {v['conversions']} "
                          f"revenue {grouped(v['revenue'])} P(best) {v['p_best']:.2f}"
                          for name, v in test["variants"].items()), markup=False)
        out.print(f"{item['sequence']}: {item['clicks']} messages clicked ({item['click_rate']:.1%} of sent), "
                  f"{item['attributed_conversions']} conversions attributed, revenue "
                  f"{grouped(item['attributed_revenue'])} ({grouped(item['revenue_per_sent'])} per message sent)",
                  markup=False)
    if loose["conversions"]:
        out.print(f"converted, not attributed: {loose['conversions']}, revenue {grouped(loose['revenue'])}",
                  markup=False)
    for name, pause in paused.items():
        out.print(f"[yellow]provider {name} is {pause_text(pause)}: {pause.reason}[/yellow]", markup=False)


@cli.group()
def offer() -> None:
    """Offers: redeem stock by hand."""


@offer.command("redeem")
@click.argument("code")
@click.option("--sequence", help="When several sequences share the code.")
@pass_state
def offer_redeem(state: State, code: str, sequence: str | None) -> None:
    """Take one item of CODE's stock (a sale made outside followup)."""
    from .models import Offer

    table = Offer.__table__
    with state.engine().begin() as conn:
        query = sa.select(table).where(table.c.code == code)
        if sequence:
            query = query.where(table.c.sequence == sequence)
        rows = conn.execute(query).mappings().all()
        if not rows:
            raise InputError(f"no offer with code {code!r}; codes come from the offer: block of a sequence")
        if len(rows) > 1:
            raise InputError(f"{code!r} is used by {', '.join(r['sequence'] for r in rows)}; add --sequence")
        conn.execute(sa.update(table).where(table.c.id == rows[0]["id"]).values(redeemed=table.c.redeemed + 1))
        left = None if rows[0]["stock"] is None else rows[0]["stock"] - rows[0]["redeemed"] - 1
    out.print(f"{code}: redeemed one" + (f"; {left} left" if left is not None else ""))


from .cli_providers import providers  # noqa: E402  (registers the `providers` group)

cli.add_command(providers)
from .cli_service import apikey, serve  # noqa: E402  (registers `serve` and `apikey`)
cli.add_command(serve); cli.add_command(apikey)  # noqa: E702
from .cli_alerts import alerts  # noqa: E402  (registers the `alerts` group)
cli.add_command(alerts)
from .cli_sequences import sequences  # noqa: E402  (registers the `sequences` group)
cli.add_command(sequences)
from .cli_simulate import send_test_cmd, simulate_cmd  # noqa: E402  (registers `simulate` and `send-test`)
cli.add_command(simulate_cmd); cli.add_command(send_test_cmd)  # noqa: E702
from .cli_contacts import contacts_forget, contacts_list, contacts_show, export  # noqa: E402
for _command in (contacts_list, contacts_show, contacts_forget):
    contacts.add_command(_command)
cli.add_command(export)
from .cli_leads import lead  # noqa: E402  (registers the `lead` group)
cli.add_command(lead)
from .cli_webhooks import webhooks  # noqa: E402  (registers the `webhooks` group)
cli.add_command(webhooks)
from .cli_kpi import kpi  # noqa: E402  (registers `kpi`)
cli.add_command(kpi)
from .cli_ab import ab_cmd  # noqa: E402  (registers `ab`)
cli.add_command(ab_cmd)


def main() -> None:
    """Entry point: run the CLI; turn engine errors into clear messages and exit codes (``-v``: and a traceback)."""
    state = State()
    try:
        cli.main(standalone_mode=False, obj=state)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(2 if isinstance(error, click.UsageError) else error.exit_code)
    except ConfigError as error:
        for problem in error.problems:
            err.print(str(problem), markup=False)
        sys.exit(error.exit_code)
    except FollowupError as error:
        _fail(error, state.verbose)
    except sa.exc.SQLAlchemyError as error:
        failure = database_error(error, state.database_url)
        if failure is None:
            raise
        _fail(failure, state.verbose, cause=error)
    except KeyboardInterrupt:
        sys.exit(130)


def _fail(error: FollowupError, verbose: bool, cause: BaseException | None = None) -> None:
    """Print ``error`` on one line (after its traceback with ``-v``) and exit with its status."""
    if verbose:
        traceback.print_exception(cause or error)
    err.print(f"error: {error}", markup=False)
    sys.exit(error.exit_code)
