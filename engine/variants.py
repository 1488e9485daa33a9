"""A/B variants of a touch: parsing, the stable assignment, and the winner rule.

* Assignment: ``sha256(contact, sequence, touch)`` read as a number in [0, 1) picks a variant by its weight, so
  a retry, a recovery or a re-render never switches a contact's variant. Once a test has a winner, messages
  not yet assigned get the winner.
* The test (``ab: {metric: converted|clicked, min_per_variant, confidence}``): each variant's successes out of
  its sends give a Beta(1 + successes, 1 + failures) posterior; P(best) is the share of draws (a seeded
  simulation) in which the variant's draw is the highest. A variant wins when every variant has
  ``min_per_variant`` sends and its P(best) reaches ``confidence``.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Variant", "AbSpec", "parse_variants", "parse_ab", "assign", "p_best", "judge", "Standing",
           "MIN_VARIANTS", "MAX_VARIANTS", "METRICS"]

MIN_VARIANTS, MAX_VARIANTS = 2, 4
METRICS = ("converted", "clicked")
#: draws of the simulation behind P(best); with a fixed seed the same figures always give the same answer
DRAWS = 20_000
SEED = 19
Report = Callable[[str, str], None]


@dataclass(frozen=True)
class Variant:
    name: str
    template: str
    weight: float = 1.0


@dataclass(frozen=True)
class AbSpec:
    metric: str = "converted"
    min_per_variant: int = 200
    confidence: float = 0.95


def parse_variants(raw: Any, key: str, report: Report) -> tuple[Variant, ...]:
    """``variants: [{name, template, weight}]`` (2–4), or () with each problem reported."""
    if not isinstance(raw, list) or not MIN_VARIANTS <= len(raw) <= MAX_VARIANTS:
        report(key, f"must be a list of {MIN_VARIANTS} to {MAX_VARIANTS} variants, each {{name, template, weight}}")
        return ()
    out, names = [], set()
    for i, item in enumerate(raw):
        where = f"{key}[{i}]"
        if not isinstance(item, dict) or set(item) - {"name", "template", "weight"}:
            report(where, "must be a mapping with name, template and (optional) weight")
            continue
        name, template, weight = item.get("name"), item.get("template"), item.get("weight", 1)
        if not isinstance(name, str) or not name or name in names:
            report(f"{where}.name", f"{name!r}: give each variant its own name, e.g. story")
            continue
        if not isinstance(template, str) or not template:
            report(f"{where}.template", "is required: a path under templates_dir")
            continue
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            report(f"{where}.weight", f"{weight!r} must be a number above 0 (the default is 1)")
            continue
        names.add(name)
        out.append(Variant(name, template, float(weight)))
    return tuple(out) if len(out) == len(raw) else ()


def parse_ab(raw: Any, key: str, report: Report) -> AbSpec | None:
    """``ab: {metric, min_per_variant, confidence}``, or None with each problem reported."""
    if not isinstance(raw, dict) or set(raw) - {"metric", "min_per_variant", "confidence"}:
        report(key, "must be a mapping with metric (converted or clicked), min_per_variant and confidence")
        return None
    spec = AbSpec(raw.get("metric", "converted"), raw.get("min_per_variant", 200), raw.get("confidence", 0.95))
    if spec.metric not in METRICS:
        report(f"{key}.metric", f"{spec.metric!r}: use converted (by attribution) or clicked")
        return None
    if isinstance(spec.min_per_variant, bool) or not isinstance(spec.min_per_variant, int) or spec.min_per_variant < 1:
        report(f"{key}.min_per_variant", f"{spec.min_per_variant!r} must be a whole number of sends, e.g. 200")
        return None
    if isinstance(spec.confidence, bool) or not isinstance(spec.confidence, (int, float)) \
            or not 0.5 < spec.confidence < 1:
        report(f"{key}.confidence", f"{spec.confidence!r} must be a probability above 0.5 and below 1, e.g. 0.95")
        return None
    return spec


def assign(variants: tuple[Variant, ...] | list, contact_id: int, sequence: str, touch: str) -> Variant:
    """The contact's variant: a stable hash of (contact, sequence, touch), spread by the weights."""
    digest = hashlib.sha256(f"{contact_id}\x1f{sequence}\x1f{touch}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2 ** 64 * sum(v.weight for v in variants)
    for variant in variants:
        point -= variant.weight
        if point < 0:
            return variant
    return variants[-1]


def p_best(figures: dict[str, tuple[int, int]], draws: int = DRAWS, seed: int = SEED) -> dict[str, float]:
    """P(best) of each variant from its (sends, successes), by a seeded simulation of Beta posteriors."""
    rng = random.Random(seed)
    names = list(figures)
    wins = dict.fromkeys(names, 0)
    params = [(1 + s, 1 + max(0, n - s)) for n, s in (figures[name] for name in names)]
    for _ in range(draws):
        draw = [rng.betavariate(a, b) for a, b in params]
        wins[names[draw.index(max(draw))]] += 1
    return {name: wins[name] / draws for name in names}


@dataclass(frozen=True)
class Standing:
    """A test's state now: running (some variant has too few sends), winner or inconclusive."""

    state: str
    winner: str | None
    p_best: dict[str, float]


def judge(spec: AbSpec, figures: dict[str, tuple[int, int]]) -> Standing:
    """The winner rule: every variant has ``min_per_variant`` sends and one's P(best) reaches ``confidence``."""
    probs = p_best(figures)
    if any(n < spec.min_per_variant for n, _ in figures.values()):
        return Standing("running", None, probs)
    best = max(probs, key=probs.get)
    if probs[best] >= spec.confidence:
        return Standing("winner", best, probs)
    return Standing("inconclusive", None, probs)
