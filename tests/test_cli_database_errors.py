"""A database the command line cannot open or write is one line naming the URL (password masked), what
failed and what to do, exit status 3; ``-v`` adds the traceback. Real subprocesses on real failures: a
PostgreSQL role that does not exist, an SQLite path under a file, a read-only folder.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

FOLLOWUP = str(Path(sys.executable).parent / "followup")
PASSWORD = "pw-Zq81-never-shown"
NO_ROLE_URL = f"postgresql+psycopg://shop:{PASSWORD}@127.0.0.1:5432/shop"
COMMANDS = [("db", "upgrade"), ("stats",), ("contacts", "import", "leads.csv"), ("event", "09121234567", "converted"),
            ("worker", "--once"), ("providers",), ("apikey", "create", "ci"), ("logs",)]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dberrors")
    subprocess.run([FOLLOWUP, "init", str(root)], check=True, capture_output=True, timeout=60)
    (root / "leads.csv").write_text("phone\n09121234567\n", encoding="utf-8")
    return root


def followup(root: Path, url: str, *args: str, as_user_without_override: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOLLOWUP_")}
    env.update(FOLLOWUP_DATABASE_URL=url, COLUMNS="1000", NO_COLOR="1", PYTHONIOENCODING="utf-8")
    command = [FOLLOWUP, "--config", str(root / "config"), *args]
    if as_user_without_override and os.geteuid() == 0:
        # root writes anywhere: drop the capabilities that let it, so the folder's mode applies
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, encoding="utf-8", timeout=60)


def assert_one_line(proc: subprocess.CompletedProcess, starts: str) -> str:
    shown = f"{proc.args} → {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert proc.returncode == 3, shown
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(starts), shown
    assert "Traceback" not in proc.stderr and PASSWORD not in proc.stderr + proc.stdout, shown
    return lines[0]


def test_a_postgresql_role_that_does_not_exist_is_one_line_with_the_password_masked(project):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda args: followup(project, NO_ROLE_URL, *args), COMMANDS))
    for proc in results:
        line = assert_one_line(proc, "error: database postgresql+psycopg://shop:***@127.0.0.1:5432/shop: cannot connect: ")
        # the server's own reason, then what to do about it
        assert ('role "shop" does not exist' in line and "create that role" in line) or "password" in line \
            or "Connection refused" in line, line
        assert line.endswith("FOLLOWUP_DATABASE_URL"), line


def test_verbose_adds_the_traceback_and_still_masks_the_password(project):
    proc = followup(project, NO_ROLE_URL, "-v", "db", "upgrade")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr and "OperationalError" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("error: database postgresql+psycopg://shop:***@127.0.0.1:5432/shop")
    assert PASSWORD not in proc.stderr + proc.stdout


def test_an_sqlite_path_under_a_file_names_the_file_in_the_way(project, tmp_path):
    (tmp_path / "blocker").write_text("a file, not a folder\n")
    url = f"sqlite:///{tmp_path}/blocker/x.db"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda args: followup(project, url, *args), COMMANDS))
    for proc in results:
        line = assert_one_line(proc, f"error: database {url}: cannot create the folder {tmp_path}/blocker: ")
        assert "a file of that name is in the way; point FOLLOWUP_DATABASE_URL at a path inside a folder" in line


@pytest.fixture
def read_only(tmp_path):
    """A folder holding a migrated database, then made read-only (the files too)."""
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: a read-only folder cannot be made")
    folder = tmp_path / "ro"
    folder.mkdir()
    yield folder
    for path in [folder, *folder.iterdir()]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_a_read_only_folder_is_one_line_for_reads_writes_and_a_new_database(project, read_only):
    url = f"sqlite:///{read_only}/t.db"
    upgraded = followup(project, url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    for path in [*read_only.iterdir(), read_only]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    run = lambda *args: followup(project, *args, as_user_without_override=True)  # noqa: E731
    line = assert_one_line(run(url, "apikey", "create", "ci"), f"error: database {url}: cannot write: ")
    assert "readonly database; make the file and its folder writable by this user" in line
    line = assert_one_line(run(url, "worker", "--once"), f"error: database {url}: cannot create {read_only}/t.db.worker.lock: ")
    assert "make its folder writable by this user" in line
    fresh = f"sqlite:///{read_only}/new.db"
    line = assert_one_line(run(fresh, "db", "upgrade"), f"error: database {fresh}: cannot open: unable to open database file; ")
    assert "may write there" in line
    assert run(url, "stats").returncode == 0  # reading still works


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:shop?mode=memory&uri=true"])
def test_an_in_memory_sqlite_database_is_refused_with_what_to_use(project, url):
    proc = followup(project, url, "stats")
    shown = f"{proc.args} → {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, shown
    assert "database_url: an in-memory SQLite database lives in one connection of one process" in proc.stderr, shown
    assert "use a file, e.g. sqlite:///../var/followup.db" in proc.stderr, shown
