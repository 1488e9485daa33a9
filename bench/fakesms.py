"""A fast fake SMS API (Kavenegar wire format) on 127.0.0.1, for the throughput benches.

Pure asyncio with a minimal HTTP/1.1 keep-alive parser, in its own process, so the server is never the
bottleneck at C=200 on a small machine. Every send answers after ``--delay`` seconds.

    python -m bench.fakesms --port 0 --delay 0.05 [--fail5xx 0.05] [--fail429 0.05] [--limit 100 --burst 20]
    → prints "READY <port>" on stdout, then serves:

    POST /v1/{key}/sms/send.json                 form: receptor, message, sender, localid
    POST /v1/{key}/sms/statuslocalmessageid.json form: localid  (reconciliation after a crash)
    GET  /_stats                                 counters and per-localid receipt times
    POST /_reset?delay=&fail5xx=&fail429=&limit=&burst=   clear counters, change behaviour

Faults: ``fail5xx`` answers 503 (plain text, no Retry-After); ``fail429`` answers HTTP 429 with
``Retry-After: 1`` (plain text, so it maps to a rate limit, not Kavenegar's JSON "IP restricted" 429).
A localid counts as received once the 200 reply is due, whether or not the client is still there
(a worker killed mid-request still "sent" the message).

A panel's rate limit: with ``limit`` > 0 the send API is a token bucket of ``limit`` requests a second
holding at most ``burst``; a send that finds it empty is answered like ``fail429`` (counted in ``f429``).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from urllib.parse import parse_qs, urlsplit

from .miniserver import serve


class State:
    def __init__(self, delay: float, fail5xx: float, fail429: float, seed: int, limit: float = 0.0,
                 burst: float = 1.0):
        self.delay, self.fail5xx, self.fail429 = delay, fail5xx, fail429
        self.limit, self.burst = limit, burst
        self.rng = random.Random(seed)
        self.reset()

    def over_limit(self) -> bool:
        """Take a token from the panel's bucket; True when there is none (the request is refused)."""
        if not self.limit:
            return False
        at = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (at - self.filled_at) * self.limit)
        self.filled_at = at
        if self.tokens < 1:
            return True
        self.tokens -= 1
        return False

    def reset(self) -> None:
        self.requests = 0
        self.send_requests = 0
        self.f5xx = 0
        self.f429 = 0
        self.lookups = 0
        self.sent: dict[str, list[float]] = {}  # localid → receipt times of accepted sends
        self.next_id = 1000
        self.tokens, self.filled_at = self.burst, time.monotonic()


def reply(status: int, body: bytes, ctype: str = "application/json", extra: str = "") -> bytes:
    reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable"}.get(status, "X")
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n{extra}"
            "Connection: keep-alive\r\n\r\n")
    return head.encode() + body


def ok(entries) -> bytes:
    return reply(200, json.dumps({"return": {"status": 200, "message": "ok"}, "entries": entries}).encode())


async def handle_one(state: State, method: str, target: str, body: bytes) -> bytes:
    state.requests += 1
    parts = urlsplit(target)
    path = parts.path
    if path == "/_stats":
        sent = state.sent
        dup = sum(1 for v in sent.values() if len(v) > 1)
        data = {"requests": state.requests - 1, "send_requests": state.send_requests, "f5xx": state.f5xx,
                "f429": state.f429, "lookups": state.lookups, "accepted": sum(len(v) for v in sent.values()),
                "unique": len(sent), "duplicates": dup}
        if "times" in parts.query:
            data["times"] = sent
        return reply(200, json.dumps(data).encode())
    if path == "/_reset":
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        for key in ("delay", "fail5xx", "fail429", "limit", "burst"):
            if key in q:
                setattr(state, key, float(q[key]))
        state.reset()
        return reply(200, b"{}")
    form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    if path.endswith("/sms/send.json"):
        state.send_requests += 1
        if state.over_limit():
            state.f429 += 1
            return reply(429, b"slow down", "text/plain", "Retry-After: 1\r\n")
        roll = state.rng.random()
        await asyncio.sleep(state.delay)
        if roll < state.fail5xx:
            state.f5xx += 1
            return reply(503, b"upstream busy", "text/plain")
        if roll < state.fail5xx + state.fail429:
            state.f429 += 1
            return reply(429, b"slow down", "text/plain", "Retry-After: 1\r\n")
        localid = form.get("localid", "")
        state.sent.setdefault(localid, []).append(time.time())
        state.next_id += 1
        return ok([{"messageid": state.next_id, "message": form.get("message", ""), "status": 1, "statustext": "queued",
                    "sender": form.get("sender"), "receptor": form.get("receptor"), "date": int(time.time()),
                    "cost": 120}])
    if path.endswith("/sms/statuslocalmessageid.json"):
        state.lookups += 1
        localid = form.get("localid", "")
        if localid in state.sent:
            return ok([{"messageid": 5000 + len(state.sent[localid]), "localid": localid, "status": 1}])
        return ok([{"messageid": 0, "localid": localid, "status": 100}])
    if path.endswith("/sms/status.json"):
        ids = form.get("messageid", "").split(",")
        return ok([{"messageid": i, "status": 10, "statustext": "delivered"} for i in ids if i])
    if path.endswith("/account/info.json"):
        return ok({"remaincredit": 1e9, "expiredate": 0, "type": "master"})
    return reply(404, b'{"return": {"status": 404, "message": "not found"}, "entries": null}')


async def main_async(args) -> None:
    state = State(args.delay, args.fail5xx, args.fail429, args.seed, args.limit, args.burst)
    await serve(lambda method, target, _headers, body: handle_one(state, method, target, body), args.port)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--delay", type=float, default=0.05)
    p.add_argument("--fail5xx", type=float, default=0.0)
    p.add_argument("--fail429", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--limit", type=float, default=0.0, help="send requests a second the panel allows (0: any)")
    p.add_argument("--burst", type=float, default=1.0, help="of which at most this many at once")
    args = p.parse_args()
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
