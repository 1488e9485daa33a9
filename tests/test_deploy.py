"""deploy/: the systemd units pass ``systemd-analyze verify`` (where it exists), and every followup command that the
units, the Dockerfile and the compose file run is a real command with real options."""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from engine.cli import cli

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
INSTALLED = "/opt/followup/.venv/bin/followup"
FOLLOWUP = str(Path(sys.executable).parent / "followup")


def accepts(args: list[str]) -> None:
    """``followup ARGS --help`` parses: the command and each option exist (nothing runs)."""
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, f"followup {' '.join(args)}: {result.output}"


def unit_commands(unit: Path) -> list[list[str]]:
    lines = re.findall(r"^Exec\w+=(.*)$", unit.read_text(encoding="utf-8"), re.M)
    return [shlex.split(line)[1:] for line in lines if line.startswith(INSTALLED)]


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_units_run_real_commands(unit):
    commands = unit_commands(unit)
    assert any(c[:1] in (["worker"], ["serve"]) for c in commands), unit
    for args in commands:
        accepts(args)
    text = unit.read_text(encoding="utf-8")
    assert "EnvironmentFile=/etc/followup/env" in text and "Restart=always" in text and "ExecReload=" in text


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_units_pass_systemd_analyze_verify(unit, tmp_path):
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text(encoding="utf-8").replace(INSTALLED, FOLLOWUP), encoding="utf-8")
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_compose_runs_migrate_workers_and_serve_on_postgresql():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"db", "migrate", "worker", "serve"}
    for name in ("migrate", "worker", "serve"):
        accepts(services[name]["command"])
        assert services[name]["environment"]["FOLLOWUP_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_the_dockerfile_copies_what_exists_and_runs_followup():
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    root = DEPLOY.parent
    for sources in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in sources.split():
            assert (root / source).exists(), source
    assert 'ENTRYPOINT ["followup"]' in text
    accepts(json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1)))
