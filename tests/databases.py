"""The databases the tests run on: migrated once per session, then copied (SQLite) or emptied (PostgreSQL).

Running the migrations takes a few hundred milliseconds, more than most tests; a copy of a migrated SQLite
file, or the migrated PostgreSQL tables emptied, takes a few milliseconds and is the same database to the
test. Under pytest-xdist each worker has a PostgreSQL database of its own beside the one
FOLLOWUP_TEST_POSTGRES_URL names (``test`` → ``test_gw0``), so workers never empty each other's tables.
"""
from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import sqlalchemy as sa

from bench.faults import own_database
from engine.db import VERSION_TABLE, current_revision, head_revision, make_engine, upgrade
from engine.models import metadata

#: the xdist worker this process is ("gw0", ...), None when tests run in one process
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
#: the tables the migration fills at once: kept when a database is emptied
SEEDED = {VERSION_TABLE, "installation"}


def worker_postgres_url(url: str | None) -> str | None:
    """``url``, or under xdist the URL of this worker's own database beside it (created if missing)."""
    if not url or not WORKER:
        return url
    return own_database(url, WORKER)


def empty_postgres(url: str) -> str:
    """The database at ``url`` with no schema at all; returns ``url``."""
    with make_engine(url).begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    return url


def migrated_postgres(url: str) -> str:
    """The database at ``url`` at the newest revision with every table empty but the ones migrations fill.

    When a test left it otherwise (its schema dropped, another revision, a table of its own), it is made
    again from nothing; the usual case costs one TRUNCATE.
    """
    engine = make_engine(url)
    tables = set(sa.inspect(engine).get_table_names())
    if tables != set(metadata.tables) | {VERSION_TABLE} or current_revision(engine) != head_revision():
        upgrade(empty_postgres(url))
        return url
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(sorted(tables - SEEDED))} RESTART IDENTITY CASCADE")
    return url


def migrated_sqlite(folder: Path) -> Path:
    """A new SQLite database in ``folder``, migrated to the newest revision: the file tests copy."""
    path = folder / "template.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    make_engine(url).dispose()
    return path


def copy_sqlite(template: Path, dest: Path) -> None:
    """``dest`` becomes a copy of the database ``template`` (whatever of it is still in its write-ahead log too)."""
    with closing(sqlite3.connect(template)) as src, closing(sqlite3.connect(dest)) as out:
        src.backup(out)
