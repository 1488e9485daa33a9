"""The replay window of signed webhooks whose signature covers a timestamp (Mailgun, SendGrid).

A signed timestamp older than :data:`REPLAY_WINDOW`, or further than that in the future, is refused:
a captured request can't be replayed later. Mailgun's signature also covers a single-use token; the
engine remembers each token for twice this window and refuses it a second time.
"""
from __future__ import annotations

import time

__all__ = ["REPLAY_WINDOW", "fresh"]

#: seconds a signed timestamp may lie before (or after) the receiver's clock
REPLAY_WINDOW = 300


def fresh(timestamp: object) -> bool:
    """True when ``timestamp`` (Unix seconds, as text or a number) is within the replay window of now."""
    try:
        signed = float(str(timestamp).strip())
    except ValueError:
        return False
    return abs(time.time() - signed) <= REPLAY_WINDOW
