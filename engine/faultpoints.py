"""Fault-injection points for the crash tests: ``FOLLOWUP_PAUSE_AT=name:/path/marker`` stops the worker there.

The worker writes its pid into the marker file and waits; the test kills it with SIGKILL. Without the
variable a point costs one environment lookup.
"""
from __future__ import annotations

import os
import time

__all__ = ["fault_point"]


def fault_point(name: str) -> None:
    """Stop here for good when ``FOLLOWUP_PAUSE_AT`` names this point."""
    spec = os.environ.get("FOLLOWUP_PAUSE_AT")
    if not spec or not spec.startswith(name + ":"):
        return
    marker = spec.split(":", 1)[1]
    with open(marker, "w") as fh:
        fh.write(str(os.getpid()))
    while True:  # the test kills us here with SIGKILL
        time.sleep(0.05)
