"""Opening the database: WAL and busy timeout on SQLite, the schema check, migrations with Alembic.

Only ``upgrade`` imports Alembic (about 9 MB of modules, Mako and Pygments among them): the schema
check reads the ``alembic_version`` table and the migration files directly, so the worker never loads it.
"""
from __future__ import annotations

import ast
import sqlite3
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from .dberrors import database_error
from .errors import SchemaError

__all__ = ["make_engine", "upgrade", "check_schema", "current_revision", "head_revision", "is_sqlite", "reading"]

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"


READ_ONLY = "followup_read_only"


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


def reading(engine: sa.Engine) -> sa.Connection:
    """A connection for reads only: on SQLite it does not take the write lock (use it in a ``with``)."""
    return engine.connect().execution_options(**{READ_ONLY: True})


@lru_cache(maxsize=16)
def make_engine(url: str) -> sa.Engine:
    """One engine per URL per process. SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise database_error(err, url) from err
        # Python's sqlite3 treats only int, float, str and bytearray as plain: for every other value it binds,
        # None included, it searches for an adapter (two attribute lookups when none is registered). The
        # worker binds thousands of NULLs a second; registered, None is one dictionary hit.
        sqlite3.register_adapter(type(None), _null)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            # Python's sqlite3 opens transactions lazily; take control so BEGIN IMMEDIATE works
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn):
            # take the write lock up front: two writers never deadlock upgrading a read lock; a
            # connection opened with `reading()` only reads its snapshot and takes no lock (WAL)
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _null(_value: None) -> None:
    return None  # bound as SQL NULL


def _alembic_config(url: str):
    from alembic.config import Config as AlembicConfig  # imported here: most commands never migrate

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration's revision id, read from the files in migrations/versions."""
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        for path in (MIGRATIONS / "versions").glob("*.py"):
            revision, down = _revision_ids(path)
            revisions.add(revision)
            parents.update([down] if isinstance(down, str) else down or ())
    except ValueError:
        revisions = set()
    heads = revisions - parents
    if len(heads) == 1:
        return heads.pop()
    # branches, or a file that is not plain literals: let Alembic decide (and explain)
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()


def _revision_ids(path: Path) -> tuple[str, str | tuple[str, ...] | None]:
    """A migration file's module-level ``revision`` and ``down_revision``; ValueError if they are not literals."""
    found = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            found[target.id] = ast.literal_eval(value)
    if not isinstance(found.get("revision"), str):
        raise ValueError(f"{path}: no revision")
    return found["revision"], found.get("down_revision")


def current_revision(engine: sa.Engine) -> str | None:
    """The revision in the database's ``alembic_version`` table; None when there is no schema yet."""
    with reading(engine) as conn:  # no write lock: a worker may hold it, checking a batch
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        heads = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(heads) > 1:
        raise SchemaError(f"the table {VERSION_TABLE} names several revisions ({', '.join(sorted(heads))}); "
                          "this followup has one line of migrations")
    return heads[0] if heads else None


def upgrade(url: str) -> tuple[str | None, str]:
    """Create or migrate the schema to the newest version; return (before, after) revisions."""
    from alembic import command

    engine = make_engine(url)
    before = current_revision(engine)
    cfg = _alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return before, head_revision()


def check_schema(engine: sa.Engine) -> None:
    """Refuse to run on a missing or old schema, naming the command that fixes it."""
    current = current_revision(engine)
    head = head_revision()
    if current is None:
        raise SchemaError("the database has no schema yet; run `followup db upgrade` first")
    if current != head:
        raise SchemaError(f"the database schema is at {current}, this followup needs {head}; "
                          "run `followup db upgrade` (back up the database first)")
