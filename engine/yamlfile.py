"""Read a YAML file and remember the line of every key, so errors can say ``FILE:LINE: KEY.PATH``."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, Problem
from .yamlerrors import explain

__all__ = ["YamlDoc", "load_yaml", "join_path"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: a whole value written ``$NAME`` as a shell would: followup reads only ``${NAME}``, so it would be taken literally
_SHELL_REF = re.compile(r"\s*\$([A-Za-z_][A-Za-z0-9_]*)\s*")


def join_path(base: str, key: str | int) -> str:
    """``join_path("touches", 2)`` → ``touches[2]``; ``join_path("offer", "code")`` → ``offer.code``."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else str(key)


@dataclass
class YamlDoc:
    """A parsed YAML mapping with the line of each key path and a list of problems found in it."""

    path: Path
    data: Any
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def display(self) -> str:
        try:
            return os.path.relpath(self.path)
        except ValueError:
            return str(self.path)

    def line(self, key: str) -> int | None:
        while key:
            if key in self.lines:
                return self.lines[key]
            key = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", key) if re.search(r"(\.[^.\[]+|\[\d+\])$", key) else ""
        return None

    def problem(self, key: str, message: str) -> None:
        """Record a problem at ``key`` (a dotted path)."""
        self.problems.append(Problem(self.display, key, message, self.line(key)))

    def resolve(self, value: str) -> Path:
        """A path written in this file, resolved against this file's folder."""
        candidate = Path(os.path.expanduser(value))
        return candidate if candidate.is_absolute() else (self.path.parent / candidate).resolve()

    def expand_env(self, value: Any, key: str) -> Any:
        """Replace ``${NAME}`` by the environment variable; a missing one, or a shell-style ``$NAME``, is a problem."""
        if not isinstance(value, str) or "$" not in value:
            return value
        shell = _SHELL_REF.fullmatch(value)
        if shell:
            self.problem(key, f"${shell.group(1)} is not read from the environment (followup reads only the ${{NAME}} "
                              f"form); write \"${{{shell.group(1)}}}\"")
            return value

        def sub(match: re.Match) -> str:
            name = match.group(1)
            if name not in os.environ:
                self.problem(key, f"environment variable {name} is not set; export {name}=... before running followup")
                return ""
            return os.environ[name]

        return _ENV_REF.sub(sub, value)


def _record_lines(node: yaml.Node, path: str, lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = join_path(path, str(key_node.value))
            lines[key] = key_node.start_mark.line + 1
            _record_lines(value_node, key, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = join_path(path, index)
            lines[key] = item.start_mark.line + 1
            _record_lines(item, key, lines)


class _AliasRefused(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark, name: str):
        self.problem_mark, self.name = mark, name


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases: each ``*name`` repeats a whole subtree, so a few lines of
    aliases of aliases stand for billions of nodes (an "alias bomb") that every walk of the data expands."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(event.start_mark, event.anchor)
        return super().compose_node(parent, index)

    def construct_yaml_timestamp(self, node: yaml.Node) -> Any:
        """A date-shaped value that is no date (2027-06-40) stays text, for the reader to refuse at its line."""
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_NoAliasLoader.add_constructor("tag:yaml.org,2002:timestamp", _NoAliasLoader.construct_yaml_timestamp)


def _parse(text: str) -> tuple[yaml.Node | None, Any]:
    loader = _NoAliasLoader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def load_yaml(path: Path) -> YamlDoc:
    """Parse ``path``; a missing file, a YAML syntax error or an alias raises :class:`ConfigError` with its line."""
    shown = os.path.relpath(path) if path.is_absolute() else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(Problem(shown, "", "file not found; run `followup init` to write a starter config")) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(Problem(shown, "", f"cannot read the file: {err}")) from None
    try:
        node, data = _parse(text)
    except _AliasRefused as err:
        raise ConfigError(Problem(shown, "", f"YAML alias *{err.name} is not accepted here; repeat the value "
                                             f"instead of naming it with &{err.name} and reusing it",
                                  err.problem_mark.line + 1)) from None
    except yaml.YAMLError as err:
        message, line = explain(err)
        raise ConfigError(Problem(shown, "", message, line)) from None
    lines: dict[str, int] = {}
    if node is not None:
        _record_lines(node, "", lines)
    return YamlDoc(path=path, data=data, lines=lines)
