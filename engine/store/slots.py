"""The shared rate's statement: send slots leased from a provider's ``rate_buckets`` row (see
:mod:`engine.ratebuckets`)."""
from __future__ import annotations

import sqlalchemy as sa

__all__ = ["lease_slots"]

_NOW = {"sqlite": ":now", "postgresql": "extract(epoch from statement_timestamp())::float8"}
_MAX = {"sqlite": "max", "postgresql": "greatest"}
_LEASE = ("UPDATE rate_buckets SET tat = {max}(tat, {now}) + :span WHERE provider = :provider "
          "RETURNING tat - :span - {now}")
_CREATE = "INSERT INTO rate_buckets (provider, tat) VALUES (:provider, 0) ON CONFLICT (provider) DO NOTHING"
_STATEMENTS: dict[str, sa.TextClause] = {}


def lease_slots(conn: sa.Connection, provider: str, span: float, wall: float) -> float:
    """Move ``provider``'s bucket ``span`` seconds on; the seconds until the first leased slot begins.

    ``wall`` is the time on SQLite; PostgreSQL reads the server's clock.
    """
    dialect = conn.dialect.name
    lease = _STATEMENTS.get(dialect)
    if lease is None:
        lease = _STATEMENTS[dialect] = sa.text(_LEASE.format(max=_MAX[dialect], now=_NOW[dialect]))
    params = {"provider": provider, "span": span, "now": wall}
    wait = conn.execute(lease, params).scalar()
    if wait is None:  # the provider's first lease on this database
        conn.execute(sa.text(_CREATE), params)
        wait = conn.execute(lease, params).scalar_one()
    return float(wait)
