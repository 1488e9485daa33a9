"""engine.tokens: signed unsubscribe tokens."""
from __future__ import annotations

import base64

from engine.tokens import make_token, read_token


def test_token_roundtrip():
    for cid, channel in ((1, "sms"), (123456789, "email")):
        assert read_token("s3cret", make_token("s3cret", cid, channel)) == (cid, channel)


def test_token_is_url_safe_and_hides_the_contact_id():
    token = make_token("s3cret", 123456789, "sms")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert "123456789" not in token
    raw = _unb64(token)
    assert b"123456789" not in raw and b"sms" not in raw


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_tampered_or_foreign_tokens_are_refused():
    token = make_token("s3cret", 42, "sms")
    raw = _unb64(token)
    for index in (0, len(raw) // 2, len(raw) - 1):  # the payload, the middle, the signature
        tampered = bytearray(raw)
        tampered[index] ^= 0x01
        assert read_token("s3cret", _b64(bytes(tampered))) is None, index
    assert read_token("s3cret", _b64(raw[:-1])) is None
    assert read_token("other-secret", token) is None
    for garbage in ("", "!!!", "abc", "A" * 40):
        assert read_token("s3cret", garbage) is None


def test_tokens_differ_per_channel():
    assert make_token("s3cret", 42, "sms") != make_token("s3cret", 42, "email")
    assert read_token("s3cret", make_token("s3cret", 42, "email")) == (42, "email")


def test_one_token_does_not_reveal_other_contacts_ids():
    mine = _unb64(make_token("s3cret", 1000, "sms"))  # an attacker's own link; they know their id
    mask = bytes(a ^ b for a, b in zip(mine, b"1000:sms"))
    theirs = _unb64(make_token("s3cret", 4321, "sms"))
    recovered = bytes(a ^ b for a, b in zip(theirs, mask))
    assert not recovered.startswith(b"4321")
