"""What every route needs: the config, the database engine, the service options and the providers."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import sqlalchemy as sa
from fastapi import Request

from providers.base import Provider

from ..config import Config
from .clicks import ClickWriter
from .options import ServiceOptions
from .tally import LogTally
from .writes import GroupWriter
from .throttle import LoginThrottle, Misses

__all__ = ["ServiceContext", "get_context"]


@dataclass
class ServiceContext:
    """Shared, read-mostly state of one app. Providers are built on the first webhook that needs them."""

    config: Config
    engine: sa.Engine
    options: ServiceOptions
    log_tally: LogTally = field(default_factory=LogTally)  # the log's counts for /metrics, kept across scrapes
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)
    link_misses: Misses = field(default_factory=Misses)  # unknown short-link codes by address
    clicks: ClickWriter | None = None  # short-link clicks on their way to the database (made from ``engine``)
    writes: GroupWriter | None = None  # the API's event writes, committed in groups (made from ``engine``)
    _providers: dict[str, Provider] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.clicks is None:
            self.clicks = ClickWriter(self.engine, config=self.config)
        if self.writes is None:
            self.writes = GroupWriter(self.engine, name="event-writer")

    def provider(self, name: str) -> Provider | None:
        """The configured provider called ``name`` (any channel), or None."""
        with self._lock:
            if self._providers is None:
                from ..provider_setup import build_providers

                self._providers = {p.name: p for group in build_providers(self.config).values() for p in group}
        return self._providers.get(name)

    def close(self) -> None:
        """The app's shutdown: the queued writes and clicks written, the providers' sessions closed."""
        try:
            self.writes.close()
            self.clicks.close()  # a failure propagates: the shutdown's log says the clicks were not written
        finally:
            for provider in (self._providers or {}).values():
                provider.close()


async def get_context(request: Request) -> ServiceContext:
    """FastAPI dependency: the app's :class:`ServiceContext`. A coroutine, so FastAPI calls it on the event
    loop: a plain function it would run on its thread pool, a thread hop per request for an attribute read."""
    return request.app.state.ctx
