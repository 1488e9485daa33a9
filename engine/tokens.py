"""Signed unsubscribe tokens: specific to one contact and channel, revealing nothing about either.

A token is ``nonce | payload XOR mask(nonce) | signature(nonce | payload)``: the random nonce makes
every token's mask different, so knowing one's own token tells nothing about anyone else's.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

__all__ = ["make_token", "read_token"]

_CHANNELS = {"sms": b"s", "email": b"e"}
_NONCE, _SIG = 8, 16


def _sign(secret: str, data: bytes) -> bytes:
    return hmac.new(secret.encode(), data, hashlib.sha256).digest()[:_SIG]


def _mask(secret: str, nonce: bytes, length: int) -> bytes:
    stream = hashlib.sha256(secret.encode() + b"mask" + nonce).digest()
    return (stream * (length // len(stream) + 1))[:length]


def make_token(secret: str, contact_id: int, channel: str) -> str:
    """An opaque URL-safe token for one contact and channel."""
    payload = _CHANNELS[channel] + str(contact_id).encode()
    nonce = os.urandom(_NONCE)
    hidden = bytes(a ^ b for a, b in zip(payload, _mask(secret, nonce, len(payload))))
    return base64.urlsafe_b64encode(nonce + hidden + _sign(secret, nonce + payload)).decode().rstrip("=")


def read_token(secret: str, token: str) -> tuple[int, str] | None:
    """The (contact id, channel) a token was made for, or None if it is forged or damaged."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) < _NONCE + 2 + _SIG:
        return None
    nonce, hidden, signature = raw[:_NONCE], raw[_NONCE:-_SIG], raw[-_SIG:]
    payload = bytes(a ^ b for a, b in zip(hidden, _mask(secret, nonce, len(hidden))))
    if not hmac.compare_digest(signature, _sign(secret, nonce + payload)):
        return None
    kind, digits = payload[:1], payload[1:]
    channel = next((name for name, code in _CHANNELS.items() if code == kind), None)
    if channel is None or not digits.isdigit():
        return None
    return int(digits), channel
