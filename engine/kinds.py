"""Touch kinds and sender lines: which line a message leaves from, and what an advertising blacklist stops.

A touch is **promotional** (the default: an offer, an ad) or **informational** (a service message to
a business's own customer, carrying no offer). A provider may list its lines by class
(:mod:`providers.lines`); the line follows the kind:

=============  ===================================  ==============================================
kind           line                                 a blacklist answer (send refusal or receipt)
=============  ===================================  ==============================================
promotional    the first promotional line, else     suppresses the contact's *promotional* SMS
               the default ``sender``               only; not retried from another line
informational  the first service line, else the     suppresses all the contact's SMS: no line
               default ``sender``                   of ours reached them
=============  ===================================  ==============================================

A suppression for promotional SMS only is stored in the contact's ``sms_suppressed`` with the
prefix :data:`PROMOTIONAL_ONLY`; :func:`blocks` is the one reading of it. Any other suppression (an
opt-out, an invalid number) stops every touch of the channel, and replaces a promotional-only one.
"""
from __future__ import annotations

import sqlalchemy as sa

from providers.base import Provider
from providers.lines import LineClass

from .models import Contact
from .people import not_erased

__all__ = ["PROMOTIONAL", "INFORMATIONAL", "TOUCH_KINDS", "PROMOTIONAL_ONLY", "BLACKLIST_REASON", "sender_line",
           "blocks", "suppress"]

PROMOTIONAL, INFORMATIONAL = "promotional", "informational"
TOUCH_KINDS = (PROMOTIONAL, INFORMATIONAL)
#: the start of a suppression that stops promotional SMS only
PROMOTIONAL_ONLY = "promotional only: "
BLACKLIST_REASON = "operator advertising blacklist"
_CLASS_OF = {PROMOTIONAL: LineClass.PROMOTIONAL, INFORMATIONAL: LineClass.SERVICE}
contacts = Contact.__table__


def sender_line(provider: Provider, kind: str) -> str | None:
    """The line a ``kind`` message leaves ``provider`` from; None: the provider's default sender."""
    wanted = _CLASS_OF.get(kind, LineClass.PROMOTIONAL)
    return next((line.number for line in provider.lines if line.line_class is wanted), None)


def blocks(suppressed: str | None, kind: str) -> bool:
    """Whether a contact's channel suppression stops a touch of ``kind``."""
    if not suppressed:
        return False
    return kind != INFORMATIONAL or not suppressed.startswith(PROMOTIONAL_ONLY)


def suppress(conn: sa.Connection, contact_id: int, channel: str, reason: str, *, promotional_only: bool = False,
             replace: bool = True) -> None:
    """Suppress a contact on ``channel``: for promotional touches only, or for all.

    A promotional-only suppression never replaces another one. A full one replaces a promotional-only
    one always, and any other one where ``replace``; an erased contact's marker stays.
    """
    column = getattr(contacts.c, f"{channel}_suppressed")
    if promotional_only:
        reason, where = PROMOTIONAL_ONLY + reason, column.is_(None)
    elif replace:
        where = sa.true()
    else:
        where = sa.or_(column.is_(None), column.startswith(PROMOTIONAL_ONLY, autoescape=True))
    conn.execute(sa.update(contacts).where(contacts.c.id == contact_id, where, not_erased(column))
                 .values({column.key: reason[:200]}))
