"""Contacts: the CSV import (streamed, batched, idempotent) and finding a contact by any key."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from .addresses import landline, normalize_email, normalize_phone, read_address
from .clock import now
from .columns import canonical_header
from .csvcheck import SAVE_AS, check_readable
from .errors import InputError
from .fields import length_problems
from .models import Contact
from .store.events import contacts_by
from .store.sources import changed_sources, follow
from .text import fa_letters

__all__ = ["ContactRow", "ImportReport", "parse_row", "import_csv", "import_summary", "upsert_contacts", "find_contact",
           "find_contacts", "KNOWN_COLUMNS"]

KNOWN_COLUMNS = ("phone", "email", "first_name", "last_name", "timezone", "locale", "tags", "external_id")
BATCH = 1000
_KEYS = ("external_id", "phone", "email")  # the order a row is matched to a stored contact
_SCALARS = ("phone", "email", "first_name", "last_name", "timezone", "locale", "external_id")
_BLANK = {"first_name": "", "last_name": "", "tags": "", "attrs": {}, "phone": None, "email": None,
          "external_id": None, "timezone": None, "locale": None}
contacts = Contact.__table__


LANDLINE_WARNING = ("phone: {phone} is a landline (or another number no SMS reaches); imported, but its SMS touches "
                    "will be skipped; add the contact's mobile number to reach it by SMS")


@dataclass
class ContactRow:
    """One contact as read from a CSV line or an API body, already checked."""

    phone: str | None = None
    email: str | None = None
    first_name: str = ""
    last_name: str = ""
    timezone: str | None = None
    locale: str | None = None
    tags: list[str] = field(default_factory=list)
    external_id: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    line: int | None = None
    #: what was left out of the row, said as ``"FIELD: why; …"`` (a bad email beside a good phone)
    warnings: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    """What an import (or one API call) did. Every row read counts once: the first row naming a contact as
    created, updated or unchanged, a later row naming the same contact as a duplicate, or as an error."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    #: lines of rows that name a contact an earlier row of the same import named (merged into it)
    duplicates: list[int | None] = field(default_factory=list)
    errors: list[tuple[int | None, str]] = field(default_factory=list)
    #: rows imported, with something the user should know (a landline: its SMS touches will be skipped)
    warnings: list[tuple[int | None, str]] = field(default_factory=list)
    #: each contact the import named → ``"created"``, ``"updated"`` or ``"unchanged"``, in the order named
    outcome: dict[int, str] = field(default_factory=dict)

    @property
    def good(self) -> int:
        """Rows imported (duplicates included)."""
        return self.created + self.updated + self.unchanged + len(self.duplicates)

    @property
    def contact_ids(self) -> list[int]:
        """Every contact the import named, once each."""
        return list(self.outcome)


@lru_cache(maxsize=512)
def _valid_tz(name: str) -> bool:
    try:
        ZoneInfo(name)
        return True
    except (ZoneInfoNotFoundError, ValueError):
        return False


def _addresses(get: Callable[[str], str], region: str) -> tuple[dict[str, str], dict[str, str]]:
    """The row's phone and email, normalised, and the reason for each one that can't be read."""
    found, problems = {}, {}
    for name, normalize in (("phone", lambda text: normalize_phone(text, region)), ("email", normalize_email)):
        if get(name):
            try:
                found[name] = normalize(get(name))
            except ValueError as err:
                problems[name] = f"{name}: {err}"
    return found, problems


