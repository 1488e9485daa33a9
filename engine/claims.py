"""The honest-urgency lint: scarcity and deadline claims written as literal text in a template.

A claim is honest only when its number comes from ``offer`` (``{{ offer.time_left | duration }}``,
``{{ offer.stock_left }}``), which the engine keeps true. What Jinja prints is left out; in the text
that remains, a claim is

* a count said to be all there is: ``only 3``, ``last 2``, ``فقط ۳``, ``3 left``, ``۵ عدد باقی``;
* a time or quantity in a clause that counts down: ``24 hours left``, ``ends in 2 days``,
  ``تا ۲ روز دیگر``, ``۴۸ ساعت مانده``;
* a deadline without a number: ``today only``, ``ends tonight``, ``فقط امروز``.

A number with a unit in a clause that does not count down is a policy, not a claim: «تعویض سایز تا ۷ روز
رایگان» (free size exchange within 7 days) and ``free returns within 30 days`` pass. A touch may waive one
phrase with its reason (``allow_claims: [{text: "۷ روز", why: "return policy"}]``): a claim is waived when
the phrase overlaps it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import Problem
from .text import ascii_digits

__all__ = ["Claim", "claim_problems", "find_claims", "literal_urgency", "waiver_matches"]

_UNIT = (r"hours?|hrs?|days?|minutes?|mins?|weeks?|nights?|items?|pieces?|units?|seats?|spots?|"
         r"ساعت|روز|دقیقه|هفته|شب|عدد|نفر|جای|تا(?=\s)")
#: a count said to be all there is, whatever the clause says around it
_SCARCITY = re.compile(
    r"(?:only|just|last|final)\s+\d+|(?:فقط|تنها|آخرین)\s*\d+"
    r"|\d+\s*(?:left|remaining|to go|باقی|مانده)",
    re.IGNORECASE)
#: a time or quantity: a claim only in a clause that counts down
_AMOUNT = re.compile(rf"\d+\s*(?:%\s*)?(?:{_UNIT})", re.IGNORECASE)
_COUNTDOWN = re.compile(
    r"\b(?:left|remaining|hurry|ends?|ending|expires?|expiring|last|only|just|before it'?s gone|countdown)\b"
    r"|باقی|مانده|دیگر|فقط|تنها|پایان|تمام|آخرین|عجله|فرصت|مهلت|منقضی",
    re.IGNORECASE)
#: a deadline said without a number
_DEADLINE = re.compile(r"\b(?:today only|tonight only|ends (?:today|tonight)|last day)\b|فقط امروز|امروز تمام|"
                       r"آخرین روز|فقط تا امشب", re.IGNORECASE)
_JINJA_CODE = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)
_HTML_TAG = re.compile(r"<[^>\n]*>")
#: where one clause ends and the next begins
_CLAUSE_END = re.compile(r"[.!?؟;؛,،:\n]|\s[-–—]\s")


@dataclass(frozen=True)
class Claim:
    """A literal claim at ``line`` (1-based) of a template: its text and where it sits in that line."""

    line: int
    text: str
    start: int
    end: int


def _blank(match: re.Match) -> str:
    # keeps the line breaks (and every other position) of what it removes
    return re.sub(r"[^\n]", " ", match.group(0))


def _text_lines(source: str) -> list[str]:
    """The template's lines with Jinja and HTML tags blanked out and digits read as ASCII."""
    plain = _HTML_TAG.sub(_blank, _JINJA_CODE.sub(_blank, source))
    return ascii_digits(plain).split("\n")


def _clauses(line: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in _CLAUSE_END.finditer(line):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(line)))
    return spans


def find_claims(source: str) -> list[Claim]:
    """Every literal scarcity or deadline claim in a template's text, in order."""
    found: list[Claim] = []
    for lineno, line in enumerate(_text_lines(source), start=1):
        taken: list[tuple[int, int]] = []

        def add(start: int, end: int) -> None:
            if not any(s < end and start < e for s, e in taken):
                taken.append((start, end))

        for match in _SCARCITY.finditer(line):
            add(match.start(), match.end())
        for match in _DEADLINE.finditer(line):
            add(match.start(), match.end())
        for start, end in _clauses(line):
            clause = line[start:end]
            if _COUNTDOWN.search(clause):
                for match in _AMOUNT.finditer(clause):
                    add(start + match.start(), start + match.end())
        for start, end in sorted(taken):
            found.append(Claim(lineno, line[start:end].strip(), start, end))
    return found


def literal_urgency(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` of each literal claim in a template (see :func:`find_claims`)."""
    return [(c.line, c.text) for c in find_claims(source)]


def waiver_matches(source: str, phrase: str) -> list[tuple[int, int, int]]:
    """Where ``phrase`` (an ``allow_claims`` text) occurs in the template's text: ``(line, start, end)``."""
    words = ascii_digits(phrase).split()
    if not words:
        return []
    pattern = re.compile(r"\s+".join(re.escape(w) for w in words), re.IGNORECASE)
    return [(lineno, m.start(), m.end()) for lineno, line in enumerate(_text_lines(source), start=1)
            for m in pattern.finditer(line)]


def claim_problems(source: str, tpl_path: str, seq_file: str, sequence: str, touch) -> list[Problem]:
    """``validate``'s problems for one touch's template: each claim its ``allow_claims`` does not waive
    (at the template's FILE:LINE), and each waiver that matches no claim (a warning at the sequence file)."""
    waivers = [(text, why, waiver_matches(source, text)) for text, why in touch.allow_claims]
    used = set()
    problems = []
    for claim in find_claims(source):
        hit = next((text for text, _, spans in waivers
                    if any(line == claim.line and s < claim.end and claim.start < e for line, s, e in spans)), None)
        if hit is not None:
            used.add(hit)
            continue
        where = "an urgent template" if touch.urgent else "a template"
        problems.append(Problem(tpl_path, "", f"literal countdown or quantity {claim.text!r} in {where} "
                                              f"({sequence} touch {touch.name!r}): a deadline or stock claim must "
                                              "come from the offer, e.g. {{ offer.time_left | duration }} or "
                                              "{{ offer.stock_left | fa_digits }}; if it is not a countdown (a "
                                              "return policy), waive it on the touch with allow_claims: "
                                              f"[{{text: \"{claim.text}\", why: \"...\"}}]", claim.line))
    for text, _, _ in waivers:
        if text not in used:
            problems.append(Problem(seq_file, f"touches[{touch.index}].allow_claims",
                                    f"{text!r} waives no claim in {touch.template}; remove it (the lint only "
                                    "flags countdowns and stock claims)", touch.line, warning=True))
    return problems
