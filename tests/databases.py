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
from engine.db import current_revision, head_revision, make_engine, upgrade

#: the xdist worker this process is ("gw0", ...), None when tests run in one process
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
#: URL → (the tables, those of them holding rows) of a PostgreSQL database this process migrated from nothing
_MIGRATED: dict[str, tuple[set[str], set[str]]] = {}


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
    """The database at ``url`` as the migrations leave a new one: at the newest revision, every table empty
    but those the migrations fill (the revision, the installation's reference prefix).

    The first call in a process migrates it from nothing and notes its tables and which of them hold rows;
    later calls empty the others with one TRUNCATE, unless a test left the database otherwise (its schema
    dropped, another revision, a table of its own): then it is made again from nothing.
    """
    engine = make_engine(url)
    made = _MIGRATED.get(url)
    if (made is None or set(sa.inspect(engine).get_table_names()) != made[0]
            or current_revision(engine) != head_revision()):
        upgrade(empty_postgres(url))
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            filled = {name for name in tables
                      if conn.execute(sa.select(sa.literal(1)).select_from(sa.table(name)).limit(1)).first()}
        _MIGRATED[url] = (tables, filled)
        return url
    tables, filled = made
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(sorted(tables - filled))} RESTART IDENTITY CASCADE")
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
