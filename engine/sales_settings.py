"""The ``scoring`` and ``sales`` settings: points per fact for the lead score, and who sales are.

::

    scoring:
      clicked: 5          # points per fact (defaults: clicked 5, replied 20, opened 1, converted 0)
      replied: 20
      opened: 1
      converted: 0
      half_life: 14d      # a fact's points halve every half_life
    sales:
      team:
        - {name: Sara, phone: "+989121234567", email: sara@shop.example, weight: 2, match: {city: تهران}}
        - {name: Reza, phone: "+989351234567"}
      objections: [price, timing, competitor, trust, not_interested, no_answer]
      page_expires_after: 30d   # how long a rep's lead page link works
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from .addresses import normalize_email, normalize_phone
from .link_settings import setting_duration, setting_mapping
from .yamlfile import YamlDoc, join_path

__all__ = ["ScoringSettings", "SalesSettings", "Rep", "FACTS", "DEFAULT_OBJECTIONS", "parse_scoring", "parse_sales"]

#: the facts a score counts, with their default points
FACTS = MappingProxyType({"clicked": 5.0, "replied": 20.0, "opened": 1.0, "converted": 0.0})
DEFAULT_OBJECTIONS = ("price", "timing", "competitor", "trust", "not_interested", "no_answer")
SCORING_KEYS = (*FACTS, "half_life")
SALES_KEYS = ("team", "objections", "page_expires_after")
REP_KEYS = ("name", "phone", "email", "weight", "match")


@dataclass(frozen=True)
class ScoringSettings:
    """Points per fact and the half-life of every fact's points."""

    points: dict[str, float] = field(default_factory=lambda: dict(FACTS))
    half_life: timedelta = timedelta(days=14)


@dataclass(frozen=True)
class Rep:
    """One sales rep: where they are told of a lead, their share of leads, and the leads they take."""

    name: str
    phone: str | None = None
    email: str | None = None
    weight: int = 1
    #: contact attributes this rep takes (``{city: تهران}``); empty: any lead
    match: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SalesSettings:
    team: tuple[Rep, ...] = ()
    objections: tuple[str, ...] = DEFAULT_OBJECTIONS
    page_expires_after: timedelta = timedelta(days=30)

    def rep(self, name: str) -> Rep | None:
        return next((r for r in self.team if r.name == name), None)


def parse_scoring(doc: YamlDoc, raw: Any) -> ScoringSettings:
    """``scoring:`` → :class:`ScoringSettings` (problems recorded on ``doc``)."""
    raw = setting_mapping(doc, "scoring", raw, SCORING_KEYS, "{clicked: 5, replied: 20, opened: 1, half_life: 14d}")
    points = dict(FACTS)
    for fact in FACTS:
        value = raw.get(fact)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1000 <= value <= 1000:
            doc.problem(join_path("scoring", fact), f"{value!r} must be a number of points from -1000 to 1000, "
                                                    f"e.g. {fact}: {int(FACTS[fact])}")
            continue
        points[fact] = float(value)
    half_life = setting_duration(doc, "scoring.half_life", raw.get("half_life"), ScoringSettings.half_life)
    return ScoringSettings(points=points, half_life=half_life)


def _rep(doc: YamlDoc, key: str, raw: Any, region: str) -> Rep | None:
    if not isinstance(raw, dict):
        doc.problem(key, "must be a mapping such as {name: Sara, phone: '+989121234567', email: sara@shop.example}")
        return None
    for extra in sorted(set(raw) - set(REP_KEYS), key=str):
        doc.problem(join_path(key, str(extra)), f"unknown key; a rep takes {', '.join(REP_KEYS)}")
    name = raw.get("name")
    ok = True
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        doc.problem(join_path(key, "name"), "every rep needs a name (1 to 100 characters)")
        ok = False
    phone = email = None
    if raw.get("phone") is not None:
        try:
            phone = normalize_phone(str(raw["phone"]), region)
        except ValueError as err:
            doc.problem(join_path(key, "phone"), f"{err}; write it like +989121234567")
            ok = False
    if raw.get("email") is not None:
        try:
            email = normalize_email(str(raw["email"]))
        except ValueError as err:
            doc.problem(join_path(key, "email"), f"{err}; write it like sara@shop.example")
            ok = False
    if ok and phone is None and email is None:
        doc.problem(key, f"rep {name!r} needs a phone or an email to be told of leads")
        ok = False
    weight = raw.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100:
        doc.problem(join_path(key, "weight"), f"{weight!r} must be a whole number from 1 to 100 (their share of leads)")
        ok = False
    match = raw.get("match") or {}
    if not isinstance(match, dict) or not all(isinstance(v, (str, int)) for v in match.values()):
        doc.problem(join_path(key, "match"), "must map contact attributes to values, e.g. {city: تهران}")
        ok = False
    if not ok:
        return None
    return Rep(name=name.strip(), phone=phone, email=email, weight=weight,
               match={str(k): str(v) for k, v in match.items()})


def parse_sales(doc: YamlDoc, raw: Any, region: str) -> SalesSettings:
    """``sales:`` → :class:`SalesSettings` (problems recorded on ``doc``)."""
    raw = setting_mapping(doc, "sales", raw, SALES_KEYS, "{team: [{name: Sara, phone: '+989121234567'}]}")
    team_raw = raw.get("team") or []
    if not isinstance(team_raw, list):
        doc.problem("sales.team", "must be a list of reps, e.g. [{name: Sara, phone: '+989121234567'}]")
        team_raw = []
    team: list[Rep] = []
    for i, item in enumerate(team_raw):
        rep = _rep(doc, join_path("sales.team", i), item, region)
        if rep is not None and any(r.name == rep.name for r in team):
            doc.problem(join_path(join_path("sales.team", i), "name"),
                        f"{rep.name!r} is named twice; names must be unique")
        elif rep is not None:
            team.append(rep)
    objections = raw.get("objections", list(DEFAULT_OBJECTIONS))
    if (not isinstance(objections, list) or not objections
            or not all(isinstance(o, str) and 0 < len(o) <= 100 for o in objections)):
        doc.problem("sales.objections", "must be a list of short texts, e.g. [price, timing, competitor]")
        objections = list(DEFAULT_OBJECTIONS)
    expires_after = setting_duration(doc, "sales.page_expires_after", raw.get("page_expires_after"),
                                     SalesSettings.page_expires_after)
    return SalesSettings(team=tuple(team), objections=tuple(dict.fromkeys(objections)),
                         page_expires_after=expires_after)