def parse_row(raw: dict[str, Any], region: str, line: int | None = None, keep_partial: bool = False) -> ContactRow:
    """Check one row; raise ValueError with every reason it can't be imported.

    A value over its length limit (:mod:`engine.fields`, the API's limits too) is reason enough. Names are
    stored with Persian letters (:func:`engine.text.fa_letters`). With ``keep_partial`` (the CSV import) a
    bad phone or email beside a good one is left out with a warning on the row instead of refusing it.
    """
    values = {k: str(raw.get(k) or "").strip() for k in KNOWN_COLUMNS}
    get = values.__getitem__
    tags = sorted({t.strip() for t in get("tags").split(";") if t.strip()})
    attrs = {k: str(v) for k, v in raw.items() if k and k not in KNOWN_COLUMNS and v not in (None, "")}
    reasons = length_problems(values, tags, attrs)
    if reasons:  # a value past its limit is not read further
        raise ValueError("; ".join(reasons))
    addresses, address_problems = _addresses(get, region)
    if not get("phone") and not get("email"):
        reasons.append("needs a phone or an email")
    external = read_address(get("external_id"), region) if get("external_id") else None
    if external is not None:
        # a contact KEY that reads as a phone or email is looked up as one: such an id would find another contact
        reasons.append(f"external_id: {get('external_id')!r} reads as {'an email' if external[0] == 'email' else 'a phone'}"
                       f"; put it in the {external[0]} column, and use an id that is not a phone or an email "
                       f"(e.g. with a prefix: crm-{get('external_id')})")
    tz = get("timezone") or None
    if tz and not _valid_tz(tz):
        reasons.append(f"timezone: unknown timezone {tz!r}; use an IANA name like Asia/Tehran")
    locale = get("locale").lower() or None
    if locale and locale not in ("fa", "en"):
        reasons.append(f"locale: {locale!r} is not supported; use fa or en")
    partial = keep_partial and addresses and not reasons
    if address_problems and not partial:
        raise ValueError("; ".join([*address_problems.values(), *reasons]))
    if reasons:
        raise ValueError("; ".join(reasons))
    warnings = [f"{why}; imported without this {name}, fix it and import again to add it"
                for name, why in address_problems.items()]
    return ContactRow(addresses.get("phone"), addresses.get("email"), fa_letters(get("first_name")),
                      fa_letters(get("last_name")), tz, locale, tags, get("external_id") or None, attrs, line, warnings)


def _tags_text(tags: Iterable[str]) -> str:
    tags = sorted(set(tags))
    return f";{';'.join(tags)};" if tags else ""


def _merge(current: dict[str, Any], row: ContactRow, overwrite: bool = True) -> tuple[dict[str, Any], list[str]]:
    """The columns that change when ``row`` is applied to ``current``, and the row's values left out.

    Empty fields never erase and tags are added. A contact's first row overwrites what is stored; a
    duplicate row (``overwrite=False``) only fills what is empty, and the names of its values that differ
    from set ones are returned: the file's first row for a contact wins, so importing twice changes nothing.
    """
    changes: dict[str, Any] = {}
    kept: list[str] = []
    for key in _SCALARS:
        value = getattr(row, key)
        if not value or current.get(key) == value:
            continue
        if current.get(key) and not overwrite:
            kept.append(key)
        else:
            changes[key] = value
    old_tags = [t for t in (current.get("tags") or "").split(";") if t]
    tags = _tags_text(old_tags + row.tags)
    if tags != (current.get("tags") or ""):
        changes["tags"] = tags
    old_attrs = current.get("attrs") or {}
    kept += [k for k, v in row.attrs.items() if not overwrite and old_attrs.get(k, v) != v]
    attrs = {**old_attrs, **{k: v for k, v in row.attrs.items() if overwrite or k not in old_attrs}}
    if attrs != old_attrs:
        changes["attrs"] = attrs
    return changes, kept


def _clash(key: tuple[str, str], other: Any, lines: dict[Any, int | None]) -> str:
    name, value = key
    if isinstance(other, int):
        return f"{name} {value} already belongs to another contact (id {other}); fix the row or merge the contacts"
    return (f"{name} {value} is another contact's, on line {lines[other]}; fix the row, or make the two rows "
            f"one contact")


