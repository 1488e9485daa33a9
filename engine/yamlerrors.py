"""PyYAML's syntax errors in words a user can act on, at the line of the mistake.

PyYAML gives two marks: ``problem_mark``, where the parser gave up, and ``context_mark``, where the
construct it was reading began. For an unclosed quote or bracket, or a key without its ``:``, the
parser gives up lines later (often at the end of the file), so the mistake is at the context mark;
for everything else it is at the problem mark.
"""
from __future__ import annotations

import re

import yaml

__all__ = ["explain"]

_INDENT = "line this key up with the keys beside it (a value's own keys go on new lines, indented under it)"
_OPENERS = {"flow sequence": "[", "flow mapping": "{"}


def _found(problem: str) -> str:
    match = re.search(r"but found '(.*)'$", problem)
    return match.group(1) if match else ""


def _hint(err: yaml.MarkedYAMLError, context_line: int | None) -> tuple[str, bool]:
    """What to check, and whether the mistake is at the context mark (else at the problem mark)."""
    problem, context = err.problem or "", err.context or ""
    if "quoted scalar" in context and "end of stream" in problem:
        return f"a quote opened on line {context_line} is never closed; close it", True
    if "unknown escape character" in problem:
        return ("a backslash in a \"double-quoted\" value starts an escape; write \\\\ for a backslash, or use "
                "'single quotes'"), False
    flow = next((opener for kind, opener in _OPENERS.items() if kind in context), None)
    if flow and problem.startswith("expected ','"):
        closer = "]" if flow == "[" else "}"
        return (f"a {flow} opened on line {context_line} is not closed with {closer}; close it, and separate "
                "its items with commas"), True
    if "could not find expected ':'" in problem:
        return ("a key without its ':' (or without a space after the ':'); write key: value, or start a list "
                "item with '- '"), True
    if "mapping values are not allowed" in problem:
        return f"a ':' where no key can start: {_INDENT}, or put a value that contains ': ' in quotes", False
    if "cannot start any token" in problem:
        if "'\\t'" in problem:
            return "a tab character; YAML indents with spaces only: replace the tab by spaces", False
        char = re.search(r"found character '(.*?)'", problem)
        return (f"a value cannot start with {char.group(1) if char else 'this character'}; put the value in "
                "quotes"), False
    found = _found(problem)
    if problem.startswith("expected <block end>"):
        if found == "?":
            return ("a key at the indentation of the list's '- ' items; indent it under the item above, or start "
                    "a new item with '- '"), False
        if found == "-":
            return ("a list item where a key was expected; put the list on its own lines, indented under its "
                    "key"), False
        if found == "<scalar>":
            return ("text after a quoted value; quote the whole value (inside '...' write '' for a single "
                    "quote)"), False
        return f"this line's indentation matches no key above it: {_INDENT}", False
    if "could not determine a constructor for the tag" in problem:
        return f"YAML tags are not read here ({problem.rsplit(' ', 1)[-1]}); put the value in quotes", False
    return f"{problem or context or err}; check indentation and quoting", False


def explain(err: yaml.YAMLError) -> tuple[str, int | None]:
    """``(message, 1-based line)`` for a YAML error: what to check, at the line of the user's mistake."""
    problem_mark = getattr(err, "problem_mark", None)
    context_mark = getattr(err, "context_mark", None)
    if not isinstance(err, yaml.MarkedYAMLError):
        return f"YAML syntax error: {err}; check indentation and quoting", None
    context_line = context_mark.line + 1 if context_mark else None
    hint, at_context = _hint(err, context_line)
    mark = context_mark if at_context and context_mark else problem_mark
    said = err.problem or err.context
    return f"YAML syntax error: {hint} (YAML says: {said})", mark.line + 1 if mark else None
