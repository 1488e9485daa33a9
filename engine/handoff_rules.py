"""A sequence's ``handoff:`` key: when a lead goes to sales, and to which rep.

::

    handoff:
      when: {any: [replied, {score: 30}, {clicked: last-chance}]}
      assign: round_robin          # or {by: attrs.city}: the rep whose match has the lead's city

A condition is ``replied`` (the contact replied), ``clicked`` or ``opened`` (any touch of this sequence),
``{clicked: TOUCH}`` / ``{opened: TOUCH}`` (that touch), or ``{score: N}`` (the lead score reached N).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .errors import Problem
from .yamlfile import YamlDoc, join_path

__all__ = ["Condition", "HandoffRule", "parse_handoff"]

FACT_CONDITIONS = ("replied", "clicked", "opened")
HANDOFF_KEYS = ("when", "assign")
EXAMPLE = "handoff: {when: {any: [replied, {score: 30}, {clicked: last-chance}]}, assign: round_robin}"


@dataclass(frozen=True)
class Condition:
    """``kind`` replied, clicked, opened or score; ``touch`` for a click or open of one touch; ``score`` for score."""

    kind: str
    touch: str | None = None
    score: float | None = None

    def describe(self) -> str:
        if self.kind == "score":
            return f"score >= {self.score:g}"
        return f"{self.kind} {self.touch}" if self.touch else self.kind


@dataclass(frozen=True)
class HandoffRule:
    conditions: tuple[Condition, ...]
    #: None: weighted round robin over the team; else a contact attribute (``city`` for ``attrs.city``)
    assign_by: str | None = None


def _condition(doc: YamlDoc, key: str, raw: Any, touches: set[str]) -> Condition | None:
    if isinstance(raw, str):
        if raw in FACT_CONDITIONS:
            return Condition(raw)
        doc.problem(key, f"{raw!r} is not a condition; use replied, clicked, opened, {{score: 30}} or "
                         "{clicked: TOUCH}")
        return None
    if isinstance(raw, dict) and len(raw) == 1:
        (kind, value), = raw.items()
        if kind == "score":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                doc.problem(join_path(key, "score"), f"{value!r} must be a number of points above 0, e.g. {{score: 30}}")
                return None
            return Condition("score", score=float(value))
        if kind in ("clicked", "opened"):
            if value not in touches:
                doc.problem(join_path(key, kind), f"{value!r} is not a touch of this sequence (touches: "
                                                  f"{', '.join(sorted(touches)) or 'none'})")
                return None
            return Condition(kind, touch=value)
    doc.problem(key, "a condition is replied, clicked, opened, {score: N}, {clicked: TOUCH} or {opened: TOUCH}")
    return None


def parse_handoff(doc: YamlDoc, raw: Any, touches: set[str]) -> HandoffRule | None:
    """``handoff:`` → :class:`HandoffRule` (problems recorded on ``doc``); None when not written or wrong."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        doc.problem("handoff", f"must be a mapping, e.g. {EXAMPLE}")
        return None
    for extra in sorted(set(raw) - set(HANDOFF_KEYS), key=str):
        doc.problem(join_path("handoff", str(extra)), f"unknown key; handoff takes {', '.join(HANDOFF_KEYS)}")
    when = raw.get("when")
    if isinstance(when, dict) and set(when) == {"any"} and isinstance(when["any"], list) and when["any"]:
        items = when["any"]
    else:
        doc.problem("handoff.when", "must be {any: [CONDITION, ...]}, e.g. {any: [replied, {score: 30}]}")
        return None
    conditions = [_condition(doc, join_path("handoff.when.any", i), item, touches) for i, item in enumerate(items)]
    assign = raw.get("assign", "round_robin")
    assign_by = None
    if isinstance(assign, dict) and set(assign) == {"by"} and isinstance(assign["by"], str) \
            and assign["by"].startswith("attrs.") and len(assign["by"]) > 6:
        assign_by = assign["by"][len("attrs."):]
    elif assign != "round_robin":
        doc.problem("handoff.assign", f"{assign!r}: use round_robin or {{by: attrs.city}} (a contact attribute)")
        return None
    if None in conditions:
        return None
    return HandoffRule(conditions=tuple(conditions), assign_by=assign_by)


def setup_problems(sequences: dict, settings) -> list:
    """What a sequence's handoff needs of the settings and templates: a sales team, a ``secret_key`` (the
    rep's page link is signed with it) and the ``_sales`` templates of the channels the reps have."""
    ruled = [seq for seq in sequences.values() if seq.handoff is not None and seq.file is not None]
    if not ruled:
        return []
    found = []
    settings_file = os.path.relpath(settings.path)
    if not settings.sales.team:
        found += [Problem(os.path.relpath(seq.file), "handoff",
                          f"this sequence hands leads to sales, but {settings_file} has no sales.team; add sales: "
                          "{team: [{name: Sara, phone: '+989121234567'}]}", _line(seq.file, "handoff:"))
                  for seq in ruled]
    if not settings.secret_key:
        found.append(Problem(settings_file, "secret_key", "sequences hand leads to sales: set secret_key (the "
                                                          "reps' lead page links are signed with it)"))
    for channel, address in (("sms", "phone"), ("email", "email")):
        path = settings.templates_dir / "_sales" / f"notify.{channel}.j2"
        if any(getattr(rep, address) for rep in settings.sales.team) and not path.is_file():
            found.append(Problem(settings_file, "sales.team", f"a rep has a{'n' if channel == 'email' else ''} "
                                 f"{address}, so {path} must exist (the message telling them of a lead); copy it "
                                 "from the project's templates/_sales/"))
    return found


def public_url_warning(sequences: dict, settings) -> list:
    """A warning (``validate``) when leads are handed off but the rep's page link has no host to name."""
    if not any(seq.handoff is not None for seq in sequences.values()) or \
            os.environ.get("FOLLOWUP_PUBLIC_URL") or (settings.service or {}).get("public_url"):
        return []
    return [Problem(os.path.relpath(settings.path), "service.public_url", "the message telling a rep of a lead "
                    "links to /leads/... without a host; set service.public_url (e.g. https://f.shop.example)",
                    warning=True)]


def _line(path, prefix: str) -> int | None:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith(prefix):
            return number
    return None


__all__ += ["setup_problems", "public_url_warning"]