def upsert_contacts(conn: sa.Connection, rows: list[ContactRow], report: ImportReport) -> None:
    """Insert or update one batch, matching by external_id, else phone, else email, counting into ``report``.

    A row whose contact an earlier row named (in this batch or an earlier one of ``report``) is a
    duplicate, merged without overwriting (:func:`_merge`); a row whose keys name two contacts is an error.
    """
    keys = {k: {getattr(r, k) for r in rows if getattr(r, k)} for k in _KEYS}
    conds = [contacts.c[k].in_(v) for k, v in keys.items() if v]
    #: contact → its record as it will be written: stored ones by id, new ones by ("new", n)
    records: dict[Any, dict[str, Any]] = {}
    if conds:
        for rec in conn.execute(sa.select(contacts).where(sa.or_(*conds))).mappings():
            records[rec["id"]] = dict(rec)
    stored_attrs = {cid: rec["attrs"] for cid, rec in records.items()}
    owner = {(k, rec[k]): cid for cid, rec in records.items() for k in _KEYS if rec[k]}
    stamp = now()
    first_line: dict[Any, int | None] = {}  # contacts first named in this batch → the line naming them
    updates: dict[int, dict[str, Any]] = {}
    for row in rows:
        match_keys = [(k, getattr(row, k)) for k in _KEYS if getattr(row, k)]
        named = [mk for mk in match_keys if mk in owner]
        target = owner[named[0]] if named else ("new", len(records))
        other = next((mk for mk in named if owner[mk] != target), None)
        if other is not None:  # a value that belongs to another contact would break its uniqueness: say so
            report.errors.append((row.line, _clash(other, owner[other], first_line)))
            continue
        if target not in records:
            records[target] = {**_BLANK, "created_at": stamp, "updated_at": stamp}
        duplicate = target in first_line or target in report.outcome
        changes, kept = _merge(records[target], row, overwrite=not duplicate)
        records[target].update(changes)
        owner.update({(k, changes[k]): target for k in _KEYS if k in changes})
        if changes and isinstance(target, int):
            updates.setdefault(target, {}).update(changes)
        if duplicate:
            report.duplicates.append(row.line)
            if kept:
                first = first_line.get(target)
                report.warnings.append((row.line, f"a duplicate of an earlier row{f' (line {first})' if first else ''} "
                                                  f"for the same contact: its {', '.join(kept)} differ"
                                                  f"{'s' if len(kept) == 1 else ''}, and the earlier row's value "
                                                  f"is kept"))
        else:
            first_line[target] = row.line
        report.warnings.extend((row.line, w) for w in row.warnings)
        if landline(row.phone):
            report.warnings.append((row.line, LANDLINE_WARNING.format(phone=row.phone)))
    fresh = [t for t in records if not isinstance(t, int)]
    ids: dict[Any, int] = {}
    if fresh:
        result = conn.execute(sa.insert(contacts).returning(contacts.c.id, sort_by_parameter_order=True),
                              [records[t] for t in fresh])
        ids = dict(zip(fresh, result.scalars().all()))
    for cid, changes in updates.items():
        conn.execute(sa.update(contacts).where(contacts.c.id == cid).values(**changes, updated_at=stamp))
    follow(conn, changed_sources(stored_attrs, {cid: c["attrs"] for cid, c in updates.items() if "attrs" in c}))
    for target in first_line:
        if isinstance(target, int):
            cid, kind = target, "updated" if target in updates else "unchanged"
        else:
            cid, kind = ids[target], "created"
        report.outcome[cid] = kind
        setattr(report, kind, getattr(report, kind) + 1)
    for cid in updates.keys() - first_line.keys():  # a duplicate changed a contact an earlier batch named
        if report.outcome[cid] == "unchanged":
            report.outcome[cid] = "updated"
            report.unchanged -= 1
            report.updated += 1


class _CountingReader(io.TextIOBase):
    """Wraps a text file and reports how many bytes were read, for a progress bar."""

    def __init__(self, fh, callback: Callable[[int], None] | None):
        self.fh, self.callback = fh, callback

    def __iter__(self) -> Iterator[str]:
        for line in self.fh:
            if self.callback:
                self.callback(len(line.encode("utf-8")))
            yield line


