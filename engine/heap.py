"""The garbage-collector policy of the worker and the service, set once everything long-lived is loaded.

A tick allocates a few dozen containers per message (rows, changes, log rows, template contexts), a report
tens of thousands of rows; every few tens of thousands of them CPython's collector walks *every* tracked
object in the process — the SQLAlchemy, Jinja and pydantic machinery loaded at start, a few hundred thousand
objects that never become garbage. On the bookkeeping bench those walks cost 10–25% of a tick, on the KPI
page at a million contacts a quarter of its figures' time. Frozen after start, they are left out of every
collection; the young generation is collected less often, since a tick's garbage is freed by reference
counting anyway (the collector only finds cycles).
"""
from __future__ import annotations

import gc

__all__ = ["settle"]

#: young-generation threshold: allocations (net) between two young collections (CPython's default: 700)
YOUNG_THRESHOLD = 5000


def settle() -> None:
    """Collect once, then move everything alive now out of the collector's walks (call once, after start)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
