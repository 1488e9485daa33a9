"""A provider's ``rate`` shared by every worker on one database: send slots leased from ``rate_buckets``.

A provider's ``rate`` is its panel's limit, so three workers must not send three times it. Each
provider has one row holding the bucket's theoretical arrival time ``tat`` (GCRA): when its next
free send slot begins. A lease of ``n`` slots is one statement::

    UPDATE rate_buckets SET tat = max(tat, now) + n * interval WHERE provider = :p
    RETURNING tat - n * interval - now          -- seconds until the first leased slot

The worker then spends those slots locally, one per send
(:class:`providers.ratelimit.LeasedRateLimiter`), and the next lease, by this worker or another,
begins where this one ends. A bucket idle for a while starts again at ``now``: unused time is not
saved up into a burst.

On PostgreSQL ``now`` is the server's clock, and the statement hands back a delay rather than a
time, so workers on hosts whose clocks differ still take turns. SQLite runs one worker per database
file, so the dispatcher gives it the plain per-process limiter; the bucket works there too, on this
process's clock.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import sqlalchemy as sa

from providers.base import Provider
from providers.errors import TransientError
from providers.ratelimit import LeasedRateLimiter, Limiter, RateLimiter, parse_rate

from .db import is_sqlite
from .store.slots import lease_slots

__all__ = ["RateBucket", "rate_limiters"]

class RateBucket:
    """One provider's row in ``rate_buckets``; :meth:`lease` takes send slots from it for this worker.

    It keeps one connection of its own in autocommit: a lease is one round trip. ``wall`` is the clock
    ``now`` is read from on SQLite (PostgreSQL uses the server's).
    """

    def __init__(self, engine: sa.Engine, provider: str, *, wall: Callable[[], float] = time.time):
        self.engine = engine
        self.provider = provider
        self._wall = wall
        self._conn: sa.Connection | None = None
        self._lock = threading.Lock()

    def lease(self, n: int, interval: float) -> float:
        """Take ``n`` slots ``interval`` seconds apart; return the seconds until the first begins.

        A database error is a :class:`TransientError` of the provider: the send is tried again later,
        and nothing reached the provider.
        """
        params = {"provider": self.provider, "span": n * interval, "now": self._wall()}
        with self._lock:
            try:
                return self._run(params)
            except sa.exc.SQLAlchemyError as err:
                self.close()
                raise TransientError(f"could not lease send slots from the shared rate: {err}",
                                     provider=self.provider) from err

    def _run(self, params: dict) -> float:
        if is_sqlite(self.engine):  # SQLite's transactions are begun by make_engine's listener
            with self.engine.begin() as conn:
                return lease_slots(conn, self.provider, params["span"], params["now"])
        if self._conn is None:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return lease_slots(self._conn, self.provider, params["span"], params["now"])

    def close(self) -> None:
        """Give back this bucket's connection (a later lease opens another)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except sa.exc.SQLAlchemyError:
                pass


def rate_limiters(engine: sa.Engine, providers: dict[str, list[Provider]]) -> dict[str, Limiter]:
    """Each provider's limiter: leased from ``rate_buckets`` on PostgreSQL, where several workers may share
    one database; this process's own on SQLite, which runs one worker per database file."""
    out: dict[str, Limiter] = {}
    for provider in (p for group in providers.values() for p in group):
        rate = parse_rate(provider.settings.get("rate"))
        if rate and not is_sqlite(engine):
            bucket = RateBucket(engine, provider.name)
            out[provider.name] = LeasedRateLimiter(rate, bucket.lease, release=bucket.close)
        else:
            out[provider.name] = RateLimiter(rate)
    return out