def _rows(path: Path, progress: Callable[[int], None] | None) -> Iterator[tuple[int, dict]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(_CountingReader(fh, progress))
        if not reader.fieldnames:
            raise InputError(f"{path}: the file is empty; the first line must be a header like phone,email,first_name")
        header = canonical_header(reader.fieldnames, str(path))
        if not {"phone", "email"} & set(header):
            raise InputError(f"{path}:1: the header has neither a phone nor an email column "
                             f"(found: {', '.join(h.strip() for h in reader.fieldnames)}); add one of them "
                             f"(other names read as one, like Mobile, موبایل or ایمیل, are in the README)")
        reader.fieldnames = header
        for raw in reader:
            yield reader.line_num, raw


def import_csv(engine: sa.Engine, path: Path, region: str, progress: Callable[[int], None] | None = None) -> ImportReport:
    """Import a contacts CSV. Bad rows are reported with their line, good rows imported, in batches.

    The header may name columns as exports do (:mod:`engine.columns`); a file that is not UTF-8 CSV text is
    refused whole with what it is and how to save it (:mod:`engine.csvcheck`)."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    check_readable(path)
    report = ImportReport()
    batch: list[ContactRow] = []

    def flush() -> None:
        if batch:
            with engine.begin() as conn:
                upsert_contacts(conn, batch, report)
            batch.clear()

    try:
        for line, raw in _rows(path, progress):
            report.rows += 1
            if None in raw:
                report.errors.append((line, "has more fields than the header; quote values that contain commas"))
                continue
            try:
                batch.append(parse_row(raw, region, line, keep_partial=True))
            except ValueError as err:
                report.errors.append((line, str(err)))
            if len(batch) >= BATCH:
                flush()
        flush()
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); {SAVE_AS}") from None
    except csv.Error as err:
        raise InputError(f"{path}: not a readable CSV file: {err}") from None
    return report


def _lines(lines: list[int | None], shown: int = 10) -> str:
    known = [str(n) for n in lines if n is not None]
    if not known:
        return ""
    more = f" and {len(known) - shown} more" if len(known) > shown else ""
    return f" (line{'s' if len(known) > 1 else ''} {', '.join(known[:shown])}{more})"


def import_summary(report: ImportReport) -> str:
    """One line whose counts add up to the rows read: ``21 rows: 14 created, 1 updated, 1 unchanged,
    2 duplicates of an earlier row (lines 7, 12), 3 bad``, then how many rows have a warning."""
    dups = len(report.duplicates)
    parts = [f"{report.created} created", f"{report.updated} updated", f"{report.unchanged} unchanged"]
    if dups:
        parts.append(f"{dups} duplicate{'s' if dups != 1 else ''} of an earlier row{_lines(report.duplicates)}")
    parts.append(f"{len(report.errors)} bad")
    warned = len({line for line, _ in report.warnings})
    tail = f"; {warned} with a warning" if warned else ""
    return f"{report.rows} row{'s' if report.rows != 1 else ''}: {', '.join(parts)}{tail}"


def find_contact(conn: sa.Connection, key: str, region: str) -> dict[str, Any] | None:
    """The contact a user-given KEY names: a phone (any format) or an email matches that field first, then
    anything else (or a phone or email no contact has) matches an external id."""
    key = str(key).strip()
    if "\x00" in key:  # no stored value has one, and PostgreSQL refuses it in a query
        return None
    address = read_address(key, region)
    if address is not None:
        field_name, value = address
        rec = conn.execute(sa.select(contacts).where(contacts.c[field_name] == value)).mappings().first()
        if rec:
            return dict(rec)
    rec = conn.execute(sa.select(contacts).where(contacts.c.external_id == key)).mappings().first()
    return dict(rec) if rec else None


def find_contacts(conn: sa.Connection, keys: list[str], region: str) -> list[dict[str, Any] | None]:
    """:func:`find_contact` of each of ``keys``, with one statement per kind of key for them all."""
    keys = [str(key).strip() for key in keys]
    addresses = [None if "\x00" in key else read_address(key, region) for key in keys]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for field_name in ("phone", "email"):
        values = [a[1] for a in addresses if a is not None and a[0] == field_name]
        if values:
            found.update(((field_name, v), c) for v, c in contacts_by(conn, field_name, values).items())
    out: list[dict[str, Any] | None] = [found.get(a) if a else None for a in addresses]
    missing = [key for key, contact in zip(keys, out) if contact is None and "\x00" not in key]
    if missing:
        by_id = contacts_by(conn, "external_id", missing)
        out = [c if c is not None or "\x00" in key else by_id.get(key) for key, c in zip(keys, out)]
    return out
