"""``only_if``: a touch's condition on what the contact did, parsed with line numbers and evaluated at claim time.

A condition is a mapping; several keys in one mapping all have to hold::

    only_if: {not: {clicked: value}}
    only_if: {or: [{opened: value}, {tags: vip}], attrs.city: تهران, event.data.total: 1200000}

Facts (``touch`` is a touch named before this one, or ``any``):

==================  ==============================================================
``clicked: T``      a person (not a link scanner) clicked a link of touch T
``opened: T``       touch T (an email) was opened by a person
``delivered: T``    the provider reported touch T delivered
``replied: any``    the contact replied since enrolling (``replied: true`` too)
``tags: NAME``      the contact has the tag (a list: every one of them)
``attrs.NAME: V``   the contact's column NAME is V (a list: one of them; ``true``: set at all)
``event.data.N: V`` the triggering event's data field N is V (same forms)
==================  ==============================================================

A parsed condition is plain JSON (stored with the sequence version): ``["fact", name, arg, value]``,
``["and", [...]]``, ``["or", [...]]``, ``["not", c]``. :func:`holds` answers whether it is true for a
:class:`engine.facts.Facts` view of one enrollment, and :func:`failed_fact` names the fact that made it
false, for the skip reason.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable

__all__ = ["ENGAGEMENT_FACTS", "parse_condition", "holds", "failed_fact", "describe", "atoms", "never_true",
           "max_sends_on_a_path"]

#: facts about one touch (or ``any``) of the same enrollment
ENGAGEMENT_FACTS = ("clicked", "opened", "delivered", "replied")
ANY = "any"
#: where a problem is reported: ``report(key_path, message)``
Report = Callable[[str, str], None]


def parse_condition(raw: Any, key: str, report: Report, earlier: list[str], channels: dict[str, str]) -> list | None:
    """The condition written at ``key``, or None (each problem reported with its key path).

    ``earlier``: the names of the touches before this one; ``channels``: every touch's channel by name.
    """
    if not isinstance(raw, dict) or not raw:
        report(key, "must be a mapping of facts, e.g. {not: {clicked: value}} or {tags: vip}")
        return None
    parts = [_one(name, value, f"{key}.{name}", report, earlier, channels) for name, value in raw.items()]
    if any(p is None for p in parts):
        return None
    return parts[0] if len(parts) == 1 else ["and", parts]


def _one(name: Any, value: Any, key: str, report: Report, earlier: list[str], channels: dict[str, str]) -> list | None:
    name = str(name)
    if name in ("and", "or"):
        if not isinstance(value, list) or len(value) < 2:
            report(key, f"{name} takes a list of two or more conditions, e.g. {name}: [{{clicked: value}}, {{tags: vip}}]")
            return None
        parts = [parse_condition(v, f"{key}[{i}]", report, earlier, channels) for i, v in enumerate(value)]
        return None if any(p is None for p in parts) else [name, parts]
    if name == "not":
        inner = parse_condition(value, key, report, earlier, channels)
        return None if inner is None else ["not", inner]
    if name in ENGAGEMENT_FACTS:
        touch = ANY if value is True or value == ANY or (name == "replied" and value is None) else value
        if touch != ANY:
            if not isinstance(touch, str) or touch not in channels:
                report(key, f"{touch!r} is not a touch of this sequence; name one of {', '.join(earlier) or '(none)'} "
                            "or write any")
                return None
            if touch not in earlier:
                report(key, f"touch {touch!r} comes at or after this one, so it has not been sent when this "
                            f"condition is checked; name an earlier touch ({', '.join(earlier) or 'none'}) or any")
                return None
            if name == "opened" and channels[touch] == "sms":
                report(key, f"an SMS is never opened (touch {touch!r} is an SMS), so this can never be true; "
                            "use clicked or delivered")
                return None
        if name == "replied" and touch != ANY:
            report(key, "a reply is not to one touch; write replied: any")
            return None
        return ["fact", name, touch, True]
    if name == "tags":
        tags = value if isinstance(value, list) else [value]
        if not tags or not all(isinstance(t, str) and t for t in tags):
            report(key, f"{value!r}: give a tag or a list of tags, e.g. tags: vip")
            return None
        return ["fact", "tags", None, sorted(tags)]
    for prefix, fact in (("attrs.", "attrs"), ("event.data.", "event")):
        if name.startswith(prefix) and len(name) > len(prefix):
            if not _is_value(value):
                report(key, f"{value!r}: give a value, a list of values, or true (set at all)")
                return None
            return ["fact", fact, name[len(prefix):], value]
    report(key, f"{name!r} is not a fact; use {', '.join(ENGAGEMENT_FACTS)}, tags, attrs.NAME, event.data.NAME, "
                "and, or, not")
    return None


def _is_value(value: Any) -> bool:
    scalar = (str, int, float)
    return value is True or (isinstance(value, scalar) and not isinstance(value, bool)) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, scalar) and not isinstance(v, bool) for v in value))


def _fact_true(fact: list, facts: Any) -> bool:
    _, name, arg, value = fact
    if name in ENGAGEMENT_FACTS:
        return facts.did(name, arg)
    if name == "tags":
        return set(value) <= facts.tags()
    found = facts.attr(arg) if name == "attrs" else facts.event_data(arg)
    if value is True:
        return found not in (None, "")
    wanted = value if isinstance(value, list) else [value]
    return found is not None and str(found) in {str(v) for v in wanted}


def holds(cond: list, facts: Any) -> bool:
    """Whether ``cond`` is true of ``facts`` (anything with did, tags, attr and event_data)."""
    kind = cond[0]
    if kind == "fact":
        return _fact_true(cond, facts)
    if kind == "not":
        return not holds(cond[1], facts)
    results = (holds(c, facts) for c in cond[1])
    return all(results) if kind == "and" else any(results)


def failed_fact(cond: list, facts: Any) -> str:
    """Why ``cond`` is false of ``facts``, as a marketer reads it: ``clicked value`` (a ``not`` whose fact is
    true), ``not tags vip`` (a fact that is false)."""
    kind = cond[0]
    if kind == "fact":
        return f"not {describe(cond)}"
    if kind == "not":
        return describe(cond[1])
    if kind == "and":
        return next(failed_fact(c, facts) for c in cond[1] if not holds(c, facts))
    return " nor ".join(failed_fact(c, facts) for c in cond[1])


def describe(cond: list) -> str:
    """A condition in words: ``clicked value``, ``tags vip``, ``attrs.city = تهران``."""
    kind = cond[0]
    if kind == "fact":
        _, name, arg, value = cond
        if name in ENGAGEMENT_FACTS:
            return f"{name} {arg}"
        if name == "tags":
            return f"tags {', '.join(value)}"
        field = f"attrs.{arg}" if name == "attrs" else f"event.data.{arg}"
        return f"{field} set" if value is True else f"{field} = {value}"
    if kind == "not":
        return f"not {describe(cond[1])}"
    return f" {kind} ".join(f"({describe(c)})" for c in cond[1])


def atoms(cond: list | None) -> list[tuple]:
    """The distinct facts a condition reads, as hashable tuples."""
    if cond is None:
        return []
    if cond[0] == "fact":
        _, name, arg, value = cond
        return [(name, arg, tuple(value) if isinstance(value, list) else value)]
    inner = [cond[1]] if cond[0] == "not" else cond[1]
    return list(dict.fromkeys(a for c in inner for a in atoms(c)))


def _holds_assumed(cond: list, truth: dict[tuple, bool]) -> bool:
    kind = cond[0]
    if kind == "fact":
        _, name, arg, value = cond
        return truth.get((name, arg, tuple(value) if isinstance(value, list) else value), False)
    if kind == "not":
        return not _holds_assumed(cond[1], truth)
    results = [_holds_assumed(c, truth) for c in cond[1]]
    return all(results) if kind == "and" else any(results)


def _assignments(found: list[tuple]) -> Iterable[dict[tuple, bool]]:
    for values in itertools.product((False, True), repeat=len(found)):
        yield dict(zip(found, values))


def never_true(cond: list, false: frozenset[str] = frozenset()) -> bool:
    """Whether no assignment of its facts makes ``cond`` true (e.g. ``and: [{tags: a}, {not: {tags: a}}]``);
    the facts named in ``false`` are taken as false (``replied`` when a reply ends the run)."""
    found = [a for a in atoms(cond) if a[0] not in false]
    if len(found) > 12:  # 4,096 assignments: beyond that the check is not worth its time
        return False
    return not any(_holds_assumed(cond, truth) for truth in _assignments(found))


def max_sends_on_a_path(touches: list[tuple[str, list | None, tuple | None]]) -> tuple[int, list[str]]:
    """The most touches any one contact can be sent, and the touches of that path.

    ``touches``: (name, only_if, wait) in order, ``wait`` an ``(event, touch, sends_at_timeout)`` triple.
    A fact about a touch the path did not send is false; every other fact may go either way.
    """
    found = list(dict.fromkeys(a for _, cond, _w in touches for a in atoms(cond)))
    for _, _, wait in touches:
        if wait is not None:
            found.append((wait[0], wait[1], True))
    found = list(dict.fromkeys(found))
    best: tuple[int, list[str]] = (0, [])
    if len(found) > 12:
        return len(touches), [t[0] for t in touches]
    for truth in _assignments(found):
        sent: list[str] = []
        for name, cond, wait in touches:
            # what a touch did is false when the path did not send it
            seen = {a: v and (a[0] not in ENGAGEMENT_FACTS or a[1] in (ANY, None) or a[1] in sent)
                    for a, v in truth.items()}
            if wait is not None and not seen.get((wait[0], wait[1], True)) and not wait[2]:
                continue
            if cond is not None and not _holds_assumed(cond, seen):
                continue
            sent.append(name)
        if len(sent) > best[0]:
            best = (len(sent), sent)
    return best
