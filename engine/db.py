"""Opening the database: WAL and busy timeout on SQLite, the schema check, migrations with Alembic.

Only ``upgrade`` imports Alembic (about 9 MB of modules, Mako and Pygments among them): the schema
check reads the ``alembic_version`` table and the migration files directly, so the worker never loads it.
"""
from __future__ import annotations

import ast
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlalchemy as sa
from .dberrors import database_error
from .errors import SchemaError

__all__ = ["SessionLimits", "make_engine", "writing_soon", "upgrade", "check_schema", "current_revision",
           "head_revision", "is_sqlite", "reading", "read_at_once"]

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"


READ_ONLY = "followup_read_only"


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


def reading(engine: sa.Engine) -> sa.Connection:
    """A connection for reads only: on SQLite it does not take the write lock (use it in a ``with``)."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def read_at_once(engine: sa.Engine, reads: list[Callable[[sa.Connection], Any]]) -> list[Any]:
    """Each read's result (a read is a function of a connection). They run at once, each on a connection of its
    own, so one's time in the database overlaps another's (each statement reads the tables as they are when it
    starts, as it would one after the other): PostgreSQL's server processes, or SQLite's readers of the WAL (they
    take no lock, and Python's sqlite3 lets go of the GIL while SQLite runs a statement)."""
    if len(reads) < 2:
        with reading(engine) as conn:
            return [read(conn) for read in reads]

    def run(read: Callable[[sa.Connection], Any]) -> Any:
        with reading(engine) as conn:
            return read(conn)

    with ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="read-at-once") as pool:
        return list(pool.map(run, reads))


#: connections kept open per process: the service runs reads and key checks on its thread pool's threads
#: (anyio's 40) at once, and each needs one; fewer, and a burst of requests opens and closes connections
#: beyond the pool (on PostgreSQL a new server process each, which cost an API request a fifth of its rate)
POOL_SIZE = 48

#: how often :func:`writing_soon` asks again for SQLite's write lock, and for how long at most
LOCK_POLL_SECONDS = 0.002
LOCK_WAIT_SECONDS = 30.0


@contextmanager
def writing_soon(engine: sa.Engine) -> Iterator[sa.Connection]:
    """``engine.begin()`` that gets SQLite's write lock within a few ms of its release.

    SQLite's own busy handler sleeps longer and longer between tries (25, 50, then 100 ms), so a writer
    waiting for a long transaction of another process starts up to 100 ms after the lock is free. Here the
    BEGIN IMMEDIATE is tried every :data:`LOCK_POLL_SECONDS` instead (the same 30 s at most); inside the
    transaction the usual busy timeout applies. On PostgreSQL this is ``engine.begin()``.
    """
    if not is_sqlite(engine):
        with engine.begin() as conn:
            yield conn
        return
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        driver.execute("PRAGMA busy_timeout=0")
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        try:
            while True:
                try:
                    transaction = conn.begin()
                    break
                except sa.exc.OperationalError as err:
                    if "locked" not in str(err.orig) or time.monotonic() > deadline:
                        raise
                    time.sleep(LOCK_POLL_SECONDS)
        finally:
            driver.execute("PRAGMA busy_timeout=30000")
        with transaction:
            yield conn


@dataclass(frozen=True)
class SessionLimits:
    """Bounds on every wait of a PostgreSQL session, in seconds: the worker's connections carry them.

    The server enforces them: a statement waiting for a lock longer than ``lock_timeout``, or running
    longer than ``statement_timeout``, fails instead of blocking the tick. A session left idle inside a
    transaction that long is ended by the server, and TCP keepalives on both ends find a peer that is
    gone (a worker's host that died leaves its session, and the row locks it holds, open otherwise).
    """

    lock_timeout: int
    statement_timeout: int
    connect_timeout: int
    keepalive_idle: int = 30
    keepalive_interval: int = 10
    keepalive_count: int = 3

    def connect_args(self) -> dict:
        """psycopg's connection arguments: libpq keepalives, and the server settings as ``-c`` options."""
        server = {
            "lock_timeout": f"{self.lock_timeout}s",
            "statement_timeout": f"{self.statement_timeout}s",
            "idle_in_transaction_session_timeout": f"{self.statement_timeout}s",
            "tcp_keepalives_idle": self.keepalive_idle,
            "tcp_keepalives_interval": self.keepalive_interval,
            "tcp_keepalives_count": self.keepalive_count,
        }
        return {"connect_timeout": self.connect_timeout, "keepalives": 1, "keepalives_idle": self.keepalive_idle,
                "keepalives_interval": self.keepalive_interval, "keepalives_count": self.keepalive_count,
                "options": " ".join(f"-c {k}={v}" for k, v in server.items())}


@lru_cache(maxsize=16)
def make_engine(url: str, limits: SessionLimits | None = None) -> sa.Engine:
    """One engine per URL (and limits) per process. SQLite gets WAL, a busy timeout and foreign keys.

    ``limits`` bound a PostgreSQL session's waits (the worker passes them); SQLite's own bound is
    its 30-second busy timeout.
    """
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
        # opening a connection costs a file open and the PRAGMAs below (a tenth of an API request's CPU)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                                  pool_size=POOL_SIZE, max_overflow=10)

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
    return sa.create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=10,
                            connect_args=limits.connect_args() if limits else {})


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
        heads = conn.execute(sa.select(sa.column("version_num")).select_from(sa.table(VERSION_TABLE))).scalars().all()
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
