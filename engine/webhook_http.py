"""POSTing webhooks: a keep-alive connection per thread and origin, on the standard library's ``http.client``.

A delivery lane POSTs one event after the other to the same URL, so each lane keeps its own connection
(nothing is shared between threads, no pool to lock). ``http.client`` costs a third of ``requests``' CPU per
POST, which is what bounds the deliveries a second (``python -m bench.outbox``). TLS is verified with the
system's certificates; redirects are not followed (an answer other than 2xx is a failure); no proxy.

A connection the server closed while idle shows as an error on its next request: that request is sent once
more on a new connection (at least once: the receiver drops a repeat by its ``webhook-id``).
"""
from __future__ import annotations

import http.client
import ssl
import threading
from urllib.parse import urlsplit

__all__ = ["Poster"]

#: what a connection the server closed while idle raises on its next request
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class Poster:
    """POSTs bodies; one keep-alive connection per thread and (scheme, host, port)."""

    def __init__(self, connect_timeout: float = 5.0, read_timeout: float = 10.0):
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._tls = ssl.create_default_context()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[http.client.HTTPConnection] = []

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body`` to ``url``; return the answer's status. Raises OSError or ``http.client.HTTPException``
        when there is no answer."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname, parts.port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conns: dict = self._local.__dict__.setdefault("conns", {})
        conn = conns.get(key)
        if conn is not None and conn.sock is None:  # closed by close() or by the server's Connection: close
            conn = None
        try:
            if conn is not None:
                try:
                    return self._send(conn, target, body, headers)
                except STALE:
                    conn.close()
            conn = conns[key] = self._connect(parts)
            return self._send(conn, target, body, headers)
        except BaseException:
            if conn is not None:
                conn.close()
            conns.pop(key, None)
            raise

    def close(self) -> None:
        """Close every connection opened so far (the threads that used them are done)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()

    def _connect(self, parts) -> http.client.HTTPConnection:
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=self.connect_timeout, context=self._tls)
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.connect_timeout)
        conn.connect()
        conn.sock.settimeout(self.read_timeout)
        with self._lock:
            self._opened = [c for c in self._opened if c.sock is not None] + [conn]
        return conn

    @staticmethod
    def _send(conn: http.client.HTTPConnection, target: str, body: bytes, headers: dict[str, str]) -> int:
        conn.request("POST", target, body=body, headers=headers)
        answer = conn.getresponse()
        answer.read()
        return answer.status
