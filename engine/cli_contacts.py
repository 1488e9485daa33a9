"""``followup contacts list|show|forget`` and ``followup export contacts|messages --csv FILE``."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .errors import InputError

__all__ = ["contacts_list", "contacts_show", "contacts_forget", "export", "find_by_key"]


def find_by_key(state, conn, key: str) -> dict:
    """The contact KEY names: a phone, an email, an external id, or ``#ID`` (the id `contacts list` shows)."""
    import sqlalchemy as sa

    from .contacts import find_contact
    from .models import Contact

    if key.startswith("#") and key[1:].isdigit() and int(key[1:]) < 2**31:
        row = conn.execute(sa.select(Contact.__table__).where(Contact.__table__.c.id == int(key[1:]))).mappings().first()
        contact = dict(row) if row else None
    else:
        contact = find_contact(conn, key, state.config.settings.default_region)
    if contact is None:
        raise InputError(f"no contact matches {key!r} (a phone in any format, an email, an external id or #ID)")
    return contact


@click.command("list")
@click.option("--tag", help="Only contacts with this tag.")
@click.option("--sequence", help="Only contacts with an active enrollment in this sequence.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N contacts (oldest first).")
@click.pass_obj
def contacts_list(state, tag: str | None, sequence: str | None, limit: int | None) -> None:
    """Contacts, masked as in `followup logs`: id, name, phone, email, tags, the channels they may receive."""
    from rich.table import Table

    from .console import out
    from .people import contact_rows, is_erased, tags_of
    from .text import mask_email, mask_phone

    with state.engine().connect() as conn:
        rows = contact_rows(conn, tag=tag, sequence=sequence, limit=limit)
    if not rows:
        out.print("no contacts match" if tag or sequence else "no contacts yet: `followup contacts import FILE`")
        return
    table = Table("id", "name", "phone", "email", "tags", "may receive", box=None)
    for row in rows:
        name = "(erased)" if is_erased(row) else " ".join(p for p in (row["first_name"], row["last_name"]) if p)
        table.add_row(str(row["id"]), name, mask_phone(row["phone"]), mask_email(row["email"]),
                      ", ".join(tags_of(row)),
                      ", ".join(c for c in ("sms", "email") if not row[f"{c}_suppressed"]) or "nothing")
    out.print(table)
    out.print(f"{len(rows)} contact(s)")


@click.command("show")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="The contact as one JSON object.")
@click.pass_obj
def contacts_show(state, key: str, as_json: bool) -> None:
    """One contact in full: fields, attributes, consents per channel and enrollments."""
    from .console import out
    from .people import contact_detail

    from .leads import lead_summary

    with state.engine().connect() as conn:
        contact = find_by_key(state, conn, key)
        detail = contact_detail(conn, contact)
        lead = lead_summary(conn, state.config, contact)
    detail["score"] = lead["score"]
    detail["handoffs"] = [{**h, "at": h["at"].isoformat()} for h in lead["handoffs"]]
    if as_json:
        print(json.dumps(detail, ensure_ascii=False, indent=2))
        return
    lines = [f"contact {detail['id']}" + (" (erased)" if detail["erased"] else "")]
    for field in ("external_id", "phone", "email", "first_name", "last_name", "timezone", "locale"):
        if detail[field]:
            lines.append(f"  {field}: {detail[field]}")
    if detail["tags"]:
        lines.append(f"  tags: {', '.join(detail['tags'])}")
    for name, value in sorted(detail["attrs"].items()):
        lines.append(f"  attrs.{name}: {value}")
    lines.append(f"  score: {detail['score']:g}")
    for h in detail["handoffs"]:
        outcome = h["outcome"] or "no outcome yet"
        lines.append(f"  handed off {h['at']} from {h['sequence']} to {h['rep']} ({h['fired_by']}): {outcome}")
    lines.append("consents:")
    lines += [f"  {channel}: {state_}" for channel, state_ in detail["consents"].items()]
    lines.append("enrollments:" if detail["enrollments"] else "enrollments: none")
    for e in detail["enrollments"]:
        ended = f", ended {e['ended_at']} ({e['ended_reason']})" if e["ended_at"] else ""
        messages = ", ".join(f"{n} {status}" for status, n in sorted(e["messages"].items()))
        lines.append(f"  {e['sequence']} (version {e['version']}): {e['status']}, enrolled {e['enrolled_at']}{ended}"
                     + (f"; messages: {messages}" if messages else ""))
    out.print("\n".join(lines), markup=False)


@click.command("forget")
@click.argument("key")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def contacts_forget(state, key: str, yes: bool) -> None:
    """Erase one contact's personal data (a right-to-erasure request); its anonymous counts stay.

    Phone, email, external id, names, tags and attributes are removed; active enrollments end and their
    pending messages are cancelled; a log row (event erased) records it. It cannot be undone.
    """
    from .console import out
    from .people import forget, is_erased

    engine = state.engine()
    with engine.begin() as conn:
        contact = find_by_key(state, conn, key)
        if is_erased(contact):
            raise InputError(f"contact {contact['id']} is already erased")
        if not yes:
            click.confirm(f"erase every personal detail of contact {contact['id']}? This cannot be undone",
                          abort=True, err=True)
        done = forget(conn, contact)
    out.print(f"contact {contact['id']}: personal data erased; {done['enrollments']} enrollment(s) ended, "
              f"{done['cancelled']} pending message(s) cancelled; counts and stats keep it anonymously")


@click.command("export")
@click.argument("what", type=click.Choice(["contacts", "messages"]))
@click.option("--csv", "csv_file", required=True, type=click.Path(path_type=Path), help="The CSV file to write.")
@click.pass_obj
def export(state, what: str, csv_file: Path) -> None:
    """Write every contact or message to a CSV (UTF-8; formula-like cells quoted; written whole or not at all)."""
    from .console import out
    from .export import export_csv

    with state.engine().connect() as conn:
        count = export_csv(conn, what, csv_file)
    out.print(f"{csv_file}: {count} {what} written", markup=False)
