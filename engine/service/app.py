"""The FastAPI app factory: ``create_app(config)`` wires the routers, handlers and shared context."""
from __future__ import annotations

from contextlib import asynccontextmanager

import sqlalchemy as sa
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from ..config import Config
from ..db import make_engine
from . import api, callbacks, controls, dashboard, kpi_pages, leads, links, metrics, unsubscribe, webhooks
from .accesslog import AccessLog
from .auth import ApiKeyGate, require_api_key
from .context import ServiceContext
from .errors import install_handlers
from .limits import BodyLimit
from .options import ServiceOptions, service_options

__all__ = ["create_app", "ROUTERS"]

#: every router of the app (the auth test walks them all)
ROUTERS = (api.router, webhooks.router, callbacks.router, unsubscribe.router, links.router, metrics.router,
           dashboard.login_router, dashboard.router, controls.router, leads.page_router, leads.api_router,
           kpi_pages.api_router, kpi_pages.router)

DESCRIPTION = """The followup API. Send `Authorization: Bearer KEY` (a key from `followup apikey create NAME`).

A list body is **all-or-nothing**: every item is checked first; one bad item gets a 4xx naming it
(e.g. `[3].phone`) and nothing is written. Errors are `{"error": ..., "errors": [{"field", "message"}]}`.
"""


def create_app(config: Config, *, engine: sa.Engine | None = None, options: ServiceOptions | None = None) -> FastAPI:
    """The whole service for ``config``: API, webhooks, unsubscribe, dashboard, /metrics and /healthz."""
    ctx = ServiceContext(config, engine or make_engine(config.settings.database_url), options or service_options(config))
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        ctx.close()

    app = FastAPI(title="followup", version="1", description=DESCRIPTION, openapi_url=None, docs_url=None,
                  redoc_url=None, lifespan=lifespan)
    app.state.ctx = ctx
    install_handlers(app)
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/api/v1/openapi.json", include_in_schema=False, dependencies=[Depends(require_api_key)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    # added last runs first: the access log, then the body limit, then the key check, then routing
    app.add_middleware(ApiKeyGate, ctx=ctx)
    app.add_middleware(BodyLimit, api_max_bytes=ctx.options.max_body_bytes)
    app.add_middleware(AccessLog)
    return app
