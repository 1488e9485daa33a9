"""The bench's fake servers' HTTP/1.1: a minimal keep-alive parser on asyncio streams (never the bottleneck).

    async def handle(method, target, headers, body) -> bytes: ...   # headers: lower-case names
    await serve(handle, port)   # prints "READY <port>", then serves until cancelled
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

Handler = Callable[[str, str, dict[str, str], bytes], Awaitable[bytes]]


async def serve_conn(handle: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One connection's requests, one after the other, until the client closes it or asks to."""
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                break
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            try:
                body = await reader.readexactly(length) if length else b""
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            out = await handle(method, target, headers, body)
            try:
                writer.write(out)
                await writer.drain()
            except ConnectionError:
                break
            if "close" in headers.get("connection", "").lower():
                break
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def serve(handle: Handler, port: int) -> None:
    """Listen on 127.0.0.1:``port`` (0: any), say ``READY <port>`` on stdout, serve forever."""
    server = await asyncio.start_server(lambda r, w: serve_conn(handle, r, w), "127.0.0.1", port,
                                        backlog=2048, limit=1 << 20)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()
