"""What an event may be called and carry: its name, its key and its data, checked where they come in.

The CLI (``--data``), the API and the sequences' ``trigger``/``exit_on`` keys all use these rules, so an
event that can be sent is one a sequence can name.
"""
from __future__ import annotations

import difflib
import json
import math
import re
from functools import lru_cache
from typing import Any

__all__ = ["BUILT_IN", "MAX_NAME", "MAX_KEY", "MAX_DATA_BYTES", "name_problem", "near_built_in", "data_problem",
           "parse_data"]

#: the events the engine itself acts on (suppression, revenue, inbound replies); any other name is the user's
BUILT_IN = ("converted", "replied", "unsubscribed", "resubscribed")
MAX_NAME = 50
MAX_KEY = 200
#: the most an event's data may take as JSON (it is stored on the event and frozen on each run it starts)
MAX_DATA_BYTES = 16 * 1024
MAX_DEPTH = 8
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def name_problem(name: Any) -> str | None:
    """Why ``name`` can't be an event's name (None: it can)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return (f"{name!r} is not an event name: use lowercase letters, digits and underscores, starting with a "
                "letter, e.g. cart_abandoned")
    if len(name) > MAX_NAME:
        return f"{name!r} is {len(name)} characters; an event name is at most {MAX_NAME}"
    return None


@lru_cache(maxsize=1024)
def near_built_in(name: str) -> str | None:
    """The built-in event ``name`` is probably a misspelling of (``convertd`` → ``converted``), or None."""
    if name in BUILT_IN:
        return None
    close = difflib.get_close_matches(name, BUILT_IN, n=1, cutoff=0.8)
    return close[0] if close else None


def _walk(value: Any, depth: int, path: str) -> str | None:
    if depth > MAX_DEPTH:
        return f"{path or 'data'} is nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path or 'data'}: {value} is not a number JSON can store; send a finite number"
    if isinstance(value, str) and "\x00" in value:
        return f"{path or 'data'} contains a NUL character"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path or 'data'}: keys must be text"
            found = _walk(item, depth + 1, f"{path}.{key}" if path else key)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _walk(item, depth + 1, f"{path}[{i}]")
            if found:
                return found
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        return f"{path or 'data'}: {type(value).__name__} is not a JSON value"
    return None


def data_problem(data: Any) -> str | None:
    """Why ``data`` can't be an event's data (None: it can): it must be a JSON object of finite numbers,
    text without NUL, lists and objects, at most :data:`MAX_DATA_BYTES` as JSON."""
    if not isinstance(data, dict):
        return f"must be a JSON object such as {{\"total\": 1200000}}, not {type(data).__name__}"
    found = _walk(data, 0, "")
    if found:
        return found
    size = len(json.dumps(data, ensure_ascii=False).encode())
    if size > MAX_DATA_BYTES:
        return f"is {size:,} bytes as JSON; an event's data is at most {MAX_DATA_BYTES:,}"
    return None


def _refuse_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a number JSON can store; send a finite number")


def parse_data(text: str) -> dict:
    """``--data`` text → the event's data; ValueError saying where the JSON is wrong and how to write it."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON at line {err.lineno} column {err.colno}: {err.msg}; write an object "
                         "such as '{\"total\": 1200000, \"items\": 2}' (double quotes around names and text)") from None
    problem = data_problem(data)
    if problem:
        raise ValueError(problem)
    return data
