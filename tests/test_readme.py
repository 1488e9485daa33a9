"""The README's examples, run as a reader would run them: every code block is either run here or named below
with the reason it is not (a new block fails ``test_every_readme_block_is_run_or_excused`` until it is one or the
other), and the command table lists exactly the commands ``followup`` has.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from engine.cli import cli
from tests.service_support import free_port, stop, wait_for_server

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
FOLLOWUP = str(Path(shutil.which("followup") or Path(os.sys.executable).parent / "followup"))
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
#: blocks not run here, each named by a line it holds, with why
EXCUSED = {
    "make run    # sets up": "the two front-door commands: CI runs `make test`, and `make run` never ends",
    "pending ─▶ scheduled": "a diagram",
    "export FOLLOWUP_DATABASE_URL=postgresql": "needs a PostgreSQL server and several long-running workers",
    "chaos[postgresql": "the output of `make chaos`, which bench.chaos prints",
    "make test                                   # the whole suite": "the development commands: CI runs them",
    "export KAVENEGAR_API_KEY=...": "calls the real providers' APIs",
}


def blocks() -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in BLOCK.findall(README)]


def block(lang: str, first: str) -> str:
    """The one ``lang`` block whose text holds ``first``."""
    found = [body for kind, body in blocks() if kind == lang and first in body]
    assert len(found) == 1, f"the README should have one {lang} block with {first!r}"
    return found[0]


@pytest.fixture
def project(tmp_path) -> Path:
    """The repository's own config/ and templates/, copied, as `make run` uses them."""
    for part in ("config", "templates"):
        shutil.copytree(ROOT / part, tmp_path / part)
    return tmp_path


def run(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("FOLLOWUP_")}, **(env or {}),
                "FOLLOWUP_DATABASE_URL": f"sqlite:///{project / 't.db'}", "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([FOLLOWUP, "--config", str(project / "config"), *args], cwd=project, env=full_env,
                          capture_output=True, text=True, encoding="utf-8", timeout=120)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result


# -- every block is accounted for --------------------------------------------------------------
RUN_HERE = ("name: winter-sale", "name: winter-journey", "database_url: sqlite:///../var/followup.db",
            "providers:\n  sms:\n", "{{ contact.first_name }}", "curl -s", ".venv/bin/followup logs --follow",
            "when: {any: [replied", "scoring: {clicked: 5")


def test_every_readme_block_is_run_or_excused():
    for lang, body in blocks():
        runs = [marker for marker in RUN_HERE if marker in body]
        excused = [marker for marker in EXCUSED if marker in body]
        assert len(runs) + len(excused) == 1, f"README block ```{lang} {body[:60]!r}: run it here or excuse it"


# -- configuration -----------------------------------------------------------------------------
def test_the_sequence_example_is_the_repository_file():
    shown = yaml.safe_load(block("yaml", "name: winter-sale"))
    assert shown == yaml.safe_load((ROOT / "config/sequences/winter-sale.yaml").read_text(encoding="utf-8"))


def test_the_settings_example_validates(project):
    (project / "config/settings.yaml").write_text(block("yaml", "database_url: sqlite:///../var/followup.db"),
                                                  encoding="utf-8")
    ok(run(project, "validate"))


def test_the_handoff_and_sales_examples_validate(project):
    """The repository's winter-sale with the handoff example, settings with the scoring and sales examples."""
    sequence = project / "config/sequences/winter-sale.yaml"
    sequence.write_text(sequence.read_text(encoding="utf-8") + block("yaml", "when: {any: [replied"), encoding="utf-8")
    settings = project / "config/settings.yaml"
    text = settings.read_text(encoding="utf-8")
    text += "secret_key: " + "k" * 32 + "\n"
    settings.write_text(text + block("yaml", "scoring: {clicked: 5"), encoding="utf-8")
    ok(run(project, "validate"))


@pytest.mark.parametrize("index", range(len([b for k, b in blocks() if k == "yaml" and b.startswith("providers:")])))
def test_each_provider_example_validates(project, index):
    example = [b for k, b in blocks() if k == "yaml" and b.startswith("providers:")][index]
    settings = project / "config/settings.yaml"
    text = settings.read_text(encoding="utf-8")
    start = text.index("providers:")
    after = start + len("providers:")
    end = re.search(r"^\S", text[after:], re.M)
    settings.write_text(text[:start] + example + (text[after + end.start():] if end else ""), encoding="utf-8")
    secrets = {name: f"readme-{name.lower()}-0123456789" for name in re.findall(r"\$\{(\w+)\}", example)}
    ok(run(project, "validate", env=secrets))


