"""Runs that events start and end: ``trigger: {event: NAME}`` and ``exit_on`` with event keys.

* An event starts a run in every sequence whose ``trigger`` names it: one run per contact, sequence and
  event key (``cart_abandoned --key cart-981`` and ``--key cart-982`` are two runs side by side; the same key
  again starts nothing, even after its run ended). An event without a key starts a run as ``enroll`` does:
  one active at a time, and again only as the sequence's ``reentry`` allows.
* An exit event with a key ends the runs with that key and the contact's enrollments without a key;
  runs with another key go on (``order_placed --key cart-981`` ends the cart-981 run, not cart-982's).
  An exit event without a key ends them all.
* A run freezes its event's data: templates read it as ``event.data``.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from .config import Config
from .enrollment import EventRun, enroll
from .errors import InputError
from .eventnames import BUILT_IN, near_built_in
from .models import EnrollmentStatus

__all__ = ["Started", "exit_status", "exiting", "start_runs", "unheard"]

_STATUSES = {s.value for s in EnrollmentStatus}


@dataclass(frozen=True)
class Started:
    """What an event did in one sequence it triggers: ``outcome`` is enrolled, already_active, finished
    (one run per key, or ``reentry``) or refused, with the reason."""

    sequence: str
    outcome: str
    reason: str | None = None

    def as_dict(self) -> dict:
        return {"sequence": self.sequence, "outcome": self.outcome, "reason": self.reason}


def exiting(active: list[dict], key: str | None) -> list[dict]:
    """Of a contact's active enrollments, those an exit event with ``key`` reaches."""
    return [e for e in active if key is None or e.get("event_key") in (None, key)]


def exit_status(event: str) -> str:
    """The status an enrollment ends with when ``event`` is one of its ``exit_on``."""
    return event if event in _STATUSES else EnrollmentStatus.EXITED.value


def unheard(config: Config, event: str) -> str:
    """A warning when no sequence of the config starts or ends on ``event`` (a misspelt name does nothing)."""
    if event in BUILT_IN or any(s.trigger and s.trigger.event == event or event in s.exit_on
                                for s in config.sequences.values()):
        return ""
    close = near_built_in(event)
    names = sorted({s.trigger.event for s in config.sequences.values() if s.trigger}
                   | {e for s in config.sequences.values() for e in s.exit_on} - set(BUILT_IN))
    hint = f"; did you mean {close!r}?" if close else (f" (the sequences name {', '.join(names)})" if names else "")
    return f"no sequence starts or ends on {event!r}, so it was only recorded{hint}"


def start_runs(conn: sa.Connection, config: Config, contact_id: int, event: str, key: str | None,
               data: dict | None, only: str | None = None) -> list[Started]:
    """Enroll the contact in every sequence ``event`` triggers (only ``only``, when given)."""
    started = []
    run = EventRun(event, key, data)
    for seq in sorted(config.sequences.values(), key=lambda s: s.name):
        if seq.trigger is None or seq.trigger.event != event or (only and seq.name != only):
            continue
        try:
            report = enroll(conn, config, seq.name, [contact_id], run)
        except InputError as err:  # the sequence is stopped: the event is still recorded
            started.append(Started(seq.name, "refused", str(err)))
            continue
        if report.enrolled:
            started.append(Started(seq.name, "enrolled", f"key {key}" if key else None))
        elif report.already_active:
            started.append(Started(seq.name, "already_active",
                                   f"a run for key {key} is active" if key else "already active"))
        else:
            why = report.finished or report.refused
            started.append(Started(seq.name, "finished" if report.finished else "refused", why[0][1]))
    return started
