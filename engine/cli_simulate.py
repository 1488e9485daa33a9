"""``followup simulate`` and ``followup send-test``: see a sequence before it is sent."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from .errors import InputError

__all__ = ["simulate_cmd", "send_test_cmd"]


def _start(value: str | None, tz) -> datetime:
    """``--start``: a date (its 00:00 in the settings' timezone) or a date and time (``2027-03-15 10:00``)."""
    from .clock import now

    if not value:
        return now().replace(second=0, microsecond=0)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"--start {value!r} is not a date; write it as 2027-03-15 or \"2027-03-15 10:00\"") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


@click.command("simulate")
@click.argument("sequence")
@click.option("--tag", help="Simulate for every contact with this tag (read from the database, not changed).")
@click.option("--contacts", "csv_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Simulate for the contacts of this CSV (not imported).")
@click.option("--start", help="When they enroll: 2027-03-15 (00:00 there) or \"2027-03-15 10:00\" (default: now).")
@click.option("--days", type=click.IntRange(1, 366), default=21, show_default=True, help="How long to simulate.")
@click.option("--assume", help="What contacts do with each message sent, sampled (seeded): "
                               "clicked=0.15,opened=0.3,replied=0.02,converted=0.04.")
@click.option("--crowd", type=click.IntRange(1, 5000), default=None,
              help="With --assume and the sample contact: simulate this many copies of it (default 1000).")
@click.pass_obj
def simulate_cmd(state, sequence: str, tag: str | None, csv_file: Path | None, start: str | None, days: int,
                 assume: str | None, crowd: int | None) -> None:
    """Run SEQUENCE on a simulated clock: per contact, when each touch would go out and why; totals and cost.

    The engine's own decisions (send window, holidays, frequency cap, offer deadline) in a throwaway
    database with memory providers: nothing is sent and nothing is written to the configured database.
    Without --tag or --contacts it simulates the sample contact.
    """
    from .console import out
    from .samples import database_attrs, sample_contact
    from .assume import parse_assume, paths
    from .simulate import contacts_by_tag, simulate
    from .text import grouped

    if tag and csv_file:
        raise InputError("give --tag or --contacts, not both")
    config = state.config
    seq = config.sequence(sequence)
    rows = None
    if tag:
        rows = contacts_by_tag(state.engine(), tag)
        if not rows:
            raise InputError(f"no contact has the tag {tag!r}")
    sample = None if (tag or csv_file) else sample_contact(config, seq, database_attrs(config.settings.database_url))
    at = _start(start, config.settings.timezone)
    odds = parse_assume(assume)
    copies = (crowd or 1000) if odds and sample is not None else (crowd or 1)
    sim = simulate(config, sequence, at, days, rows=rows, csv_file=csv_file, sample=sample, assume=odds,
                   copies=copies)
    if odds:  # a crowd: the paths it took, not each contact's story
        sent = {p.id: [e.touch for e in p.events if e.event == "sent"] for p in sim.contacts}
        out.print(f"{sequence}: {len(sim.contacts)} contact(s) over {days} days, assuming {assume}", markup=False)
        for path, count in paths(sent):
            out.print(f"  {count:>6}  {len(path)} sent: {' → '.join(path) or '(nothing)'}", markup=False)
        out.print(f"total: {sim.messages} message(s), {sim.skipped} skipped; the most on one path: "
                  f"{max((len(p) for p in sent.values()), default=0)}", markup=False)
        return
    zone = config.settings.timezone
    out.print(f"{sequence}: simulated {days} days from {sim.start.astimezone(zone):%Y-%m-%d %H:%M} to "
              f"{sim.end.astimezone(zone):%Y-%m-%d %H:%M} ({zone.key}); nothing was sent or stored", markup=False)
    for person in sim.contacts:
        out.rule(f"{person.label} · {person.timezone}")
        if person.refused:
            out.print(f"  not enrolled: {person.refused}", markup=False)
        for ev in person.events:
            extra = ev.reason if ev.event != "sent" else (f"{ev.segments} SMS segment(s)" if ev.segments else "")
            out.print(f"  {ev.at:%Y-%m-%d %a %H:%M}  {ev.touch:<14} {ev.channel:<5} {ev.event:<9} {extra}".rstrip(),
                      markup=False)
        for touch, due in person.pending:
            out.print(f"  {due:%Y-%m-%d %a %H:%M}  {touch:<14} still scheduled when the simulation ends", markup=False)
    cost = f", cost {grouped(sim.cost)}" if sim.cost is not None else ""
    out.print(f"total: {sim.messages} message(s) to {len(sim.contacts)} contact(s): {sim.sms} SMS in "
              f"{sim.segments} segment(s){cost}, {sim.emails} email(s); {sim.skipped} skipped", markup=False)


@click.command("send-test")
@click.argument("sequence")
@click.argument("touch")
@click.option("--to", "to", required=True, help="The phone (any format) or email to send the test to.")
@click.option("--as", "key", help="Render for this contact (phone, email or external id); default: the sample.")
@click.pass_obj
def send_test_cmd(state, sequence: str, touch: str, to: str, key: str | None) -> None:
    """Send TOUCH of SEQUENCE to --to through the configured provider, rendered for a contact or the sample.

    The test is written to the delivery log as test_sent (or test_failed) and never counted in stats.
    """
    from .console import out
    from .sendtest import send_test

    result = send_test(state.config, state.engine(), sequence, touch, to, key)
    out.print(result, markup=False)

