"""Provider webhooks: verify → parse → hand to :mod:`engine.receipts`. No API key: each is signed its own way.

A bad signature (or a body the check itself cannot read, such as JSON nested too deep), a stale signed
timestamp or a reused single-use token is a 400 and changes nothing; a signed body that can't be parsed or
applied is a 500, so the provider retries; the same event twice changes nothing the second time (receipts
only move forward, inbound messages carry an idempotency key), and a receipt only touches a message this
provider sent on its channel. Bodies over 2 MiB are refused before the route runs (:mod:`.limits`).

Twilio signs the URL it called. That URL is ``service.public_url`` (or ``FOLLOWUP_PUBLIC_URL``) + the
request's path and query; set it in production. Without it the request's own scheme and Host are used,
and ``X-Forwarded-Proto``/``X-Forwarded-Host`` only when the request comes from an address listed in
``service.trusted_proxies``: from anyone else those headers would let a caller choose the URL a captured
signature is checked against.
"""
from __future__ import annotations

import ipaddress
import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ..webhook_tokens import TokenReused, claim_token
from .context import ServiceContext, get_context
from .options import ServiceOptions

__all__ = ["router", "public_url", "from_trusted_proxy"]

logger = logging.getLogger("followup.webhooks")
router = APIRouter(include_in_schema=False)
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def from_trusted_proxy(request: Request, options: ServiceOptions) -> bool:
    """Whether the request came through one of ``service.trusted_proxies`` (its forwarded headers are believed)."""
    if not (options.trusted_proxies and request.client):
        return False
    try:
        client = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    return any(client in network for network in options.trusted_proxies)


def public_url(request: Request, options: ServiceOptions) -> str:
    """The URL the provider called: ``public_url`` + path, else the forwarded one (trusted proxies only),
    else the request's own."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if options.public_url:
        return options.public_url + path
    proto, host = request.url.scheme, request.headers.get("host") or request.url.netloc
    if from_trusted_proxy(request, options):
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip() or proto
        host = request.headers.get("x-forwarded-host", "").split(",")[0].strip() or host
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
    if not _verified(provider, public_url(request, ctx.options), headers, body):
        logger.warning("webhook for %s: bad or missing signature, or a signed timestamp over 5 minutes "
                       "from now; ignored", provider_name)
        return JSONResponse({"error": "bad signature"}, status_code=400)
    try:
        items = provider.parse_webhook(headers, body)
        token = provider.webhook_token(headers, body)
    except Exception as err:  # noqa: BLE001 - any parse failure: let the provider retry
        logger.error("webhook for %s: could not parse the body (%s); answered 500 so it is sent again",
                     provider_name, type(err).__name__)
        return JSONResponse({"error": "could not parse the webhook"}, status_code=500)
    from starlette.concurrency import run_in_threadpool

    try:
        applied = await run_in_threadpool(_apply, ctx, provider_name, token, items)
    except TokenReused:
        logger.warning("webhook for %s: its signed token was already used (a replay); ignored", provider_name)
        return JSONResponse({"error": "replayed: this webhook's token was already used"}, status_code=400)
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


def _apply(ctx: ServiceContext, provider_name: str, token: str | None, items: list) -> int:
    """Claim the webhook's token (if it has one) and apply its items, in one transaction."""
    from ..receipts import apply_pushed

    with ctx.engine.begin() as conn:
        if token is not None:
            claim_token(conn, provider_name, token)
        return apply_pushed(conn, ctx.config, provider_name, items)
