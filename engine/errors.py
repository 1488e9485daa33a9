"""The engine's errors. Provider failures live in :mod:`providers.errors`; these are the rest.

::

    FollowupError            anything the engine reports to a user
    ├── ConfigError          a setting, sequence or template is wrong (carries every problem found)
    ├── InputError           a command's input is wrong (unknown contact, bad flag value)
    ├── SchemaError          the database schema is missing or old: run ``followup db upgrade``
    └── DatabaseError        the database cannot be opened or written (names the URL, password masked)

Each is shown as-is to the user and turns into a non-zero exit status; none is retried.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FollowupError", "ConfigError", "Problem", "InputError", "SchemaError", "DatabaseError"]


class FollowupError(Exception):
    """Base of every error the engine reports to a user."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file: ``FILE[:LINE]: KEY.PATH: what is wrong and how to fix it``."""

    file: str
    key: str
    message: str
    line: int | None = None
    #: worth a look but not wrong: ``validate`` prints it and still passes
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        message = f"warning: {self.message}" if self.warning else self.message
        return f"{where}: {self.key}: {message}" if self.key else f"{where}: {message}"


class ConfigError(FollowupError):
    """The configuration is wrong; ``problems`` lists every problem found, one per line."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InputError(FollowupError):
    """A command's input is wrong; the message says what and how to fix it."""

    exit_code = 2


class SchemaError(FollowupError):
    """The database schema is missing or older than this version of followup."""

    exit_code = 3


class DatabaseError(FollowupError):
    """The database cannot be opened or written: its URL (password masked), what failed and what to do."""

    exit_code = 3
