"""A database that cannot be opened or written, said in one line: the URL (password masked), what failed, the fix.

The drivers' own messages are precise but buried: psycopg's runs to a paragraph under a SQLAlchemy
traceback, SQLite's ``unable to open database file`` names no file. :func:`database_error` turns such a
failure into a :class:`~engine.errors.DatabaseError`; the command line's error boundary shows it.
"""
from __future__ import annotations

import os
import re

import sqlalchemy as sa

from .errors import DatabaseError

__all__ = ["database_error", "masked_url"]

#: (pattern in the driver's message, what failed, what to do); the first match wins
_KNOWN = (
    (r'role ".*" does not exist', "cannot connect", "create that role in PostgreSQL, or put an existing user in {where}"),
    (r"password authentication failed|no password supplied", "cannot connect",
     "check the user and password in {where}"),
    (r'database ".*" does not exist', "cannot connect", "create the database (createdb NAME), or fix its name in {where}"),
    (r"connection refused|could not connect|timeout expired|could not translate host name|name or service not known",
     "cannot connect", "start PostgreSQL, or fix the host and port in {where}"),
    (r"permission denied|must be owner", "cannot write",
     "grant the user rights on the database and its schema, or use the user that owns it"),
    (r"unable to open database file", "cannot open",
     "make sure the file's folder exists and this user may write there (SQLite writes -wal and -shm files beside "
     "the database), or point {where} elsewhere"),
    (r"readonly database|read-only", "cannot write",
     "make the file and its folder writable by this user, or point {where} elsewhere"),
    (r"database is locked", "cannot write", "another process holds the database locked; try again when it is done"),
    (r"disk is full|database or disk is full|no space left", "cannot write", "free some disk space"),
    (r"disk i/o error", "cannot write", "check the disk and the permissions of the database's folder"),
    (r"file is not a database", "cannot open", "the file is not an SQLite database: point {where} at another file"),
    (r"no such table", "cannot read", "run `followup db upgrade`"),
)


def masked_url(url: str) -> str:
    """``url`` with its password shown as ``***``."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _where() -> str:
    return "FOLLOWUP_DATABASE_URL" if os.environ.get("FOLLOWUP_DATABASE_URL") else "database_url in settings.yaml"


def _driver_message(error: BaseException, url: str) -> str:
    """The driver's reason on one line, without the connection preamble and without the password."""
    text = str(getattr(error, "orig", None) or error)
    text = re.sub(r"^(connection failed: )?connection to server (at|on) .*? failed: (FATAL: )?", "", text.strip())
    text = " ".join(text.splitlines()[0].split()) if text else type(error).__name__
    password = _password(url)
    return text.replace(password, "***") if password else text


def _password(url: str) -> str | None:
    try:
        return sa.engine.make_url(url).password
    except sa.exc.ArgumentError:
        return None


def database_error(error: BaseException, url: str | None) -> DatabaseError | None:
    """The :class:`DatabaseError` ``error`` means for the database at ``url``, or None when it is not one.

    Driver errors about the connection, the file, locks, space or rights are; a failed constraint or a
    malformed statement (a bug) is not.
    """
    shown = f"database {masked_url(url)}" if url else "the database"
    if isinstance(error, OSError):
        return _os_error(error, shown)
    if isinstance(error, sa.exc.ProgrammingError) and getattr(error.orig, "sqlstate", None) != "42501":
        return None
    if not isinstance(error, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.ProgrammingError)):
        return None
    reason = _driver_message(error, url or "")
    lowered = reason.lower()
    failed, fix = next(((f, h) for p, f, h in _KNOWN if re.search(p, lowered)),
                       ("cannot use it", "check {where}"))
    return DatabaseError(f"{shown}: {failed}: {reason}; {fix.format(where=_where())}")


def _os_error(error: OSError, shown: str) -> DatabaseError:
    path = error.filename or "the database's folder"
    if isinstance(error, (FileExistsError, NotADirectoryError)):
        return DatabaseError(f"{shown}: cannot create the folder {path}: a file of that name is in the way; "
                             f"point {_where()} at a path inside a folder")
    return DatabaseError(f"{shown}: cannot create {path}: {error.strerror or error}; "
                         f"make its folder writable by this user, or point {_where()} elsewhere")
