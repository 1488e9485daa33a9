"""After the sale: a conversion in a sequence with ``on_converted: {enroll: NAME}`` enrolls the contact in NAME.

The enrollment goes through :func:`engine.enrollment.enroll`, so NAME's ``reentry`` decides whether a contact
who was in it before may enter again, and an opted-out contact is refused. The KPI report counts the
conversions that followed such an enrollment (``repeat_after_loyalty``, :mod:`engine.kpi`).
"""
from __future__ import annotations

import sqlalchemy as sa

from .config import Config
from .enrollment import enroll
from .errors import InputError
from .triggers import Started

__all__ = ["after_conversion"]


def after_conversion(conn: sa.Connection, config: Config, contact_id: int, sequences: list[str]) -> list[Started]:
    """Enroll ``contact_id`` in the ``on_converted`` sequence of each of ``sequences`` it converted in."""
    started = []
    targets = dict.fromkeys(t for name in sequences if (seq := config.sequences.get(name)) and (t := seq.on_converted))
    for target in targets:
        try:
            report = enroll(conn, config, target, [contact_id])
        except InputError as err:  # the post-purchase sequence is stopped: the sale is still recorded
            started.append(Started(target, "refused", str(err)))
            continue
        if report.enrolled:
            started.append(Started(target, "enrolled", "on_converted"))
        elif report.already_active:
            started.append(Started(target, "already_active", "already active"))
        else:
            why = report.finished or report.refused
            started.append(Started(target, "finished" if report.finished else "refused", why[0][1]))
    return started
