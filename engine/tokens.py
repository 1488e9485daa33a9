"""Signed unsubscribe tokens: specific to one contact and channel, revealing nothing about either."""
from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["make_token", "read_token"]


def _sign(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:16]


def make_token(secret: str, contact_id: int, channel: str) -> str:
    """An opaque URL-safe token; the contact id inside is obfuscated by the signature key."""
    payload = f"{contact_id}:{channel}".encode()
    mask = hashlib.sha256(secret.encode() + b"mask").digest()
    hidden = bytes(b ^ mask[i % len(mask)] for i, b in enumerate(payload))
    return base64.urlsafe_b64encode(hidden + _sign(secret, payload)).decode().rstrip("=")


def read_token(secret: str, token: str) -> tuple[int, str] | None:
    """The (contact id, channel) a token was made for, or None if it is forged or damaged."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) < 17:
        return None
    hidden, signature = raw[:-16], raw[-16:]
    mask = hashlib.sha256(secret.encode() + b"mask").digest()
    payload = bytes(b ^ mask[i % len(mask)] for i, b in enumerate(hidden))
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        return None
    contact, _, channel = payload.decode(errors="replace").partition(":")
    return (int(contact), channel) if contact.isdigit() and channel in ("sms", "email") else None
