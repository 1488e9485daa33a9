"""Provider webhooks: verify → parse → hand to :mod:`engine.receipts`. No API key: each is signed its own way.

A bad signature (or a body the check itself cannot read, such as JSON nested too deep) is a 400 and
changes nothing; a signed body that can't be parsed or applied is a 500, so the provider retries; the
same event twice changes nothing the second time (receipts only move forward, inbound messages carry an
idempotency key). Bodies over 2 MiB are refused before the route runs (:mod:`.limits`).

Twilio signs the public URL it called. Behind a proxy, set ``service.public_url`` (or
``FOLLOWUP_PUBLIC_URL``), or let the proxy send ``X-Forwarded-Proto`` and ``X-Forwarded-Host``;
trusting those headers is safe here because a forged URL still needs the account's auth token to sign.
"""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from providers.base import DeliveryReport, InboundMessage

from .context import ServiceContext, get_context

__all__ = ["router", "public_url"]

logger = logging.getLogger("followup.webhooks")
router = APIRouter(include_in_schema=False)
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def public_url(request: Request, configured: str | None) -> str:
    """The URL the provider called: the configured public URL, else X-Forwarded-Proto/Host, else the request's."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if configured:
        return configured + path
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip() or request.url.scheme
    host = request.headers.get("x-forwarded-host", "").split(",")[0].strip() or request.headers.get("host") \
        or request.url.netloc
    return f"{proto}://{host}{path}"


def _answer(provider_type: str, status: int, message: str) -> Response:
    if provider_type == "twilio" and status == 200:
        return Response(TWIML_EMPTY, media_type="application/xml")
    return JSONResponse({"error" if status >= 400 else "result": message}, status_code=status)


@router.post("/webhooks/{provider_name}")
async def webhook(provider_name: str, request: Request, ctx: ServiceContext = Depends(get_context)) -> Response:
    """Delivery receipts and inbound messages pushed by the provider configured as ``provider_name``."""
    provider = ctx.provider(provider_name)
    if provider is None:
        return JSONResponse({"error": "no such provider"}, status_code=404)
    body = await request.body()
    headers = dict(request.headers)
    if not _verified(provider, public_url(request, ctx.options.public_url), headers, body):
        logger.warning("webhook for %s: bad or missing signature; ignored", provider_name)
        return JSONResponse({"error": "bad signature"}, status_code=400)
    try:
        items = provider.parse_webhook(headers, body)
    except Exception as err:  # noqa: BLE001 - any parse failure: let the provider retry
        logger.error("webhook for %s: could not parse the body (%s); answered 500 so it is sent again",
                     provider_name, type(err).__name__)
        return JSONResponse({"error": "could not parse the webhook"}, status_code=500)
    from starlette.concurrency import run_in_threadpool

    try:
        applied = await run_in_threadpool(_apply, ctx, provider_name, items)
    except Exception as err:  # noqa: BLE001 - the database failed: let the provider retry
        logger.error("webhook for %s: could not apply (%s); answered 500 so it is sent again",
                     provider_name, type(err).__name__)
        return JSONResponse({"error": "could not apply the webhook"}, status_code=500)
    return _answer(provider.type, 200, f"{applied} applied")


def _verified(provider, url: str, headers: dict[str, str], body: bytes) -> bool:
    """Whether the body is signed by the provider; a body the check fails on is not (it is unsigned input)."""
    try:
        return provider.verify_webhook(url, headers, body)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, UnicodeError):
        return False


def _apply(ctx: ServiceContext, provider_name: str, items: list) -> int:
    from ..receipts import apply_inbound, apply_reports

    reports = [i for i in items if isinstance(i, DeliveryReport)]
    inbound = [i for i in items if isinstance(i, InboundMessage)]
    with ctx.engine.begin() as conn:
        applied = apply_reports(conn, ctx.config, provider_name, reports) if reports else 0
        applied += apply_inbound(conn, ctx.config, provider_name, inbound) if inbound else 0
    return applied
