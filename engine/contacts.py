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
from .errors import InputError
from .fields import length_problems
from .models import Contact

__all__ = ["ContactRow", "ImportReport", "parse_row", "import_csv", "upsert_contacts", "find_contact", "KNOWN_COLUMNS"]

KNOWN_COLUMNS = ("phone", "email", "first_name", "last_name", "timezone", "locale", "tags", "external_id")
BATCH = 1000
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


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int | None, str]] = field(default_factory=list)
    #: rows imported, with something the user should know (a landline: its SMS touches will be skipped)
    warnings: list[tuple[int | None, str]] = field(default_factory=list)
    contact_ids: list[int] = field(default_factory=list)

    @property
    def good(self) -> int:
        return self.created + self.updated + self.unchanged


@lru_cache(maxsize=512)
def _valid_tz(name: str) -> bool:
    try:
        ZoneInfo(name)
        return True
    except (ZoneInfoNotFoundError, ValueError):
        return False


def parse_row(raw: dict[str, Any], region: str, line: int | None = None) -> ContactRow:
    """Check one row; raise ValueError with every reason it can't be imported.

    A value over its length limit (:mod:`engine.fields`, the API's limits too) is reason enough.
    """
    values = {k: str(raw.get(k) or "").strip() for k in KNOWN_COLUMNS}
    get = values.__getitem__
    tags = sorted({t.strip() for t in get("tags").split(";") if t.strip()})
    attrs = {k: str(v) for k, v in raw.items() if k and k not in KNOWN_COLUMNS and v not in (None, "")}
    reasons = length_problems(values, tags, attrs)
    if reasons:  # a value past its limit is not read further
        raise ValueError("; ".join(reasons))
    phone = email = None
    if get("phone"):
        try:
            phone = normalize_phone(get("phone"), region)
        except ValueError as err:
            reasons.append(f"phone: {err}")
    if get("email"):
        try:
            email = normalize_email(get("email"))
        except ValueError as err:
            reasons.append(f"email: {err}")
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
    if reasons:
        raise ValueError("; ".join(reasons))
    return ContactRow(phone, email, get("first_name"), get("last_name"), tz, locale, tags,
                      get("external_id") or None, attrs, line)


def _tags_text(tags: Iterable[str]) -> str:
    tags = sorted(set(tags))
    return f";{';'.join(tags)};" if tags else ""


def _merge(existing: dict[str, Any], row: ContactRow) -> dict[str, Any]:
    """The columns that change when ``row`` is applied to ``existing`` (empty fields never erase)."""
    changes: dict[str, Any] = {}
    for key in ("phone", "email", "first_name", "last_name", "timezone", "locale", "external_id"):
        value = getattr(row, key)
        if value and existing.get(key) != value:
            changes[key] = value
    old_tags = [t for t in (existing.get("tags") or "").split(";") if t]
    tags = _tags_text(old_tags + row.tags)
    if tags != (existing.get("tags") or ""):
        changes["tags"] = tags
    attrs = {**(existing.get("attrs") or {}), **row.attrs}
    if attrs != (existing.get("attrs") or {}):
        changes["attrs"] = attrs
    return changes


