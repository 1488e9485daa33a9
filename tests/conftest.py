"""Shared fixtures: a throwaway config + database ("world"), driven by freezegun and tick()."""
from __future__ import annotations

import os
from typing import Any

import freezegun
import pytest
from freezegun import freeze_time

from bench.faults import end
from bench.world import World
from engine.service.context import ServiceContext

from . import databases
from . import processes as _processes

PG_URL = databases.worker_postgres_url(os.environ.get("FOLLOWUP_TEST_POSTGRES_URL"))
if PG_URL:  # the tests and the processes they start that read the variable themselves get this worker's database
    os.environ["FOLLOWUP_TEST_POSTGRES_URL"] = PG_URL

# pytest times each test with _pytest.timing: a frozen clock there would make --durations report nonsense
freezegun.configure(extend_ignore_list=["_pytest.timing"])


def winter_sequence(**offer: Any) -> dict:
    return {
        "name": "winter",
        "offer": {"code": "WINTER20", "title": "۲۰٪ تخفیف پالتو", "expires_after": "72h", "stock": 5, **offer},
        "touches": [
            {"name": "hello", "after": "0s", "channel": "sms", "template": "winter/hello.sms.j2"},
            {"name": "value", "after": "1d", "channel": "email", "template": "winter/value.email.j2"},
            {"name": "reminder", "after": "1d", "channel": "sms", "template": "winter/reminder.sms.j2"},
            {"name": "last-chance", "after": "12h", "channel": "sms", "template": "winter/last-chance.sms.j2",
             "urgent": True},
        ],
    }


def simple_sequence(name: str, after: str = "1h", channel: str = "sms", **extra: Any) -> dict:
    return {"name": name, **extra, "touches": [
        {"name": f"t{i}", "after": "0s" if i == 0 else after, "channel": channel, "template": "plain.sms.j2"}
        for i in range(3)]}


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory):
    return databases.migrated_sqlite(tmp_path_factory.mktemp("template"))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    """A migrated database with nothing in it: on SQLite always, and on PostgreSQL when
    FOLLOWUP_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        databases.copy_sqlite(request.getfixturevalue("_sqlite_template"), tmp_path / "followup.db")
        return f"sqlite:///{tmp_path}/followup.db"
    if not PG_URL:
        pytest.skip("FOLLOWUP_TEST_POSTGRES_URL is not set")
    return databases.migrated_postgres(PG_URL)


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_db_url(request, tmp_path) -> str:
    """A database with no schema yet, on SQLite and on PostgreSQL (as ``db_url``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/followup.db"
    if not PG_URL:
        pytest.skip("FOLLOWUP_TEST_POSTGRES_URL is not set")
    return databases.empty_postgres(PG_URL)


@pytest.fixture
def frozen():
    """The frozen clock, starting Saturday 2026-12-05 10:00 in Tehran (06:30 UTC)."""
    with freeze_time("2026-12-05 06:30:00", tz_offset=0) as clock:
        yield clock


@pytest.fixture
def make_world(tmp_path, db_url):
    worlds = []

    def build(sequences: list[dict], **kw) -> World:
        world = World(tmp_path / f"w{len(worlds)}", db_url, sequences, **kw)
        worlds.append(world)
        return world

    yield build
    for world in worlds:
        world.close()


@pytest.fixture(autouse=True)
def _apps_shut_down(monkeypatch):
    """Every service app a test made is shut down after it, as its server would be: its queued clicks and
    event writes are written then, into this test's database, never by a thread left running in the next."""
    made: list[ServiceContext] = []
    post_init = ServiceContext.__post_init__

    def track(ctx: ServiceContext) -> None:
        post_init(ctx)
        made.append(ctx)

    monkeypatch.setattr(ServiceContext, "__post_init__", track)
    yield
    for ctx in made:
        ctx.close()


@pytest.fixture
def processes():
    """``processes(proc)`` returns ``proc``, which is killed (if it still runs) and reaped after the test,
    whether it passed or failed."""
    started: list = []

    def track(proc):
        started.append(proc)
        return proc

    yield track
    for proc in started:
        end(proc)


@pytest.fixture(autouse=True)
def _ends_what_it_starts():
    """A test that leaves a process running fails (in its teardown), and the process is killed."""
    before = set(_processes.descendants())
    yield
    # checked while waiting: a process a background thread is starting is a copy of pytest until its exec
    left = _processes.still_running(_processes.descendants(besides=before), timeout=10,
                                    unless=_processes.outlives_a_test)
    left = {pid: _processes.command(pid) for pid in left}
    if left:
        _processes.kill(left)
        pytest.fail("the test left these processes running (killed now); end them in a fixture or a finally: "
                    + "; ".join(f"{pid}: {cmd[:200]}" for pid, cmd in left.items()), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _no_process_outlives_the_session():
    """Nothing the session started (a module's server, a browser) runs after it."""
    before = _processes.descendants()
    yield
    left = {pid: cmd for pid, cmd in _processes.descendants().items() if pid not in before}
    left = _processes.still_running(left, timeout=10)
    if left:
        _processes.kill(left)
        pytest.fail("processes still running at the end of the session (killed now): "
                    + "; ".join(f"{pid}: {cmd[:200]}" for pid, cmd in left.items()), pytrace=False)
