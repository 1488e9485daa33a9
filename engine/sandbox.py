"""The template sandbox with a render budget: a template can neither escape nor hang or exhaust the worker.

Jinja's sandbox keeps templates away from Python internals but says nothing about how much work a
template does. Someone who may edit templates (or a typo) could write ``{% for i in range(100000) %}``
twice over, ``9 ** (9 ** 9)``, ``"a" * 10 ** 10`` or a macro that calls itself. Here every render
runs under a :class:`~engine.budget.Budget`, charged without threads:

* a step for every loop iteration, call, filter, operator and ``{{ … }}`` output; past ``MAX_STEPS``
  steps, or ``MAX_SECONDS`` of wall time (checked every few hundred steps), the render stops;
* the characters a render produces (``{{ … }}`` values and the literal text of loop and macro bodies)
  may not pass ``MAX_OUTPUT``, nor may any single value it builds (a list counts what its items print,
  the fields behind a view or a namespace included);
* operators and calls whose result would be too large are refused *before* they run: ``**`` and ``*``
  on big operands, ``%`` and ``str.format`` with huge widths, ``replace``/``join``/``center``/
  ``indent``/``expandtabs``/``batch`` that would grow past the limit; ``range`` is bounded;
* nothing is evaluated at compile time (no constant folding), so compiling a template is always cheap.

A refusal is a :class:`BudgetExceeded` (a Jinja ``SecurityError``) that names the limit.
"""
from __future__ import annotations

import re
from functools import update_wrapper
from typing import Any, Callable

from jinja2 import nodes, pass_eval_context
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from .budget import (MAX_INT_BITS, MAX_OUTPUT, MAX_RANGE, BudgetExceeded, budget, charge, checked, current_budget,
                     too_big, weight)

