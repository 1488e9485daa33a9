"""The render budget: what one render of a template may use, and how big a value it may build.

:mod:`engine.sandbox` charges it; a render runs under a fresh :func:`budget` (a context variable, so
templates included or imported in the render share it, and renders on other threads have their own).
"""
from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import fields, is_dataclass
from typing import Any, Iterable

from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace

__all__ = ["BudgetExceeded", "Budget", "budget", "current_budget", "charge", "weight", "checked", "too_big",
           "MAX_STEPS", "MAX_SECONDS", "MAX_OUTPUT", "MAX_RANGE", "MAX_INT_BITS"]

#: loop iterations, calls, filters, operators and outputs one render may take
MAX_STEPS = 100_000
#: wall time one render may take (a legitimate one takes well under a millisecond)
MAX_SECONDS = 2.0
#: characters one render may produce, and the size of any one value it builds
MAX_OUTPUT = 200_000
#: the most items a template's ``range`` gives
MAX_RANGE = 10_000
#: the largest integer a template may compute (about 1,200 digits)
MAX_INT_BITS = 4096
_CLOCK_EVERY = 256  # steps between two looks at the clock
_WALKED_PER_STEP = 4  # values whose size is counted (see weight) for a step


class BudgetExceeded(SecurityError):
    """A template went past its render budget; the message names the limit and how to stay under it."""


class Budget:
    """What one render has used so far."""

    __slots__ = ("steps_left", "room", "deadline")

    def __init__(self) -> None:
        self.steps_left = MAX_STEPS
        self.room = MAX_OUTPUT  # characters left
        self.deadline = time.monotonic() + MAX_SECONDS

    def take(self, chars: int = 0) -> None:
        """One step, writing ``chars`` characters."""
        self.steps_left -= 1
        self.room -= chars
        if self.room < 0 or self.steps_left <= 0 or not self.steps_left % _CLOCK_EVERY:
            self._check()

    def work(self, items: int) -> None:
        """Steps for walking ``items`` values (one per ``_WALKED_PER_STEP``), and a look at the clock."""
        self.steps_left -= items // _WALKED_PER_STEP
        if self.steps_left <= 0 or time.monotonic() > self.deadline:
            self._check()

    def _check(self) -> None:
        if self.room < 0:
            raise BudgetExceeded(f"the template renders more than {MAX_OUTPUT:,} characters; shorten it")
        if self.steps_left <= 0:
            raise BudgetExceeded(f"the template does too much work (more than {MAX_STEPS:,} loop steps, calls "
                                 "and outputs); loop over less")
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(f"the template took more than {MAX_SECONDS:g} s to render; loop over less")


_current: ContextVar[Budget | None] = ContextVar("followup_template_budget", default=None)
#: the budget of the render under way on this thread (None outside a render)
current_budget = _current.get


class budget:  # noqa: N801 - used as a function: `with budget():`
    """Run a render (and every template it includes or imports) under one fresh budget."""

    __slots__ = ("_token",)

    def __enter__(self) -> Budget:
        current = Budget()
        self._token = _current.set(current)
        return current

    def __exit__(self, *exc: Any) -> None:
        _current.reset(self._token)


def charge() -> None:
    """One step of the render under way."""
    current = _current.get()
    if current is not None:
        current.take()


_TEXTS = (str, bytes, bytearray)
_COLLECTIONS = (list, tuple, set, frozenset, type({}.keys()), type({}.values()), type({}.items()))


def _parts(item: Any) -> Iterable[Any] | None:
    """What ``item`` prints of other values (None: it prints only itself)."""
    if isinstance(item, dict):
        return [*item.keys(), *item.values()]
    if isinstance(item, _COLLECTIONS):
        return item
    if is_dataclass(item) and not isinstance(item, type):  # the template's views print their fields
        return [getattr(item, f.name) for f in fields(item)]
    if isinstance(item, Namespace):
        return [getattr(item, "_Namespace__attrs", {})]  # what its repr prints
    return None


def weight(value: Any) -> int:
    """At least how many characters ``value`` prints as (its text is at most ten times as long: the escapes of
    a repr); counts no further than just past ``MAX_OUTPUT``. A long count is charged to the budget."""
    if isinstance(value, _TEXTS):
        return len(value)
    if isinstance(value, int):
        return value.bit_length() // 4 + 1
    total, walked, stack = 0, 0, [value]
    while stack and total <= MAX_OUTPUT:  # also ends on a list that holds itself
        item = stack.pop()
        walked += 1
        if isinstance(item, _TEXTS):
            total += len(item) + 2
            continue
        if isinstance(item, int):
            total += item.bit_length() // 4 + 1
            continue
        parts = _parts(item)
        if parts is None:
            total += 8
        else:
            total += 2 * len(parts) + 2
            stack.extend(parts)
    if walked >= _WALKED_PER_STEP:
        current = _current.get()
        if current is not None:
            current.work(walked)
    return total


def too_big(what: str) -> BudgetExceeded:
    """The refusal of something that would be bigger than ``MAX_OUTPUT`` characters."""
    return BudgetExceeded(f"{what} would be more than {MAX_OUTPUT:,} characters; the template may not build it")


def checked(value: Any) -> Any:
    """``value`` if it is within the limits, else :class:`BudgetExceeded`."""
    if type(value) is str:  # the common case first
        if len(value) > MAX_OUTPUT:
            raise too_big("a value")
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise BudgetExceeded(f"a number of more than {MAX_INT_BITS} bits; the template may not compute it")
    if weight(value) > MAX_OUTPUT:
        raise too_big("a value")
    return value