def upsert_contacts(conn: sa.Connection, rows: list[ContactRow], report: ImportReport) -> None:
    """Insert or update one batch, matching by external_id, else phone, else email."""
    report.warnings.extend((r.line, LANDLINE_WARNING.format(phone=r.phone)) for r in rows if landline(r.phone))
    keys = {k: {getattr(r, k) for r in rows if getattr(r, k)} for k in ("external_id", "phone", "email")}
    conds = [contacts.c[k].in_(v) for k, v in keys.items() if v]
    existing: dict[int, dict[str, Any]] = {}
    if conds:
        for rec in conn.execute(sa.select(contacts).where(sa.or_(*conds))).mappings():
            existing[rec["id"]] = dict(rec)
    index = {(k, rec[k]): cid for cid, rec in existing.items() for k in ("external_id", "phone", "email") if rec[k]}
    stamp = now()
    pending_new: dict[tuple[str, str], dict[str, Any]] = {}
    updates: dict[int, dict[str, Any]] = {}
    for row in rows:
        match_keys = [(k, getattr(row, k)) for k in ("external_id", "phone", "email") if getattr(row, k)]
        target = next((index[mk] for mk in match_keys if mk in index), None)
        if target is None:
            fresh = next((pending_new[mk] for mk in match_keys if mk in pending_new), None)
            if fresh is not None:  # the same contact twice in one batch: merge into the first
                fresh.update(_merge(fresh, row))
                continue
            record = {"first_name": "", "last_name": "", "tags": "", "attrs": {}, "created_at": stamp,
                      "updated_at": stamp, "phone": None, "email": None, "external_id": None,
                      "timezone": None, "locale": None}
            record.update(_merge(record, row))
            for mk in match_keys:
                pending_new[mk] = record
            continue
        current = {**existing[target], **updates.get(target, {})}
        # a value that belongs to another contact would break its uniqueness: say so, don't guess
        clash = next((k for k, v in match_keys if (k, v) in index and index[(k, v)] != target), None)
        if clash:
            other = existing[index[(clash, getattr(row, clash))]]
            report.errors.append((row.line, f"{clash} {getattr(row, clash)} already belongs to another contact "
                                            f"(id {other['id']}); fix the row or merge the contacts"))
            continue
        changes = _merge(current, row)
        if changes:
            updates.setdefault(target, {}).update(changes)
        elif target not in updates:
            report.unchanged += 1
        report.contact_ids.append(target)
    new_records = list({id(r): r for r in pending_new.values()}.values())
    if new_records:
        result = conn.execute(sa.insert(contacts).returning(contacts.c.id), new_records)
        report.contact_ids.extend(result.scalars().all())
        report.created += len(new_records)
    for cid, changes in updates.items():
        conn.execute(sa.update(contacts).where(contacts.c.id == cid).values(**changes, updated_at=stamp))
    report.updated += len(updates)


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
        header = [h.strip() for h in reader.fieldnames]
        if not {"phone", "email"} & set(header):
            raise InputError(f"{path}:1: the header has neither a phone nor an email column "
                             f"(found: {', '.join(header)}); add one of them")
        reader.fieldnames = header
        for raw in reader:
            yield reader.line_num, raw


def _check_readable(path: Path) -> None:
    """Read the whole file once before writing anything: a broken byte or row late in the file
    must not leave the batches before it imported."""
    with path.open("rb") as fh:
        for number, raw_line in enumerate(fh, start=1):
            try:
                raw_line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(f"{path}:{number}: not UTF-8 text ({err.reason}); save the file as UTF-8 CSV") from None
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for _ in csv.reader(fh):
                pass
    except csv.Error as err:
        raise InputError(f"{path}: not a readable CSV file: {err}") from None


def import_csv(engine: sa.Engine, path: Path, region: str, progress: Callable[[int], None] | None = None) -> ImportReport:
    """Import a contacts CSV. Bad rows are reported with their line, good rows imported, in batches."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    _check_readable(path)
    report = ImportReport()
    batch: list[ContactRow] = []

    def flush() -> None:
        if batch:
            with engine.begin() as conn:
                upsert_contacts(conn, batch, report)
            batch.clear()

    try:
        for line, raw in _rows(path, progress):
            if None in raw:
                report.errors.append((line, "has more fields than the header; quote values that contain commas"))
                continue
            try:
                batch.append(parse_row(raw, region, line))
            except ValueError as err:
                report.errors.append((line, str(err)))
            if len(batch) >= BATCH:
                flush()
        flush()
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save the file as UTF-8 CSV") from None
    except csv.Error as err:
        raise InputError(f"{path}: not a readable CSV file: {err}") from None
    return report


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
