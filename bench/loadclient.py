"""A lean HTTP/1.1 client for the load benches: one keep-alive connection per simulated client, each request
written as bytes, each answer read by its Content-Length.

The load benches run their clients on the same 2 cores as the server, so what a request costs the client is
taken from the server. httpx's ``AsyncClient`` costs 2 to 4 ms of CPU a request at C=50 (its pool's bookkeeping
grows with the requests waiting): bench 11's process ran at 90-94% of a core while ``followup serve`` used
30-47%, and the rates it reported were the client's. This client costs tens of µs a request.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import urlsplit

__all__ = ["Connection", "Pool"]

T = TypeVar("T")

#: seconds an answer may take before the bench gives up on it
TIMEOUT = 30.0


class Connection:
    """One keep-alive connection to ``base``, opened on the first request and again after the server closed it
    (a request is then sent again: at most twice more; ``retries`` counts them)."""

    def __init__(self, base: str, headers: dict[str, str] | None = None):
        url = urlsplit(base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        fixed = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.retries = 0

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self._send(f"GET {path} HTTP/1.1\r\n{self._head}\r\n".encode())

    async def post_json(self, path: str, value: Any) -> tuple[int, bytes]:
        body = json.dumps(value).encode()
        head = (f"POST {path} HTTP/1.1\r\n{self._head}Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        return await self._send(head.encode() + body)

    async def _send(self, request: bytes) -> tuple[int, bytes]:
        for attempt in range(3):
            try:
                async with asyncio.timeout(TIMEOUT):
                    return await self._exchange(request)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt == 2:
                    raise
                self.retries += 1
        raise AssertionError("unreachable")

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" not in fields:
            raise RuntimeError(f"an answer without Content-Length ({lines[0]}): this client reads no other kind")
        body = await self._reader.readexactly(int(fields["content-length"]))
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self._reader = self._writer = None


class Pool:
    """Connections to ``base`` for requests offered at a pace: each request takes an idle one, or opens a new
    one when none is idle."""

    def __init__(self, base: str, headers: dict[str, str] | None = None):
        self.base, self.headers = base, headers
        self._idle: list[Connection] = []
        self._opened: list[Connection] = []

    async def __aenter__(self) -> "Pool":
        return self

    async def __aexit__(self, *exc: object) -> None:
        for conn in self._opened:
            await conn.close()

    async def use(self, call: Callable[[Connection], Awaitable[T]]) -> T:
        """``call``'s result on an idle connection, which is idle again afterwards."""
        if self._idle:
            conn = self._idle.pop()
        else:
            conn = Connection(self.base, self.headers)
            self._opened.append(conn)
        try:
            return await call(conn)
        finally:
            self._idle.append(conn)
