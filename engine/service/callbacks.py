"""Unsigned provider callbacks: ``POST /webhooks/{provider name}/{secret}`` → :mod:`engine.receipts`.

The Iranian panels (Kavenegar's status and receive callback URLs) sign nothing, so the URL carries a
per-provider random token, the provider's ``callback_secret`` setting (from the environment). A wrong or
unset secret, or a provider without callbacks, is a 404 — the same answer as an unknown provider, so the
route reveals nothing. The secret is compared in constant time and never logged. Bodies are at most 64 KB.
What arrives is applied the way polling applies it: receipts only move forward and inbound messages carry
the panel's id as idempotency key, so a callback and a poll of the same event count once.
"""
from __future__ import annotations

import hmac
import json
import logging
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ..receipts import apply_pushed
from .context import ServiceContext, get_context

__all__ = ["router", "callback_path", "MAX_BODY"]

logger = logging.getLogger("followup.callbacks")
router = APIRouter(include_in_schema=False)
MAX_BODY = 64 * 1024
NOT_FOUND = {"error": "not found"}


def callback_path(provider_name: str, secret: str) -> str:
    """The path a panel is told to call for ``provider_name``."""
    return f"/webhooks/{provider_name}/{secret}"


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it is over :data:`MAX_BODY` (checked as it arrives, not only by its header)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


def _fields(request: Request, body: bytes) -> dict[str, str]:
    """The query string and the body (a form, or a JSON object) as one flat mapping; the body wins."""
    fields = dict(request.query_params)
    text = body.decode("utf-8")
    if text.lstrip().startswith("{"):
        parsed = json.loads(text)
        if not isinstance(parsed, dict):
            raise ValueError("a JSON body must be an object")
        fields.update({k: str(v) for k, v in parsed.items() if v is not None})
    else:
        fields.update(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))
    return fields


@router.post("/webhooks/{provider_name}/{secret}")
async def callback(provider_name: str, secret: str, request: Request,
                   ctx: ServiceContext = Depends(get_context)) -> Response:
    """Delivery states and inbound SMS pushed by the panel configured as ``provider_name``."""
    provider = ctx.provider(provider_name)
    expected = str((provider.settings.get("callback_secret") if provider else None) or "")
    if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
        logger.warning("callback for %r: unknown provider, no callback_secret, or a wrong one; answered 404",
                       provider_name)
        return JSONResponse(NOT_FOUND, status_code=404)
    body = await _read_body(request)
    if body is None:
        return JSONResponse({"error": f"body over {MAX_BODY // 1024} KB"}, status_code=413)
    try:
        items = provider.parse_callback(_fields(request, body))
    except (ValueError, UnicodeDecodeError) as err:
        logger.warning("callback for %s: not a callback this provider sends (%s); answered 400", provider_name, err)
        return JSONResponse({"error": f"not a {provider.type} callback: {err}"}, status_code=400)

    def apply() -> int:
        with ctx.engine.begin() as conn:
            return apply_pushed(conn, ctx.config, provider_name, items)

    try:
        applied = await run_in_threadpool(apply)
    except Exception as err:  # noqa: BLE001 - the database failed: the panel may call again
        logger.error("callback for %s: could not apply (%s); answered 500", provider_name, type(err).__name__)
        return JSONResponse({"error": "could not apply the callback"}, status_code=500)
    return JSONResponse({"result": f"{applied} applied"})
