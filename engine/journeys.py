"""Where a sequence file's journey keys (``only_if``, ``after: {event}``, ``variants``, ``ab``) meet the loader.

:mod:`engine.sequences` calls these hooks while it reads the touches; each reports its problems on the
``YamlDoc`` with the key path, so ``validate`` prints them as ``FILE:LINE``. The rules themselves live in
:mod:`engine.conditions`, :mod:`engine.waits` and :mod:`engine.variants`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator

from .conditions import describe, max_sends_on_a_path, never_true, parse_condition
from .variants import AbSpec, Variant, parse_ab, parse_variants
from .waits import EventWait, parse_wait
from .errors import Problem
from .yamlfile import YamlDoc, join_path

__all__ = ["MAX_SENDS_ON_A_PATH", "MAX_BRANCHED_TOUCHES", "max_touches", "touch_condition", "touch_wait",
           "touch_variants", "check_paths", "check_exits", "each_template", "variant_problems", "trim_json", "branches"]

#: 3–5 honest follow-ups: the most messages one contact may be sent on any path through a sequence
MAX_SENDS_ON_A_PATH = 5
#: a sequence that branches (only_if, event waits) may hold more touches, as long as no path sends more than 5
MAX_BRANCHED_TOUCHES = 10


def branches(item: Any) -> bool:
    """Whether a raw touch mapping is sent on some paths only."""
    return isinstance(item, dict) and ("only_if" in item or isinstance(item.get("after"), dict))


def max_touches(raw: list) -> int:
    return MAX_BRANCHED_TOUCHES if any(branches(item) for item in raw) else MAX_SENDS_ON_A_PATH


def _context(item: dict, raw: list) -> tuple[list[str], dict[str, str]]:
    """The names of the touches before ``item``, and every touch's channel by name."""
    index = next(i for i, x in enumerate(raw) if x is item)
    names = [str(x.get("name")) for x in raw if isinstance(x, dict)]
    earlier = [str(x.get("name")) for x in raw[:index] if isinstance(x, dict)]
    channels = {str(x.get("name")): str(x.get("channel")) for x in raw if isinstance(x, dict)}
    return [n for n in earlier if n in names], channels


def touch_condition(doc: YamlDoc, key: str, item: dict, raw: list) -> list | None:
    if "only_if" not in item:
        return None
    where = join_path(key, "only_if")
    earlier, channels = _context(item, raw)
    cond = parse_condition(item["only_if"], where, doc.problem, earlier, channels)
    if cond is not None and never_true(cond):
        doc.problem(where, f"can never be true ({describe(cond)}), so the touch is never sent; fix or remove it")
        return None
    return cond


def check_exits(doc: YamlDoc, touches: list, exit_on: tuple[str, ...]) -> None:
    """A condition that needs a reply can never be true when a reply ends the run (``exit_on``)."""
    if "replied" not in exit_on:
        return
    for touch in touches:
        if touch.only_if is not None and never_true(touch.only_if, frozenset({"replied"})):
            doc.problem(join_path(join_path("touches", touch.index), "only_if"),
                        "needs a reply, but replied is in exit_on (the default), so the run has ended before "
                        "this touch; take replied out of exit_on or out of the condition")
        if touch.wait is not None and touch.wait.event == "replied" and touch.wait.otherwise != "send":
            doc.problem(join_path(join_path("touches", touch.index), "after.event"),
                        "waits for a reply, but replied is in exit_on (the default), so the run ends instead; "
                        "take replied out of exit_on")


def touch_wait(doc: YamlDoc, key: str, item: dict, raw: list) -> EventWait | None:
    earlier, channels = _context(item, raw)
    return parse_wait(item["after"], join_path(key, "after"), doc.problem, earlier, channels)


def touch_variants(doc: YamlDoc, key: str, item: dict) -> tuple[tuple[Variant, ...], AbSpec | None]:
    variants: tuple[Variant, ...] = ()
    if "variants" in item:
        variants = parse_variants(item["variants"], join_path(key, "variants"), doc.problem)
        if "template" in item:
            doc.problem(join_path(key, "template"), "a touch with variants takes its templates from them; "
                                                    "remove template")
    ab = None
    if "ab" in item:
        if "variants" not in item:
            doc.problem(join_path(key, "ab"), "an A/B test needs variants on this touch")
        else:
            ab = parse_ab(item["ab"], join_path(key, "ab"), doc.problem)
    return variants, ab


def check_paths(doc: YamlDoc, touches: list) -> None:
    """At most 5 sends on any path a contact can take (only for sequences that branch)."""
    if not any(t.only_if is not None or t.wait is not None for t in touches):
        return
    wait = lambda t: (t.wait.event, t.wait.touch, t.wait.otherwise == "send") if t.wait else None  # noqa: E731
    most, path = max_sends_on_a_path([(t.name, t.only_if, wait(t)) for t in touches])
    if most > MAX_SENDS_ON_A_PATH:
        doc.problem("touches", f"a contact can be sent {most} touches on one path ({', '.join(path)}); at most "
                               f"{MAX_SENDS_ON_A_PATH} on any path (3–5 honest follow-ups): add only_if so the "
                               "branches exclude each other, or remove touches")


def trim_json(touches: list[dict]) -> None:
    """Leave a touch's journey keys out of its stored definition when it has none (plain touches stay as they were)."""
    for touch in touches:
        for key in ("only_if", "wait", "ab"):
            if touch.get(key) is None:
                touch.pop(key, None)
        if not touch.get("variants"):
            touch.pop("variants", None)


def each_template(touches: list) -> Iterator[Any]:
    """Each touch as ``validate`` renders it: a touch with variants once per variant's template."""
    for touch in touches:
        if touch.variants:
            yield from (replace(touch, template=v.template) for v in touch.variants)
        else:
            yield touch


def variant_problems(config: Any, seq: Any, seq_file: str) -> list[Problem]:
    """An urgent touch's variants must all speak of the real offer (honest urgency holds for each of them)."""
    problems = []
    for touch in seq.touches:
        if not (touch.urgent and touch.variants):
            continue
        for i, variant in enumerate(touch.variants):
            try:
                used = config.renderer.variables(variant.template)
            except Exception:  # noqa: BLE001 - a template that does not load is reported by the template check
                continue
            if "offer" not in used:
                problems.append(Problem(seq_file, f"touches[{touch.index}].variants[{i}].template",
                                        f"variant {variant.name!r} of urgent touch {touch.name!r} never uses `offer` "
                                        f"({variant.template}); every variant of an urgent touch must speak of "
                                        "offer.expires_at, offer.time_left or offer.stock_left, or drop urgent: true",
                                        touch.line))
    return problems
