"""A provider's pause reads the same everywhere: `followup stats`, `followup providers`, the dashboard and
the worker agree on which providers are paused now, and an expired pause needs nothing to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from engine.clock import now
from engine.models import ProviderState
from engine.service.queries import provider_overview
from engine.store import active_pauses, resume_provider

from .conftest import World, simple_sequence

FOLLOWUP = str(Path(sys.executable).parent / "followup")
PROVIDERS = {"providers": {"sms": [{"name": "kave", "type": "memory"}, {"name": "backup", "type": "memory"},
                                   {"name": "spare", "type": "memory"}],
                           "email": [{"name": "mail", "type": "memory"}]}}


def run(world: World, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FOLLOWUP_CONFIG": str(world.root / "config"), "COLUMNS": "200"}
    result = subprocess.run([FOLLOWUP, *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def paused_world(tmp_path) -> World:
    """kave's pause ended an hour ago (its row still says paused), backup is paused for an hour more,
    spare is paused until resumed by hand."""
    world = World(tmp_path, f"sqlite:///{tmp_path}/p.db", [simple_sequence("a")], settings=PROVIDERS)
    at = now()
    with world.engine.begin() as conn:
        for name, until in (("kave", at - timedelta(hours=1)), ("backup", at + timedelta(hours=1)), ("spare", None)):
            conn.execute(sa.insert(ProviderState.__table__).values(name=name, state="paused", paused_until=until,
                                                                   reason=f"{name}: HTTP 403", updated_at=at))
    return world


def test_stats_providers_the_dashboard_and_the_worker_agree_on_which_providers_are_paused(tmp_path):
    world = paused_world(tmp_path)
    stats = json.loads(run(world, "stats", "--json").stdout)
    listed = {cells[0]: cells[-1] for line in run(world, "providers").stdout.splitlines()
              if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) > 1}
    with world.engine.connect() as conn:
        dashboard = {p["name"]: p["state"] for p in provider_overview(conn, world.config, now() - timedelta(hours=1))}
        worker = set(active_pauses(conn))
    assert stats["paused_providers"] == {"backup": "backup: HTTP 403", "spare": "spare: HTTP 403"}
    assert listed["kave"] == listed["mail"] == "active"
    assert listed["backup"].startswith("paused until 20") and listed["backup"].endswith("backup: HTTP 403")
    assert listed["spare"] == "paused until resumed: spare: HTTP 403"
    assert dashboard == {"kave": "active", "backup": "paused", "spare": "paused", "mail": "active"}
    assert worker == {"backup", "spare"}


def test_a_resumed_provider_is_active_everywhere(tmp_path):
    world = paused_world(tmp_path)
    run(world, "providers", "resume", "backup")
    with world.engine.begin() as conn:
        resume_provider(conn, "spare")
    stats = json.loads(run(world, "stats", "--json").stdout)
    with world.engine.connect() as conn:
        dashboard = {p["name"]: p["state"] for p in provider_overview(conn, world.config, now() - timedelta(hours=1))}
        assert not active_pauses(conn)
    assert stats["paused_providers"] == {}
    assert set(dashboard.values()) == {"active"}


def test_the_http_service_does_not_import_the_worker():
    code = ("import sys; import engine.service.app, engine.validate; "
            "print(sorted(m for m in ('engine.dispatch', 'engine.worker', 'engine.recovery') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
