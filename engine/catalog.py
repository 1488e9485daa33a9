"""Keeps the database's copy of the sequences and offers in step with the config files."""
from __future__ import annotations

import sqlalchemy as sa

from .clock import now, to_utc
from .config import Config
from .models import Offer, SequenceVersion

__all__ = ["sync_catalog", "offer_state"]

versions = SequenceVersion.__table__
offers = Offer.__table__


def sync_catalog(conn: sa.Connection, config: Config) -> None:
    """Store each sequence version (by file hash) and each offer; stock already redeemed is kept."""
    known = set(conn.execute(sa.select(versions.c.hash)).scalars())
    stamp = now()
    for seq in config.sequences.values():
        if seq.hash not in known:
            conn.execute(sa.insert(versions).values(hash=seq.hash, name=seq.name, definition=seq.to_json(),
                                                    file=str(seq.file), loaded_at=stamp))
        if seq.offer is None:
            continue
        row = conn.execute(sa.select(offers).where(offers.c.sequence == seq.name,
                                                   offers.c.code == seq.offer.code)).mappings().first()
        values = dict(title=seq.offer.title, stock=seq.offer.stock, expires_at=seq.offer.expires_at)
        if row is None:
            conn.execute(sa.insert(offers).values(sequence=seq.name, code=seq.offer.code, redeemed=0, **values))
        elif any(row[k] != v and not (k == "expires_at" and to_utc(row[k]) == v) for k, v in values.items()):
            conn.execute(sa.update(offers).where(offers.c.id == row["id"]).values(**values))


def offer_state(conn: sa.Connection, sequence: str, code: str) -> dict | None:
    """The stored offer row (stock, redeemed) for a sequence's offer code."""
    row = conn.execute(sa.select(offers).where(offers.c.sequence == sequence, offers.c.code == code)).mappings().first()
    return dict(row) if row else None
