"""Opening the database: WAL and busy timeout on SQLite, the schema check, migrations with Alembic."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from .errors import SchemaError

__all__ = ["make_engine", "upgrade", "check_schema", "current_revision", "head_revision", "is_sqlite"]

MIGRATIONS = Path(__file__).parent / "migrations"


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


@lru_cache(maxsize=16)
def make_engine(url: str) -> sa.Engine:
    """One engine per URL per process. SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
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
            # take the write lock up front: two writers never deadlock upgrading a read lock
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _alembic_config(url: str):
    from alembic.config import Config as AlembicConfig  # imported here: most commands never migrate

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


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
    try:
        current = current_revision(engine)
    except sa.exc.OperationalError as err:
        raise SchemaError(f"cannot open the database: {err.orig}") from None
    head = head_revision()
    if current is None:
        raise SchemaError("the database has no schema yet; run `followup db upgrade` first")
    if current != head:
        raise SchemaError(f"the database schema is at {current}, this followup needs {head}; "
                          "run `followup db upgrade` (back up the database first)")
