"""Helpers for the service tests: a World with an API key, and a real server in a subprocess."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
from fastapi.testclient import TestClient

from engine.apikeys import create_key
from engine.service import create_app
from engine.service.options import ServiceOptions

SECRET = "test-secret-key-0123456789"
PASSWORD = "dashboard-pass-42"
SERVICE_SETTINGS = {"secret_key": SECRET, "unsubscribe_url": "https://shop.example/u/{token}"}


def api_client(world, *, public_url: str | None = None) -> tuple[TestClient, str]:
    """A TestClient on the world's app (no auth header) and a fresh valid API key."""
    with world.engine.begin() as conn:
        key = create_key(conn, f"test-{os.urandom(3).hex()}")
    options = ServiceOptions(dashboard_password=PASSWORD, public_url=public_url)
    client = TestClient(create_app(world.config, engine=world.engine, options=options), raise_server_exceptions=False)
    return client, key


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def followup(*args: str, config: Path, env: dict | None = None, **kw) -> subprocess.Popen:
    """Start ``followup ARGS`` in a subprocess against the config folder."""
    cmd = [sys.executable, "-c", "from engine.cli import main; main()", "--config", str(config), *args]
    full_env = {**os.environ, "FOLLOWUP_DASHBOARD_PASSWORD": PASSWORD, **(env or {})}
    full_env.pop("FOLLOWUP_DATABASE_URL", None)
    return subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def wait_for_server(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll /healthz until the real server answers (the only waiting these tests do)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stdout.read().decode(errors='replace')}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up")


@contextmanager
def serving(config: Path) -> Iterator[str]:
    """``followup serve`` on a free port for the config folder, until the block ends; yields its base URL."""
    port = free_port()
    server = followup("serve", "--port", str(port), config=config)
    try:
        wait_for_server(f"http://127.0.0.1:{port}", server)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return (out or b"").decode(errors="replace")