def test_the_journey_example_validates_and_its_paths_send_at_most_four(project):
    text = block("yaml", "name: winter-journey")
    (project / "config/sequences/winter-journey.yaml").write_text(text, encoding="utf-8")
    ok(run(project, "validate"))
    from engine.conditions import max_sends_on_a_path
    from engine.sequences import load_sequences

    touches = load_sequences(project / "config")["winter-journey"].touches
    waits = [(t.name, t.only_if, (t.wait.event, t.wait.touch, False) if t.wait else None) for t in touches]
    assert max_sends_on_a_path(waits)[0] == 4  # the click path sends the follow-up, the other the nudge


def test_the_template_example_renders(project):
    template = project / "templates/winter-sale/hello.sms.j2"
    template.write_text(block("jinja", "{{ contact.first_name }}"), encoding="utf-8")
    shown = ok(run(project, "preview", "winter-sale")).stdout
    assert "تا پایان ۲۰٪ تخفیف همه پالتوها مانده" in shown and "۵۰۰" in shown


# -- commands ----------------------------------------------------------------------------------
def _commands(group, prefix: str = "followup") -> set[str]:
    found = set()
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        found.add(path)
        if hasattr(command, "commands"):
            found |= _commands(command, path)
    return found


def test_the_command_table_lists_every_command():
    groups = {name: command for name, command in cli.commands.items() if hasattr(command, "commands")}
    listed = set()
    for row in re.findall(r"^\| `(followup [^`]*)` \|", README, re.M):
        _, name, *rest = row.split()
        listed.add(f"followup {name}")
        if name in groups:
            words = set(re.findall(r"[a-z][a-z-]*", " ".join(rest)))
            listed |= {f"followup {name} {sub}" for sub in groups[name].commands if sub in words}
    commands = _commands(cli)
    assert commands - listed - {f"followup {g}" for g in groups} == set(), "commands missing from the README's table"
    assert {c for c in listed if c.count(" ") == 1} - commands == set(), "the README lists commands that do not exist"


def test_the_make_run_commands_answer(project):
    ok(run(project, "db", "upgrade"))
    ok(run(project, "contacts", "import", str(project / "config/example-contacts.csv")))
    ok(run(project, "enroll", "winter-sale", "--tag", "winter"))
    for line in block("sh", ".venv/bin/followup logs --follow").splitlines():
        command = shlex.split(line.partition("#")[0])
        if not command or "--follow" in command:
            continue  # --follow prints until Ctrl-C; `logs` itself is run below
        assert command[0] == ".venv/bin/followup", line
        ok(run(project, *command[1:]))
    ok(run(project, "logs"))


def test_the_api_examples_answer(project):
    ok(run(project, "db", "upgrade"))
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FOLLOWUP_")},
           "FOLLOWUP_DATABASE_URL": f"sqlite:///{project / 't.db'}", "FOLLOWUP_DASHBOARD_PASSWORD": "readme-pass-0123"}
    server = subprocess.Popen([FOLLOWUP, "--config", str(project / "config"), "serve", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_server(f"http://127.0.0.1:{port}", server)
        script = block("sh", "curl -s").replace("http://127.0.0.1:8080", f"http://127.0.0.1:{port}")
        script = script.replace(".venv/bin/followup", f"{shlex.quote(FOLLOWUP)} --config {shlex.quote(str(project / 'config'))}")
        script = script.replace("curl -s", "curl -sS --fail-with-body")
        answer = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True,
                                encoding="utf-8", timeout=120)
        assert answer.returncode == 0, f"{answer.stdout}\n{answer.stderr}"
        assert '"created":1' in answer.stdout.replace(" ", "") and '"recorded":true' in answer.stdout.replace(" ", "")
        assert '"converted"' in answer.stdout
    finally:
        stop(server)


def test_the_column_names_table_is_the_importers():
    from engine.columns import ALIASES

    rows = re.findall(r"^\| `(\w+)` \| (.+) \|$", README.split("| column | also read from |", 1)[1].split("\n\n", 1)[0],
                      re.M)
    assert {column: tuple(names.split(", ")) for column, names in rows} == ALIASES
