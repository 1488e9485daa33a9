"""What the provider adapter tests share: a routed fake panel per module, payload files, a dead port."""
from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Callable

import pytest

from tests.fakes.httpserver import FakeHttpServer, Reply

DATA = Path(__file__).parent / "data"

MATCHERS: dict[str, Callable[[str, str], bool]] = {
    "suffix": lambda path, route: path.endswith(route),
    "prefix": lambda path, route: path.startswith(route),
    "exact": lambda path, route: path == route,
}


def load_payload(provider: str, name: str):
    """A reply body kept in tests/data/<provider>/<name>."""
    return json.loads((DATA / provider / name).read_text("utf-8"))


def closed_port_url() -> str:
    """An address on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def routed_server_fixtures(match: str = "suffix"):
    """Two fixtures: ``_server`` (one fake panel per module; its shutdown is too slow to pay per test)
    answering ``server.routes[route]`` for the first route that matches the path, and ``server``
    (the same, with routes and recorded requests cleared for each test)."""
    matches = MATCHERS[match]

    @pytest.fixture(scope="module", name="_server")
    def _server():
        routes: dict[str, Reply] = {}

        def handler(req):
            for route, reply in routes.items():
                if matches(req.path, route):
                    return reply
            return Reply(404, "no route")

        with FakeHttpServer(handler) as srv:
            srv.routes = routes
            yield srv

    @pytest.fixture(name="server")
    def server(_server):
        _server.routes.clear()
        _server.requests.clear()
        return _server

    return _server, server


def answering_server_fixtures(make: Callable):
    """Two fixtures: ``server`` (one fake API per module) and ``serve(reply or handler, **settings)``,
    which points the server at that answer and returns ``(make(server.url, **settings), server)``."""

    @pytest.fixture(scope="module", name="server")
    def server():
        with FakeHttpServer(lambda req: Reply()) as srv:  # stopping a server takes 0.5 s: one per module
            yield srv

    @pytest.fixture(name="serve")
    def serve(server):
        def start(reply, **settings):
            server.handler, server.requests[:] = reply if callable(reply) else (lambda req: reply), []
            return make(server.url, **settings), server
        return start

    return server, serve
