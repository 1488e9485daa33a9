"""A webhook receiver (Standard Webhooks) on 127.0.0.1 for the outbox bench, in its own process.

Pure asyncio with a minimal HTTP/1.1 keep-alive parser (as :mod:`bench.fakesms`), so the receiver is never
the bottleneck. Every POST's signature is checked (HMAC-SHA256 over ``id.timestamp.body``), its event id and
contact recorded in arrival order, and it is answered 204 after ``--delay`` seconds (400 when the signature
is wrong).

    python -m bench.hookreceiver --port 0 --delay 0.02 --secret whsec_…
    → prints "READY <port>" on stdout, then serves:

    POST /hooks                  an event (any path but the two below)
    GET  /_stats                 {"received", "unique", "bad"}
    GET  /_dump                  {"receipts": [[event id, contact id, unix time], …]} in arrival order
    POST /_reset                 forget everything
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time

from .miniserver import serve


class State:
    def __init__(self, secret: str, delay: float):
        self.key = base64.b64decode(secret.removeprefix("whsec_"))
        self.delay = delay
        self.reset()

    def reset(self) -> None:
        self.receipts: list[tuple[str, int | None, float]] = []
        self.seen: set[str] = set()
        self.bad = 0

    def take(self, headers: dict[str, str], body: bytes) -> bool:
        """Check and record one event; False when its signature is wrong."""
        event_id = headers.get("webhook-id", "")
        stamp = headers.get("webhook-timestamp", "")
        mac = hmac.new(self.key, f"{event_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(mac).decode()
        if expected not in headers.get("webhook-signature", "").split(" "):
            self.bad += 1
            return False
        contact = (json.loads(body)["data"].get("contact") or {}).get("id")
        self.receipts.append((event_id, contact, time.time()))
        self.seen.add(event_id)
        return True


def reply(status: int, body: bytes = b"") -> bytes:
    reason = {200: "OK", 204: "No Content", 400: "Bad Request"}.get(status, "X")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: keep-alive\r\n\r\n").encode() + body


async def handle_one(state: State, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    if path == "/_stats":
        return reply(200, json.dumps({"received": len(state.receipts), "unique": len(state.seen),
                                      "bad": state.bad}).encode())
    if path == "/_dump":
        return reply(200, json.dumps({"receipts": state.receipts}).encode())
    if path == "/_reset":
        state.reset()
        return reply(200, b"{}")
    good = state.take(headers, body)
    await asyncio.sleep(state.delay)
    return reply(204 if good else 400)


async def main_async(args) -> None:
    state = State(args.secret, args.delay)
    await serve(lambda method, target, headers, body: handle_one(state, method, target.split("?", 1)[0], headers,
                                                                 body), args.port)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--delay", type=float, default=0.02)
    p.add_argument("--secret", required=True)
    try:
        asyncio.run(main_async(p.parse_args()))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