__all__ = ["BoundedSandbox", "BudgetExceeded", "budget", "plain_call"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_power(base: Any, exponent: Any) -> None:
    if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1 \
            and abs(base).bit_length() * exponent > MAX_INT_BITS + abs(base).bit_length():
        raise BudgetExceeded(f"refused {base} ** {exponent}: the result would have more than {MAX_INT_BITS} bits")


def _check_times(left: Any, right: Any) -> None:
    if _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise BudgetExceeded(f"refused a product of more than {MAX_INT_BITS} bits")
        return
    seq, count = (left, right) if _is_int(right) else (right, left)
    if _is_int(count) and count > 0 and max(1, weight(seq)) * count > MAX_OUTPUT:
        raise too_big(f"repeating a value {count:,} times")


# a printf directive's width and precision (`%-10.2f`, `%*d`), and a str.format field's spec (`{:>10}`)
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")
_NESTED_FIELD = re.compile(r"\{[^{}]*\{")


def _check_format(fmt: str, style: str) -> None:
    """Refuse a format string whose widths would build a huge text (or are given as arguments)."""
    if style == "%":
        numbers = [n for match in _PERCENT.finditer(fmt) for n in match.groups() if n]
    else:
        if _NESTED_FIELD.search(fmt):
            raise BudgetExceeded("a format field whose width is itself a field ({:{}}); write the width as a number")
        numbers = [n for spec in _BRACE_SPEC.findall(fmt) for n in re.findall(r"\d+", spec)]
    if "*" in numbers:
        raise BudgetExceeded("a printf width given as an argument (%*d); write the width as a number")
    if any(int(n) > MAX_OUTPUT for n in numbers):
        raise too_big("a format width")


def _replaced_size(text: str, old: str, new: str) -> int:
    times = len(text) + 1 if not old else text.count(old)
    return len(text) + times * len(new)


def _joined_size(items: list, sep: str) -> int:
    return sum(weight(i) or 1 for i in items) + len(sep) * len(items)


def _width(value: Any) -> int:
    return len(value) if isinstance(value, str) else int(value) if _is_int(value) else 0


# what a call on a str method would build, for the methods that can grow a text fast
_STR_METHODS: dict[str, Callable[..., int]] = {
    "replace": lambda s, old="", new="", *_: _replaced_size(s, str(old), str(new)),
    "center": lambda s, width=0, *_: _width(width),
    "ljust": lambda s, width=0, *_: _width(width),
    "rjust": lambda s, width=0, *_: _width(width),
    "zfill": lambda s, width=0, *_: _width(width),
    "expandtabs": lambda s, tabsize=8, *_: len(s) + s.count("\t") * _width(tabsize),
}

# the same for the filters that can grow a text fast: estimate(value, *args, **kwargs)
_FILTERS: dict[str, Callable[..., int]] = {
    "replace": lambda s, old="", new="", *_, **__: _replaced_size(str(s), str(old), str(new)),
    "center": lambda s, width=80, *_, **__: _width(width),
    "indent": lambda s, width=4, *_, **__: len(str(s)) + (str(s).count("\n") + 1) * _width(width),
    "batch": lambda s, linecount=1, *_, **__: _width(linecount),
    "wordwrap": lambda s, width=79, *_, **__: 2 * len(str(s)),
}


def _bounded_range(*args: int) -> range:
    """``range`` with at most ``MAX_RANGE`` items."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise BudgetExceeded(f"range of {len(numbers):,} items; a template's range gives at most {MAX_RANGE:,}")
    return numbers


@pass_eval_context
def _finalize(_eval_ctx: Any, value: Any) -> Any:
    # every `{{ … }}` passes here; asking for the eval context also keeps Jinja from evaluating outputs
    # at compile time
    current = current_budget()
    if current is not None:
        current.take(len(value) if type(value) is str else weight(value))
    return value


def _wrap_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    passes = getattr(func, "jinja_pass_arg", None) is not None  # the context Jinja passes first
    estimate = _FILTERS.get(name)

    if estimate is None and name not in ("format", "join"):
        def bounded(*args: Any, **kwargs: Any) -> Any:
            charge()
            return checked(func(*args, **kwargs))

        return update_wrapper(bounded, func)

    def bounded(*args: Any, **kwargs: Any) -> Any:  # noqa: F811 - the one for filters that may grow a text
        charge()
        value = args[1 if passes else 0] if len(args) > passes else None
        if name == "format" and isinstance(value, str):
            _check_format(value, "%")
        elif name == "join" and value is not None:
            value = list(value)
            args = (*args[:passes], value, *args[passes + 1:])
            if _joined_size(value, str(args[passes + 1] if len(args) > passes + 1 else kwargs.get("d", ""))) > MAX_OUTPUT:
                raise too_big(f"the {name} filter's result")
        elif estimate is not None and estimate(*args[passes:], **kwargs) > MAX_OUTPUT:
            raise too_big(f"the {name} filter's result")
        return checked(func(*args, **kwargs))

    return update_wrapper(bounded, func)


def _literal_chars(body: list[nodes.Node]) -> int:
    """The literal text a body writes, less that of the loops, macros and call blocks in it (they meter their own)."""
    total, stack = 0, list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.TemplateData):
            total += len(node.data)
        elif not isinstance(node, (nodes.For, nodes.Macro, nodes.CallBlock)):
            stack.extend(node.iter_child_nodes())
    return total


class _Metered(NodeTransformer):
    """Charges each loop iteration and each macro or call-block run, with the literal text its body writes,
    and checks the size of every ``~`` concatenation. The charges are filters (``_step``, ``checked``):
    Jinja calls a filter directly, where a call would pass through the sandbox's slower ``call``."""

    def _meter(self, node: nodes.Node) -> None:
        charge = nodes.Filter(nodes.Const(_literal_chars(node.body)), "_step", [], [], None, None, lineno=node.lineno)
        node.body.insert(0, nodes.ExprStmt(charge, lineno=node.lineno))

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self.generic_visit(node)
        self._meter(node)
        if node.test is not None:  # an iteration the test skips is charged too
            node.test = nodes.Filter(node.test, "checked", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Macro(self, node: nodes.Node) -> nodes.Node:
        node = self.generic_visit(node)
        self._meter(node)
        return node

    visit_CallBlock = visit_Macro

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        return nodes.Filter(node, "checked", [], [], None, None, lineno=node.lineno)


def _step(chars: int) -> None:
    """A loop iteration or macro run that writes ``chars`` characters of literal text."""
    current = current_budget()
    if current is not None:
        current.take(chars)


def _checked_step(value: Any) -> Any:
    charge()
    return checked(value)


class BoundedSandbox(SandboxedEnvironment):
    """A sandboxed Jinja environment that renders under the current :func:`budget`."""

    intercepted_binops = frozenset(SandboxedEnvironment.default_binop_table)

    def __init__(self, **options: Any):
        super().__init__(optimized=False, finalize=_finalize, **options)
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)  # placeholder text is no use in a message, and is costly to make
        self.filters = _BoundedFilters(self.filters)
        dict.update(self.filters, _step=_step, checked=_checked_step)  # the meters themselves, unwrapped

    def add_short_filters(self, **filters: Callable[..., Any]) -> None:
        """Add filters whose result is never much longer than their value (``fa_digits``, ``jalali``): they
        run unmetered, as their value was checked where it was made and the loop calling them is charged."""
        dict.update(self.filters, filters)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _Metered().visit(super()._parse(source, name, filename))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        charge()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_times(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_format(left, "%")
        return checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - as Jinja's
        charge()
        if getattr(__obj, "__func__", None) in _PLAIN:  # the engine's own method, its result short (plain_call)
            return __obj(*args, **kwargs)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            estimate = _STR_METHODS.get(name)
            if estimate is not None and estimate(owner, *args, **kwargs) > MAX_OUTPUT:
                raise too_big(f"str.{name}")
            if name == "join":
                args = (list(args[0]),) if args else args
                if args and _joined_size(args[0], owner) > MAX_OUTPUT:
                    raise too_big("str.join")
        return checked(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format(value.__self__, "{}")
        return wrapped


_PLAIN: set[Callable[..., Any]] = set()


def plain_call(func: Callable[..., str]) -> Callable[..., str]:
    """Mark the method ``func`` (the engine's own, safe, returning a short string) to be called from a template
    straight, without Jinja's context and result checks (``link()`` of :mod:`engine.links` runs per message)."""
    _PLAIN.add(func)
    return func


class _BoundedFilters(dict):
    """The environment's filters, each wrapped to charge the budget and check what it builds."""

    def __init__(self, filters: dict[str, Callable[..., Any]]):
        super().__init__()
        self.update(filters)

    def __setitem__(self, name: str, func: Callable[..., Any]) -> None:
        super().__setitem__(name, _wrap_filter(name, func))

    def update(self, *args: Any, **kwargs: Any) -> None:
        for name, func in dict(*args, **kwargs).items():
            self[name] = func
