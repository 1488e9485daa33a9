"""Sender lines of an SMS account and their classes, as a provider's ``lines`` setting lists them.

An Iranian panel account usually has several lines. A **promotional** (تبلیغاتی) line may carry
advertising but cannot reach a number on the operators' advertising blacklist (MCI 8999, Irancell
5005, ``*800#``), and some operators hold its sends to their hours. A **service** (خدماتی) line reaches
blacklisted numbers too, but only with informational text to a business's own customers
(shared/reference/providers.md §9.2). The provider only parses the list; which line a message leaves
from is the engine's choice, handed over in :attr:`providers.base.OutgoingMessage.sender`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .errors import ProviderConfigError

__all__ = ["LineClass", "Line", "parse_lines"]


class LineClass(str, enum.Enum):
    PROMOTIONAL = "promotional"
    SERVICE = "service"


@dataclass(frozen=True)
class Line:
    """One sender line: its number as the panel writes it, and its class."""

    number: str
    line_class: LineClass


def parse_lines(raw: Any) -> tuple[Line, ...]:
    """The ``lines`` setting (``[{number, class}]``) as :class:`Line` s; a clear error for anything else."""
    if raw is None:
        return ()
    example = "e.g. lines: [{number: '10004346', class: promotional}, {number: '2000660110', class: service}]"
    if not isinstance(raw, list) or not raw:
        raise ProviderConfigError("lines", f"must be a list of sender lines, {example}")
    lines, seen = [], set()
    for i, item in enumerate(raw):
        key = f"lines[{i}]"
        if not isinstance(item, dict) or set(item) - {"number", "class"}:
            raise ProviderConfigError(key, f"must be a mapping with number and class only, {example}")
        number = str(item.get("number") or "").strip()
        if not number:
            raise ProviderConfigError(f"{key}.number", "is required: the line number as the panel shows it")
        try:
            line_class = LineClass(item.get("class"))
        except ValueError:
            raise ProviderConfigError(f"{key}.class", f"{item.get('class')!r}: use promotional or service") from None
        if number in seen:
            raise ProviderConfigError(f"{key}.number", f"{number!r} is listed twice; list each line once")
        seen.add(number)
        lines.append(Line(number, line_class))
    return tuple(lines)
