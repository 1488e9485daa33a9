"""A/B tests in the database: per-variant figures, the worker's evaluation (at most once a minute), promote, reset.

A touch's test has one ``ab_tests`` row once it is first evaluated, promoted or reset. Its ``started_at``
is where its figures begin (``reset`` moves it); ``winner`` set means new assignments go to that variant
(:class:`engine.journey_checks.JourneyChecks`). A winner found by the rule, or promoted by hand, appends an
``ab_winner`` row to the delivery log.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, ContextManager

import sqlalchemy as sa

from .clock import to_utc
from .store import append_log
from .store.journeys import variant_figures
from .models import AbTest
from .variants import AbSpec, judge

__all__ = ["variant_report", "figures", "evaluate", "evaluate_due", "promote", "reset", "standing", "EVERY",
           "AbSchedule"]

ab_t = AbTest.__table__
#: the worker evaluates a test at most this often
EVERY = timedelta(minutes=1)


def _row(conn: sa.Connection, sequence: str, touch: str) -> dict | None:
    row = conn.execute(sa.select(ab_t).where(ab_t.c.sequence == sequence, ab_t.c.touch == touch)).mappings().first()
    return dict(row) if row else None


def figures(conn: sa.Connection, sequence: str, touch: str, names: list[str],
            since: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Per variant since the test (re)started: sent, delivered, clicks, conversions, revenue."""
    if since is None:
        row = _row(conn, sequence, touch)
        since = row["started_at"] if row else datetime(1970, 1, 1, tzinfo=timezone.utc)
    out = {n: {"sent": 0, "delivered": 0, "clicks": 0, "conversions": 0, "revenue": 0.0} for n in names}
    for variant, sent, delivered, clicks, conversions, revenue in variant_figures(conn, sequence, touch, since):
        if variant in out:
            out[variant] = {"sent": sent, "delivered": int(delivered or 0), "clicks": int(clicks or 0),
                            "conversions": int(conversions or 0), "revenue": float(revenue or 0)}
    return out


def standing(conn: sa.Connection, sequence: str, touch: str, spec: AbSpec, names: list[str]) -> dict[str, Any]:
    """The table ``followup ab``, ``stats`` and the dashboard show: per variant figures, P(best), the state."""
    row = _row(conn, sequence, touch)
    data = figures(conn, sequence, touch, names, row["started_at"] if row else None)
    successes = "conversions" if spec.metric == "converted" else "clicks"
    judged = judge(spec, {n: (f["sent"], f[successes]) for n, f in data.items()})
    winner = row["winner"] if row and row["winner"] else None
    state = "winner" if winner else judged.state
    for name, f in data.items():
        f["rate"] = f[successes] / f["sent"] if f["sent"] else 0.0
        f["p_best"] = judged.p_best[name]
    return {"sequence": sequence, "touch": touch, "metric": spec.metric, "min_per_variant": spec.min_per_variant,
            "confidence": spec.confidence, "state": state, "winner": winner,
            "decided_by": row["decided_by"] if winner else None, "variants": data}


def _save(conn: sa.Connection, sequence: str, touch: str, at: datetime, **values: Any) -> None:
    if _row(conn, sequence, touch) is None:
        conn.execute(sa.insert(ab_t).values(sequence=sequence, touch=touch, state="running", started_at=at))
    conn.execute(sa.update(ab_t).where(ab_t.c.sequence == sequence, ab_t.c.touch == touch).values(**values))


def _log_winner(conn: sa.Connection, sequence: str, touch: str, reason: str, at: datetime) -> None:
    append_log(conn, [{"at": at, "message_id": None, "contact_id": None, "sequence": sequence, "touch": touch,
                       "channel": None, "provider": None, "event": "ab_winner", "reason": reason, "attempt": 0,
                       "provider_message_id": None, "worker": None}])


def evaluate(conn: sa.Connection, sequence: str, touch: str, spec: AbSpec, names: list[str],
             at: datetime) -> dict[str, Any]:
    """Evaluate one test now: record its figures; a winner by the rule is kept and logged (``ab_winner``)."""
    result = standing(conn, sequence, touch, spec, names)
    detail = json.loads(json.dumps(result["variants"]))
    if result["state"] == "winner" and result["winner"] is None:
        best = max(result["variants"], key=lambda n: result["variants"][n]["p_best"])
        result.update(winner=best, decided_by="rule")
        _save(conn, sequence, touch, at, state="winner", winner=best, decided_by="rule", evaluated_at=at,
              detail=detail)
        _log_winner(conn, sequence, touch, f"{best} wins: P(best) {result['variants'][best]['p_best']:.3f} "
                                           f">= {spec.confidence} on {spec.metric}", at)
    elif result["winner"] is None:
        _save(conn, sequence, touch, at, state=result["state"], evaluated_at=at, detail=detail)
    return result


def evaluate_due(conn: sa.Connection, sequences: dict, at: datetime) -> int:
    """Evaluate every test with ``ab:`` not evaluated in the last minute and without a winner; how many."""
    done = 0
    rows = {(r["sequence"], r["touch"]): r for r in conn.execute(sa.select(ab_t)).mappings()}
    for seq in sequences.values():
        for touch in seq.touches:
            if touch.ab is None:
                continue
            row = rows.get((seq.name, touch.name))
            if row and (row["winner"] or (row["evaluated_at"] and to_utc(row["evaluated_at"]) > at - EVERY)):
                continue
            evaluate(conn, seq.name, touch.name, touch.ab, [v.name for v in touch.variants], at)
            done += 1
    return done


def promote(conn: sa.Connection, sequence: str, touch: str, variant: str, at: datetime) -> None:
    """Decide by hand: ``variant`` becomes the winner (logged as ``ab_winner``)."""
    _save(conn, sequence, touch, at, state="winner", winner=variant, decided_by="hand", evaluated_at=at)
    _log_winner(conn, sequence, touch, f"{variant} promoted by hand", at)


def reset(conn: sa.Connection, sequence: str, touch: str, at: datetime) -> None:
    """Restart the test: no winner, figures counted from now, assignments by the hash again."""
    _save(conn, sequence, touch, at, state="running", winner=None, decided_by=None, started_at=at,
          evaluated_at=None, detail=None)


def variant_report(conn: sa.Connection, seq: Any) -> dict[str, dict[str, Any]]:
    """Every touch of ``seq`` with variants: its test's table (:func:`standing`), by touch name."""
    return {t.name: standing(conn, seq.name, t.name, t.ab or AbSpec(), [v.name for v in t.variants])
            for t in seq.touches if t.variants}


class AbSchedule:
    """A worker's evaluation of the A/B tests: at most once every :data:`EVERY` (nothing when no touch has ``ab:``)."""

    def __init__(self) -> None:
        self.at: datetime | None = None  # when this worker last evaluated

    def run(self, write: Callable[[], ContextManager[sa.Connection]], sequences: dict, at: datetime) -> None:
        """Evaluate the tests due at ``at`` in a ``write()`` transaction."""
        if self.at is not None and at - self.at < EVERY:
            return
        self.at = at
        if any(t.ab is not None for seq in sequences.values() for t in seq.touches):
            with write() as conn:
                evaluate_due(conn, sequences, at)
