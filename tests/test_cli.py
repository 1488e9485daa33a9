"""The ``followup`` command line as a user sees it: real subprocesses on a config written by ``followup init``.

Each call costs about a second of imports, so the starter config, a migrated database and an
imported contact list are made once per session and copied into each test's folder, and
independent ``validate`` and ``--help`` calls run side by side.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.processes import OUTLIVES_A_TEST

FOLLOWUP = str(Path(sys.executable).parent / "followup")
REPO_CONFIG = Path(__file__).resolve().parent.parent / "config"
SECRET = "kv-SUPER-secret-7f3a9b"
ALL_DAY = 'send_window: {start: "00:00", end: "24:00", days: all}\n'
PROBLEM_LINE = re.compile(r"^(config|templates)/\S+?(:\d+)?: \S")
SUMMARY = re.compile(r"^\d+ problems? found$")


@dataclass
class Result:
    args: tuple[str, ...]
    rc: int
    out: str
    err: str

    @property
    def problems(self) -> list[str]:
        """stderr of ``validate`` without its closing ``N problems found`` line."""
        return [line for line in self.err.splitlines() if line and not SUMMARY.match(line)]

    def __str__(self) -> str:  # shown by pytest when an assertion fails
        return f"followup {' '.join(self.args)} → {self.rc}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@dataclass
class Project:
    """A folder with config/, templates/ and a database, and the ``followup`` command pointed at it."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    config: Path | None = None  # default: root/config

    @classmethod
    def copy_of(cls, starter: Path, root: Path, db: Path | None = None) -> "Project":
        root.mkdir(parents=True, exist_ok=True)
        for part in ("config", "templates"):
            shutil.copytree(starter / part, root / part)
        if db is not None:
            copy_db(db, root / "t.db")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FOLLOWUP_")}
        env.update(FOLLOWUP_DATABASE_URL=f"sqlite:///{root / 't.db'}", COLUMNS="1000", PYTHONIOENCODING="utf-8",
                   NO_COLOR="1")
        return cls(root, env)

    @property
    def db(self) -> Path:
        return self.root / "t.db"

    def run(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        full_env = {**self.env, **(env or {})}
        full_env = {k: v for k, v in full_env.items() if v is not None}
        proc = subprocess.run([FOLLOWUP, "--config", str(self.config or self.root / "config"), *args], cwd=self.root,
                              env=full_env, capture_output=True, text=True, encoding="utf-8", timeout=60)
        return Result(args, proc.returncode, proc.stdout, proc.stderr)

    # -- editing files to break them ----------------------------------------------------------
    def path(self, rel: str) -> Path:
        return self.root / rel

    def write(self, rel: str, text: str) -> None:
        self.path(rel).write_text(text, encoding="utf-8")

    def edit(self, rel: str, old: str, new: str) -> None:
        text = self.path(rel).read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{old!r} should occur once in {rel}"
        self.write(rel, text.replace(old, new))

    def append(self, rel: str, text: str) -> None:
        self.write(rel, self.path(rel).read_text(encoding="utf-8") + text)

    def line_of(self, rel: str, start: str) -> int:
        """The 1-based number of the one line of ``rel`` that starts (after indentation) with ``start``."""
        found = [i for i, line in enumerate(self.path(rel).read_text(encoding="utf-8").splitlines(), 1)
                 if line.lstrip().startswith(start)]
        assert len(found) == 1, f"{start!r} should start exactly one line of {rel}: {found}"
        return found[0]

    def all_day(self) -> None:
        """Open the send window all day, every day, so a send works whatever the time is now."""
        text = self.path(SETTINGS).read_text(encoding="utf-8")
        text = re.sub(r"^send_window:.*?(?=^\S)", ALL_DAY, text, count=1, flags=re.M | re.S)
        self.write(SETTINGS, text)

    def count(self, sql: str) -> int:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql).fetchone()[0]


SETTINGS = "config/settings.yaml"
WELCOME = "config/sequences/welcome-en.yaml"
WINTER = "config/sequences/winter-sale.yaml"
LAST_CHANCE = "templates/winter-sale/last-chance.sms.j2"
HELLO = "templates/winter-sale/hello.sms.j2"
REMINDER = "templates/winter-sale/reminder.sms.j2"
VALUE = "templates/winter-sale/value.email.j2"


def copy_db(src: Path, dest: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{dest}{suffix}")


# -- session-wide starting points ---------------------------------------------------------------
@pytest.fixture(scope="session")
def starter(tmp_path_factory) -> tuple[Path, Result]:
    """``followup init DIR`` run once; each test copies its output."""
    root = tmp_path_factory.mktemp("starter")
    proc = subprocess.run([FOLLOWUP, "init", str(root)], capture_output=True, text=True, encoding="utf-8",
                          env={**os.environ, "COLUMNS": "1000"}, timeout=60)
    return root, Result(("init", str(root)), proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def first_upgrade(starter, tmp_path_factory) -> tuple[Path, Result]:
    """``followup db upgrade`` on an empty database, once: the database every other test copies."""
    project = Project.copy_of(starter[0], tmp_path_factory.mktemp("migrated"))
    result = project.run("db", "upgrade")
    assert result.rc == 0, result
    return project.db, result


@pytest.fixture(scope="session")
def migrated_db(first_upgrade) -> Path:
    return first_upgrade[0]


CONTACTS_CSV = """\
phone,email,first_name,last_name,timezone,locale,tags,external_id
+989121234567,ali@example.com,Ali,Rezaei,Asia/Tehran,fa,winter;vip,crm-1
+989127654321,,Sara,,,fa,winter,crm-2
,john@example.com,John,Smith,America/Toronto,en,newsletter,crm-3
"""
ALI, SARA, JOHN = 1, 2, 3


@pytest.fixture(scope="session")
def populated_db(starter, tmp_path_factory, migrated_db) -> Path:
    """A migrated database holding Ali (ids 1, SMS+email, tag winter), Sara (2, SMS, winter) and John (3, email)."""
    project = Project.copy_of(starter[0], tmp_path_factory.mktemp("populated"), db=migrated_db)
    project.write("contacts.csv", CONTACTS_CSV)
    result = project.run("contacts", "import", "contacts.csv")
    assert result.rc == 0 and "3 created" in result.out, result
    return project.db


@pytest.fixture
def project(starter, tmp_path) -> Project:
    """A fresh copy of the starter config, with no database yet."""
    return Project.copy_of(starter[0], tmp_path / "p")


@pytest.fixture
def migrated(starter, tmp_path, migrated_db) -> Project:
    return Project.copy_of(starter[0], tmp_path / "p", db=migrated_db)


@pytest.fixture
def populated(starter, tmp_path, populated_db) -> Project:
    return Project.copy_of(starter[0], tmp_path / "p", db=populated_db)


# -- init and validate --------------------------------------------------------------------------
def test_init_writes_config_and_templates(starter):
    root, result = starter
    assert result.rc == 0, result
    assert "wrote 14 files" in result.out and "validate" in result.out
    assert (root / SETTINGS).is_file() and (root / WINTER).is_file() and (root / HELLO).is_file()


def test_init_refuses_a_project_that_has_a_config_and_says_what_it_would_write(project):
    project.write(HELLO, "mine")
    project.path(WINTER).unlink()
    proc = subprocess.run([FOLLOWUP, "init", str(project.root)], capture_output=True, text=True, encoding="utf-8",
                          env=project.env, timeout=60)
    assert proc.returncode == 2, proc
    assert "already has config/ and templates/" in proc.stderr and "--force" in proc.stderr
    assert "config/sequences/winter-sale.yaml" in proc.stderr
    assert project.path(HELLO).read_text(encoding="utf-8") == "mine" and not project.path(WINTER).exists()
    forced = subprocess.run([FOLLOWUP, "init", "--force", str(project.root)], capture_output=True, text=True,
                            encoding="utf-8", env=project.env, timeout=60)
    assert forced.returncode == 0 and "wrote 14 files" in forced.stdout
    assert project.path(WINTER).exists() and project.path(HELLO).read_text(encoding="utf-8") != "mine"


def test_a_project_folder_given_as_config_gets_a_hint(project):
    result = subprocess.run([FOLLOWUP, "--config", str(project.root), "validate"], capture_output=True, text=True,
                            encoding="utf-8", env=project.env, timeout=60)
    assert result.returncode == 2 and f"pass --config {project.root / 'config'}" in result.stderr, result


def _settings_and_sequences(p: Project) -> None:
    """Every problem found while loading: settings.yaml and both sequences, reported together."""
    p.append(SETTINGS, "colour: blue\n")
    p.edit(SETTINGS, "timezone: Asia/Tehran", "timezone: Mars/Base")
    p.edit(SETTINGS, 'start: "09:00"', "start: 9am")
    p.edit(SETTINGS, "{name: sandbox-sms, type: file, path: ../var/outbox.jsonl}",
           '{name: kv, type: kavenegar, api_key: "${KAVENEGAR_API_KEY}", sender: "${MISSING_ENV}"}')
    p.edit(SETTINGS, "{name: sandbox-email, type: file, path: ../var/outbox.jsonl}",
           '{name: mail, type: smtp, host: 127.0.0.1, from: "Shop <a@example.com>", username: a, password: $SMTP_PASSWORD}')
    text = p.path(WELCOME).read_text(encoding="utf-8")
    p.write(WELCOME, text[:text.index("  - name: check-in")])  # 2 touches
    p.append(WELCOME, "sample: {city: [a, b]}\n")
    p.edit(WELCOME, "after: 0s", "after: 1x")
    p.edit(WELCOME, "    channel: email\n    template: welcome-en/tips.email.j2\n",
           "    channel: fax\n    template: welcome-en/tips.email.j2\n    urgent: true\n")
    p.append(WINTER, "".join(f"  - name: extra-{i}\n    after: 1d\n    channel: sms\n"
                             f"    template: winter-sale/reminder.sms.j2\n" for i in range(2)))  # 6 touches


def _templates_and_providers(p: Project) -> None:
    """A config that loads, with broken templates and providers (found only after loading)."""
    p.edit(SETTINGS, "{name: sandbox-email, type: file, path: ../var/outbox.jsonl}", "{name: sandbox-email, type: pigeon}")
    p.edit(SETTINGS, "{name: sandbox-sms, type: file, path: ../var/outbox.jsonl}",
           '{name: kv, type: kavenegar, api_key: "${KAVENEGAR_API_KEY}", sender: "1000", colour: red}')
    for touch in ("reminder.sms.j2", "value.email.j2"):
        p.edit(WINTER, f"    template: winter-sale/{touch}\n", f"    template: winter-sale/{touch}\n    urgent: true\n")
    p.write(HELLO, "سلام\n{{ contact.first_name \n")
    p.write(LAST_CHANCE, "Code {{ offer.code }}.\nHurry, only 3 left!\n")
    p.write(REMINDER, "کد {{ offer.code }}\nفقط ۳ عدد مانده!\n")
    p.write(VALUE, "{% block subject %}Hurry{% endblock %}{% block text %}The sale ends soon!{% endblock %}\n")
    p.path("templates/welcome-en/tips.email.j2").unlink()


def _alias_bomb(p: Project) -> None:
    """Nine levels of nine aliases in a sequence: 9**9 strings once expanded."""
    p.append(WELCOME, 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n')
    p.append(WELCOME, "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10)))


def _one_sequence_broken(p: Project) -> None:
    """One sequence that does not load beside one that does, whose template is missing: both reported."""
    text = p.path(WELCOME).read_text(encoding="utf-8")
    p.write(WELCOME, text[:text.index("  - name: check-in")])  # 2 touches
    p.path(REMINDER).unlink()


BROKEN = {
    "settings-and-sequences": (_settings_and_sequences, {"KAVENEGAR_API_KEY": SECRET, "MISSING_ENV": None}),
    # a million loop steps; without a render budget validate renders it (and 9 ** 9 nested would hang)
    "hostile-template": (lambda p: p.write(HELLO, "سلام\n{% for i in range(1000) %}{% for j in range(1000) %}"
                                                  "{% endfor %}{% endfor %}\n"), {}),
    "alias-bomb": (_alias_bomb, {}),
    "yaml-syntax": (lambda p: p.edit(SETTINGS, "locale: fa", "locale: fa\n  oops: [1"), {}),
    "one-sequence-broken": (_one_sequence_broken, {}),
    "templates-and-providers": (_templates_and_providers, {"KAVENEGAR_API_KEY": SECRET}),
}


@dataclass
class Expect:
    """A problem ``validate`` must report for run ``run`` of BROKEN.

    ``line``: the text that starts the line to point at, an int, None for no line, or ... for any line.
    """

    run: str
    file: str
    line: str | int | None
    key: str | None
    says: str


EXPECTED = {
    "yaml-syntax": Expect("yaml-syntax", SETTINGS, "oops:", None, "YAML syntax error"),
    "broken-beside-loaded": Expect("one-sequence-broken", WELCOME, "touches:", "touches",
                                   "has 2 touches; a sequence needs 3 to 5"),
    "missing-template-beside-broken": Expect("one-sequence-broken", WINTER, "template: winter-sale/reminder",
                                             "touches[2].template", "template 'winter-sale/reminder.sms.j2' not found"),
    "hostile-template": Expect("hostile-template", HELLO, 2, None, "the template does too much work (more than "
                               "100,000 loop steps, calls and outputs); loop over less (used by winter-sale touch "
                               "'hello')"),
    "alias-bomb": Expect("alias-bomb", WELCOME, "l1:", None, "YAML alias *l0 is not accepted here; repeat the value"),
    "unknown-settings-key": Expect("settings-and-sequences", SETTINGS, "colour:", "colour",
                                   "unknown key; settings take alerts, attribution, database_url"),
    "bad-timezone": Expect("settings-and-sequences", SETTINGS, "timezone:", "timezone",
                           "unknown timezone 'Mars/Base'; use an IANA name"),
    "bad-window-time": Expect("settings-and-sequences", SETTINGS, "start:", "send_window.start", "'9am' is not a time"),
    "missing-env": Expect("settings-and-sequences", SETTINGS, "- {name: kv", "providers.sms[0].sender",
                          "environment variable MISSING_ENV is not set"),
    "shell-style-env": Expect("settings-and-sequences", SETTINGS, "- {name: mail", "providers.email[0].password",
                              'followup reads only the ${NAME} form); write "${SMTP_PASSWORD}"'),
    "two-touches": Expect("settings-and-sequences", WELCOME, "touches:", "touches",
                          "has 2 touches; a sequence needs 3 to 5"),
    "six-touches": Expect("settings-and-sequences", WINTER, "touches:", "touches", "has 6 touches; a sequence needs 3 to 5"),
    "bad-sample": Expect("settings-and-sequences", WELCOME, "sample:", "sample.city", "['a', 'b']: give an example "
                         "value as text"),
    "bad-duration": Expect("settings-and-sequences", WELCOME, "after: 1x", "touches[0].after", "'1x' is not a duration"),
    "fax-channel": Expect("settings-and-sequences", WELCOME, "channel: fax", "touches[1].channel", "'fax': use sms or email"),
    "urgent-without-offer": Expect("settings-and-sequences", WELCOME, "urgent:", "touches[1].urgent",
                                   "an urgent touch needs an offer in this sequence"),
    "email-without-unsubscribe-link": Expect("templates-and-providers", VALUE, None, None,
                                             "warning: touch 'value' sends an email without an unsubscribe link"),
    "urgent-template-without-offer": Expect("templates-and-providers", VALUE, None, None,
                                            "touch 'value' is urgent but the template never uses `offer`"),
    "literal-only-3-left": Expect("templates-and-providers", LAST_CHANCE, 2, None,
                                  "literal countdown or quantity 'only 3' in an urgent template"),
    "literal-persian-stock": Expect("templates-and-providers", REMINDER, 2, None,
                                    "literal countdown or quantity 'فقط 3' in an urgent template"),
    "template-syntax-error": Expect("templates-and-providers", HELLO, 2, None, "(used by winter-sale touch 'hello')"),
    "missing-template": Expect("templates-and-providers", WELCOME, ..., "touches[1].template",
                               "template 'welcome-en/tips.email.j2' not found"),
    "unknown-provider-type": Expect("templates-and-providers", SETTINGS, "- {name: sandbox-email",
                                    "providers.email[0].type", "unknown provider type 'pigeon'; known: console, file"),
    "bad-setting-beside-a-secret": Expect("templates-and-providers", SETTINGS, "- {name: kv",
                                          "providers.sms[0].colour", "is not a setting of a 'kavenegar' provider"),
}


def problem_pattern(project: Project, expect: Expect) -> str:
    """The regex a problem line must match: ``FILE[:LINE]: [KEY.PATH: ]``."""
    file = re.escape(expect.file.lstrip("/"))
    if expect.file.startswith("/"):  # absolute today; relative once fixed
        file = "(.*/)?" + file
    if expect.line is None:
        line = ""
    elif expect.line is ...:
        line = r"(:\d+)?"
    else:
        number = expect.line if isinstance(expect.line, int) else project.line_of(expect.file.lstrip("/"), expect.line)
        line = f":{number}"
    return f"^{file}{line}: " + (re.escape(expect.key) + ": " if expect.key else "")


@pytest.fixture(scope="module")
def background(starter, tmp_path_factory):
    """Independent runs of ``validate`` and ``--help`` started at once, two at a time, while other tests go on."""
    base = tmp_path_factory.mktemp("background")
    projects = {name: Project.copy_of(starter[0], base / name) for name in [*BROKEN, "starter", "repo"]}
    projects["repo"].config = REPO_CONFIG
    jobs = {}
    for name, (break_it, env) in BROKEN.items():
        break_it(projects[name])
        jobs[name] = (projects[name], ("validate",), env)
    jobs["starter"] = (projects["starter"], ("validate",), None)
    jobs["repo"] = (projects["repo"], ("validate",), None)
    # no COLUMNS, as in a cron job or a pipe
    jobs["no-columns"] = (projects["templates-and-providers"], ("validate",), {**BROKEN["templates-and-providers"][1],
                                                                               "COLUMNS": None})
    jobs.update({f"help:{command}": (projects["starter"], (*command.split(), "--help"), None) for command in HELP})
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {key: pool.submit(project.run, *args, env={**(env or {}), OUTLIVES_A_TEST: "1"})
               for key, (project, args, env) in jobs.items()}
    yield lambda key: (projects.get(key, projects["templates-and-providers"]), futures[key].result())
    pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize("name", ["starter", "repo"])
def test_validate_passes_on_init_output_and_on_the_repo_config(background, name):
    _, result = background(name)
    assert result.rc == 0, result
    assert result.out.strip().splitlines()[-1] == "ok: settings, 3 sequence(s), 10 templates and 2 provider(s) are valid"
    assert result.err == ""


def assert_reported(background, expect: Expect) -> None:
    project, result = background(expect.run)
    assert result.rc == 2, result
    pattern = problem_pattern(project, expect)
    assert [p for p in result.problems if re.match(pattern, p) and expect.says in p], \
        f"no line matching {pattern!r} and saying {expect.says!r}\n{result}"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_validate_reports_the_problem_with_file_line_and_key(background, name):
    assert_reported(background, EXPECTED[name])


@pytest.mark.parametrize("run", list(BROKEN))
def test_validate_reports_every_problem_once_one_a_line(background, run):
    project, result = background(run)
    expected = [e for e in EXPECTED.values() if e.run == run]
    assert len(result.problems) == len(expected), result
    wrong = [e for e in expected if "warning: " not in e.says]
    assert result.err.rstrip().splitlines()[-1] == f"{len(wrong)} problem{'s' if len(wrong) > 1 else ''} found"
    for problem in result.problems:
        assert PROBLEM_LINE.match(problem) or problem.startswith(f"{project.root}/{SETTINGS}:"), problem


def test_validate_never_shows_a_secret(background):
    for run in ("settings-and-sequences", "templates-and-providers"):
        _, result = background(run)
        assert SECRET not in result.out + result.err
        assert "KAVENEGAR_API_KEY" not in result.err  # it is set: nothing to say about it


def test_validate_provider_problems_show_the_same_file_name_as_the_others(background):
    assert_reported(background, Expect("templates-and-providers", SETTINGS, "- {name: sandbox-email",
                                       "providers.email[0].type", "unknown provider type 'pigeon'"))


def test_validate_missing_template_points_at_the_template_line(background):
    assert_reported(background, Expect("templates-and-providers", WELCOME, "template: welcome-en/tips.email.j2",
                                       "touches[1].template", "not found"))


def test_validate_lines_are_not_wrapped_when_piped(background):
    _, result = background("no-columns")
    _, wide = background("templates-and-providers")
    assert result.rc == 2
    assert result.err == wide.err


# -- the database -------------------------------------------------------------------------------
def test_db_upgrade_twice_says_already_at_head(first_upgrade, migrated):
    first, second = first_upgrade[1], migrated.run("db", "upgrade")
    assert first.rc == 0 and re.search(r": empty → \w+$", first.out.strip()), first
    head = first.out.strip().rsplit(" ", 1)[-1]
    assert second.rc == 0 and second.out.strip().endswith(f": already at {head}"), second


def test_worker_on_a_fresh_database_names_db_upgrade(project):
    result = project.run("worker", "--once")
    assert result.rc != 0, result
    assert "followup db upgrade" in result.err
    assert "Traceback" not in result.err


def test_the_schema_check_reads_the_revisions_alembic_reads(migrated, tmp_path):
    """check_schema reads alembic_version and the migration files itself; Alembic agrees with it."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from engine.db import _alembic_config, current_revision, head_revision, make_engine

    assert head_revision() == ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()
    for db in (tmp_path / "empty.db", migrated.db):  # no schema yet, and at head
        engine = make_engine(f"sqlite:///{db}")
        with engine.connect() as conn:
            expected = MigrationContext.configure(conn).get_current_revision()
        assert current_revision(engine) == expected
        engine.dispose()
    assert expected == head_revision()


# Peak RSS of the worker is mostly the modules it imports; these only serve other commands.
NOT_FOR_THE_WORKER = ("alembic", "mako", "pygments", "rich", "fastapi", "uvicorn", "engine.service", "engine.contacts",
                      "email_validator", "jdatetime", "apscheduler")


def test_worker_once_leaves_the_other_commands_modules_unimported(populated):
    populated.all_day()
    assert populated.run("enroll", "winter-sale", "--tag", "winter").rc == 0
    listing = populated.path("modules.txt")
    code = ("import atexit, sys; "
            f"atexit.register(lambda: open({str(listing)!r}, 'w').write('\\n'.join(sys.modules))); "
            "from engine.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code, "--config", str(populated.root / "config"), "worker", "--once"],
                          cwd=populated.root, env=populated.env, capture_output=True, text=True, encoding="utf-8",
                          timeout=60)
    assert proc.returncode == 0 and "'sent': 2" in proc.stderr, proc.stderr
    loaded = listing.read_text(encoding="utf-8").split()
    assert [m for m in loaded if m.split(".")[0] in NOT_FOR_THE_WORKER or m.startswith(NOT_FOR_THE_WORKER)] == []


# -- contacts import ----------------------------------------------------------------------------
MIXED_CSV = """\
phone,email,first_name,timezone,tags
09121234567,ali@example.com,Ali,Asia/Tehran,winter
۰۹۱۲۷۶۵۴۳۲۱,,سارا,,winter
not-a-phone,,Bad,,
,bad@,Mail,,
09120000001,,Tz,Mars/Base,
09120000002,,Extra,Asia/Tehran,winter,surplus
+14155552671,,Bob,America/Los_Angeles,
"""


def test_contacts_import_lists_bad_rows_and_imports_good_ones(migrated):
    migrated.write("leads.csv", MIXED_CSV)
    first = migrated.run("contacts", "import", "leads.csv")
    assert first.rc == 1, first
    bad = first.err.splitlines()
    assert bad[0].startswith("leads.csv:4: phone: 'not-a-phone' is not a phone number")
    assert bad[1].startswith("leads.csv:5: email: 'bad@' is not a valid email address")
    assert bad[2].startswith("leads.csv:6: timezone: unknown timezone 'Mars/Base'")
    assert bad[3].startswith("leads.csv:7: has more fields than the header")
    assert len(bad) == 4, first
    assert first.out.strip() == "leads.csv: 7 rows: 3 created, 0 updated, 0 unchanged, 4 bad"
    with sqlite3.connect(migrated.db) as conn:
        phones = {row[0] for row in conn.execute("select phone from contacts")}
    assert phones == {"+989121234567", "+989127654321", "+14155552671"}  # Persian digits read too

    again = migrated.run("contacts", "import", "leads.csv")
    assert again.rc == 1
    assert again.out.strip() == "leads.csv: 7 rows: 0 created, 0 updated, 3 unchanged, 4 bad"
    assert migrated.count("select count(*) from contacts") == 3


def test_contacts_import_refuses_a_field_over_its_limit_with_line_and_reason(migrated):
    # the API's limits: a 100 KB first name would otherwise become a 1,500-segment SMS
    migrated.write("leads.csv", f"phone,first_name,notes\n09121234567,سارا,\n09127654321,{'ب' * 100_000},\n"
                                f"09351234567,Ali,{'n' * 1001}\n")
    result = migrated.run("contacts", "import", "leads.csv")
    assert result.rc == 1, result
    assert result.err.splitlines() == [
        "leads.csv:3: first_name: 100,000 characters, over the limit of 200; shorten it",
        "leads.csv:4: attrs: column 'notes': 1,001 characters, over the limit of 1,000; shorten it"]
    assert result.out.strip() == "leads.csv: 3 rows: 1 created, 0 updated, 0 unchanged, 2 bad"


def test_contacts_import_warns_of_a_landline_and_imports_it(migrated):
    migrated.write("leads.csv", "phone,email,first_name\n09121234567,,سارا\n021 8877 6655,office@example.com,دفتر\n")
    result = migrated.run("contacts", "import", "leads.csv")
    assert result.rc == 0, result
    assert result.err.strip().startswith("leads.csv:3: warning: phone: +982188776655 is a landline"), result
    assert "SMS touches will be skipped" in result.err
    assert result.out.strip() == "leads.csv: 2 rows: 2 created, 0 updated, 0 unchanged, 0 bad; 1 with a warning"
    assert migrated.count("select count(*) from contacts") == 2


@pytest.mark.parametrize("content, says", [
    ("name,city\nAli,Tehran\n".encode(), "leads.csv:1: the header has neither a phone nor an email column "
                                         "(found: name, city)"),
    ("phone,first_name\n09121234567,Andr\xe9\n".encode("latin-1"), "not UTF-8 text"),
])
def test_contacts_import_refuses_an_unusable_file_and_writes_nothing(migrated, content, says):
    migrated.path("leads.csv").write_bytes(content)
    result = migrated.run("contacts", "import", "leads.csv")
    assert result.rc == 2, result
    assert result.err.startswith("error: leads.csv") and says in result.err, result
    assert migrated.count("select count(*) from contacts") == 0


def test_contacts_import_of_a_non_utf8_file_writes_nothing_even_after_a_full_batch(migrated):
    rows = "".join(f"0912{1000000 + i},N{i}\n" for i in range(3000))
    migrated.path("leads.csv").write_bytes(b"phone,first_name\n" + rows.encode() + b"09129999999,Andr\xe9\n")
    result = migrated.run("contacts", "import", "leads.csv")
    assert result.rc == 2 and "not UTF-8" in result.err, result
    assert migrated.count("select count(*) from contacts") == 0


SPREADSHEET_CSV = """\
\ufeffMobile,ایمیل,نام,نام خانوادگی,City
09121234567,sara@example.com,سارا,كريمي,Tehran
09127654321,ali@,علي,,Shiraz
not-a-phone,,Bad,,
۰۹۱۲۱۲۳۴۵۶۷,,Sarah,,Karaj
09351112233,,مينا,,
,sara@example.com,,,Tehran
"""


def test_contacts_import_counts_add_up_and_a_second_import_changes_nothing(migrated):
    migrated.write("leads.csv", SPREADSHEET_CSV)
    first = migrated.run("contacts", "import", "leads.csv")
    assert first.rc == 1, first
    assert first.out.strip() == ("leads.csv: 6 rows: 3 created, 0 updated, 0 unchanged, "
                                 "2 duplicates of an earlier row (lines 5, 7), 1 bad; 2 with a warning"), first
    assert first.err.splitlines() == [
        "leads.csv:4: phone: 'not-a-phone' is not a phone number (only digits, spaces, dashes and a leading + are "
        "allowed)",
        "leads.csv:3: warning: email: 'ali@' is not a valid email address: There must be something after the @-sign.; "
        "imported without this email, fix it and import again to add it",
        "leads.csv:5: warning: a duplicate of an earlier row (line 2) for the same contact: its first_name, City "
        "differ, and the earlier row's value is kept"]
    with sqlite3.connect(migrated.db) as conn:
        rows = conn.execute("select phone, email, first_name, last_name from contacts order by phone").fetchall()
    assert rows == [("+989121234567", "sara@example.com", "سارا", "کریمی"), ("+989127654321", None, "علی", ""),
                    ("+989351112233", None, "مینا", "")]  # Persian letters; the good mobile kept, the bad email not

    again = migrated.run("contacts", "import", "leads.csv")
    assert again.out.strip() == ("leads.csv: 6 rows: 0 created, 0 updated, 3 unchanged, "
                                 "2 duplicates of an earlier row (lines 5, 7), 1 bad; 2 with a warning"), again


def test_contacts_import_of_a_semicolon_file_says_how_to_save_it(migrated):
    migrated.write("leads.csv", "phone;first_name\n09121234567;سارا\n")
    result = migrated.run("contacts", "import", "leads.csv")
    assert result.rc == 2, result
    assert result.err.strip() == ("error: leads.csv:1: the header is separated by semicolons (;), not commas; "
                                  "save it from the spreadsheet as CSV UTF-8 (comma delimited)"), result
    assert migrated.count("select count(*) from contacts") == 0


# -- enroll ------------------------------------------------------------------------------------
def test_enroll_by_tag(populated):
    result = populated.run("enroll", "winter-sale", "--tag", "winter")
    assert result.rc == 0, result
    assert result.out.strip() == "winter-sale: 2 enrolled, 0 already active, 0 not enrolled"
    assert populated.count("select count(*) from enrollments where sequence = 'winter-sale'") == 2
    assert populated.count("select count(*) from messages") == 8  # 4 touches each


def test_enroll_by_phone_in_any_format_and_twice_is_already_active(populated):
    first = populated.run("enroll", "winter-sale", "--contact", "0912 123 4567")
    assert first.rc == 0 and first.out.strip().endswith("1 enrolled, 0 already active, 0 not enrolled"), first
    second = populated.run("enroll", "winter-sale", "--contact", "۰۹۱۲۱۲۳۴۵۶۷")
    assert second.rc == 0, second
    assert f"contact {ALI}: already active in winter-sale" in second.out
    assert second.out.strip().endswith("0 enrolled, 1 already active, 0 not enrolled")
    assert populated.count(f"select count(*) from enrollments where contact_id = {ALI}") == 1


def test_enroll_refuses_an_unsubscribed_contact_and_says_why(populated):
    event = populated.run("event", "crm-2", "unsubscribed")
    assert event.rc == 0 and f"contact {SARA}: unsubscribed recorded" in event.out, event
    result = populated.run("enroll", "winter-sale", "--contact", "crm-2")
    assert result.rc == 0, result
    assert f"contact {SARA}: not enrolled: opted out or unreachable" in result.out
    assert "sms: unsubscribed" in result.out
    assert result.out.strip().endswith("0 enrolled, 0 already active, 1 not enrolled")
    assert populated.count("select count(*) from enrollments") == 0


@pytest.mark.parametrize("args, says", [
    (("winter-sale", "--contact", "nobody@example.com"), "error: no contact matches nobody@example.com"),
    (("no-such-sale", "--tag", "winter"), "error: no sequence named 'no-such-sale'"),
    (("winter-sale",), "error: give exactly one of --csv FILE, --contact KEY"),
])
def test_enroll_input_errors_exit_2(populated, args, says):
    result = populated.run("enroll", *args)
    assert result.rc == 2, result
    assert result.err.startswith(says), result
    if "no-such-sale" in args:
        assert "(known: abandoned-cart, welcome-en, winter-sale)" in result.err
    assert populated.count("select count(*) from enrollments") == 0


def test_enroll_finds_an_email_in_any_case(populated):
    result = populated.run("enroll", "welcome-en", "--contact", "John@Example.COM")
    assert result.rc == 0 and result.out.strip().endswith("1 enrolled, 0 already active, 0 not enrolled"), result
    assert populated.count(f"select count(*) from enrollments where contact_id = {JOHN}") == 1


def test_contacts_import_stores_emails_lower_cased(migrated):
    migrated.write("leads.csv", "email,first_name\nMina@Yahoo.com,Mina\n")
    result = migrated.run("contacts", "import", "leads.csv")
    assert result.rc == 0, result
    with sqlite3.connect(migrated.db) as conn:
        assert conn.execute("select email from contacts").fetchall() == [("mina@yahoo.com",)]


def test_contacts_import_refuses_an_external_id_that_reads_as_a_phone_or_email(migrated):
    migrated.write("leads.csv", "phone,email,external_id\n09121111111,,0912 222 2222\n"
                                ",a@example.com,B@example.com\n09123333333,,crm-3\n")
    result = migrated.run("contacts", "import", "leads.csv")
    assert result.rc == 1, result
    bad = result.err.splitlines()
    assert bad[0].startswith("leads.csv:2: external_id: '0912 222 2222' reads as a phone; put it in the phone column")
    assert bad[1].startswith("leads.csv:3: external_id: 'B@example.com' reads as an email; put it in the email column")
    assert len(bad) == 2 and "1 created" in result.out, result


def test_event_by_phone_reaches_its_owner_not_a_contact_whose_external_id_is_that_phone(populated):
    with sqlite3.connect(populated.db) as conn:  # stored before such external ids were refused
        intruder = conn.execute("insert into contacts (external_id, phone, first_name, last_name, tags, attrs, "
                                "created_at, updated_at) values ('09121234567', '+989120000009', 'X', '', '', '{}', "
                                "'2026-01-01 00:00:00', '2026-01-01 00:00:00')").lastrowid
    result = populated.run("event", "09121234567", "unsubscribed", "--channel", "sms")
    assert result.rc == 0 and result.out.startswith(f"contact {ALI}: unsubscribed recorded"), result
    assert populated.count(f"select count(*) from contacts where id = {ALI} and sms_suppressed is not null") == 1
    assert populated.count(f"select count(*) from contacts where id = {intruder} and sms_suppressed is null") == 1


# -- a whole run: enroll, send, convert, look --------------------------------------------------
@pytest.fixture(scope="module")
def converted(starter, populated_db, tmp_path_factory) -> dict:
    """Enroll Ali and Sara in winter-sale, send the first touch, then Ali converts (value 100)."""
    project = Project.copy_of(starter[0], tmp_path_factory.mktemp("flow") / "p", db=populated_db)
    project.all_day()
    steps = {
        "enroll": project.run("enroll", "winter-sale", "--tag", "winter"),
        "worker": project.run("worker", "--once"),
        "event": project.run("event", "09121234567", "converted", "--value", "100"),
        "logs": project.run("logs", "--json", "--limit", "1000"),
        "stats": project.run("stats", "--json"),
    }
    for name, result in steps.items():
        assert result.rc == 0, result
    outbox = project.path("var/outbox.jsonl")
    steps["outbox"] = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    steps["log_rows"] = [json.loads(line) for line in steps["logs"].out.splitlines()]
    steps["project"] = project
    return steps


def test_worker_once_sends_the_first_touch_with_the_footer(converted):
    sent = sorted(converted["outbox"], key=lambda r: r["to"])
    assert [r["to"] for r in sent] == ["+989121234567", "+989127654321"]
    assert all(r["channel"] == "sms" and r["text"].endswith("\nلغو11") for r in sent)
    assert sent[0]["text"].startswith("Ali عزیز") and "WINTER20" in sent[0]["text"]


def test_event_converted_cancels_the_pending_touches(converted):
    assert converted["event"].out.strip() == (f"contact {ALI}: converted recorded; ended winter-sale; "
                                              "3 pending touch(es) cancelled")
    cancelled = [r for r in converted["log_rows"] if r["event"] == "cancelled"]
    assert sorted(r["touch"] for r in cancelled) == ["last-chance", "reminder", "value"]
    assert all(r["contact_id"] == ALI and r["reason"] == "contact converted" for r in cancelled)
    assert not any(r["event"] == "cancelled" and r["contact_id"] == SARA for r in converted["log_rows"])


def test_stats_json_counts_conversions(converted):
    data = json.loads(converted["stats"].out)
    sale = next(s for s in data["sequences"] if s["sequence"] == "winter-sale")
    assert (sale["enrolled"], sale["converted"], sale["conversion_rate"]) == (2, 1, 0.5)
    assert sale["touches"]["hello"]["sent"] == 2
    assert sale["touches"]["value"]["cancelled"] == 1 and sale["touches"]["value"]["waiting"] == 1
    assert data["paused_providers"] == {}


def test_stats_counts_the_revenue_of_a_conversion_without_sequence(converted):
    sale = next(s for s in json.loads(converted["stats"].out)["sequences"] if s["sequence"] == "winter-sale")
    assert sale["revenue"] == 100.0


LOG_KEYS = {"at", "message_id", "contact_id", "sequence", "touch", "channel", "provider", "event", "reason",
            "attempt", "provider_message_id"}


def test_logs_filters_name_the_known_values_and_json_has_no_row_limit(converted):
    project = converted["project"]
    typo = project.run("logs", "--event", "delivred")
    assert typo.rc == 2 and "--event 'delivred' matches nothing; known: " in typo.err and "delivered" in typo.err
    assert "sent" in typo.err and "deferred" in typo.err, typo
    unknown_sequence = project.run("logs", "--sequence", "winter-sal")
    assert unknown_sequence.rc == 2 and "winter-sale" in unknown_sequence.err, unknown_sequence
    assert project.run("logs", "--event", "cancelled").rc == 0
    every = project.run("logs", "--json")
    assert every.out == converted["logs"].out
    assert len(project.run("logs", "--json", "--limit", "2").out.splitlines()) == 2


def test_logs_table_shows_local_times_and_people_not_ids(converted):
    project = converted["project"]
    table = project.run("logs", "--event", "sent")
    assert table.rc == 0, table
    assert "at (Asia/Tehran)" in table.out and "+98912***4567" in table.out and "Ali" in table.out
    first_sent = min(r["at"] for r in converted["log_rows"] if r["event"] == "sent")
    local = datetime.fromisoformat(first_sent.replace("Z", "+00:00")) + timedelta(hours=3, minutes=30)
    assert local.strftime("%Y-%m-%d %H:%M") in table.out
    utc = project.run("logs", "--event", "sent", "--utc")
    assert "at (UTC)" in utc.out and datetime.fromisoformat(first_sent.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M") in utc.out


def test_logs_json_lines_have_every_field_and_utc_times(converted):
    rows = converted["log_rows"]
    assert len(rows) == len(converted["logs"].out.splitlines()) >= 8 + 4 + 3
    started = datetime.now(timezone.utc) - timedelta(minutes=10)
    for row in rows:
        assert LOG_KEYS <= set(row), row
        at = datetime.fromisoformat(row["at"].replace("Z", "+00:00"))
        assert row["at"].endswith("Z") and at.utcoffset() == timedelta(0)
        assert started < at <= datetime.now(timezone.utc)
    sent = [r for r in rows if r["event"] == "sent"]
    assert {(r["touch"], r["channel"], r["provider"], r["attempt"]) for r in sent} == {("hello", "sms", "sandbox-sms", 1)}
    # the file provider's id is "file-" + our client reference, whose last twelve digits are our id
    assert all(int(r["provider_message_id"].removeprefix("file-")) % 10**12 == r["message_id"] for r in sent)


# -- preview ------------------------------------------------------------------------------------
SMS_FACTS = re.compile(r"^(GSM-7|UCS-2), (\d+) units, (\d+) segments?$", re.M)


def test_preview_shows_every_touch_with_sms_facts(project):
    result = project.run("preview", "winter-sale")
    assert result.rc == 0, result
    for touch, channel in (("hello", "sms"), ("value", "email"), ("reminder", "sms"), ("last-chance", "sms")):
        assert re.search(rf"{touch} · {channel} · \d{{4}}-\d\d-\d\d \d\d:\d\d", result.out), touch
    facts = SMS_FACTS.findall(result.out)
    assert len(facts) == 3 and all(encoding == "UCS-2" for encoding, _, _ in facts), result
    assert all(int(segments) == -(-int(units) // 67) for _, units, segments in facts)
    assert "Subject: سارا، راهنمای انتخاب پالتوی زمستانه" in result.out


def test_an_email_template_without_an_unsubscribe_link_is_a_warning_not_a_failure(project):
    project.write("templates/welcome-en/tips.email.j2",
                  "{% block subject %}Tips{% endblock %}{% block text %}Hello {{ contact.first_name }}{% endblock %}\n")
    result = project.run("validate")
    assert result.rc == 0, result
    assert result.err.strip() == ("templates/welcome-en/tips.email.j2: warning: touch 'tips' sends an email without an "
                                  "unsubscribe link; add {% if unsubscribe_url %}<a href=\"{{ unsubscribe_url }}\">"
                                  "Unsubscribe</a>{% endif %}")


def test_preview_of_an_english_sms_says_gsm7(project):
    project.edit(SETTINGS, "locale: fa", "locale: en")
    result = project.run("preview", "welcome-en")
    assert result.rc == 0, result
    text = "Hi Sara, any questions about your first order? Just reply to this message.\nReply STOP to opt out"
    assert text in result.out
    assert SMS_FACTS.findall(result.out) == [("GSM-7", str(len(text)), "1")]


def test_preview_says_an_sms_over_max_sms_segments_is_skipped(project):
    project.append(WINTER, "max_sms_segments: 1\n")
    result = project.run("preview", "winter-sale")
    assert result.rc == 0, result
    facts = SMS_FACTS.findall(result.out)
    # A touch can carry other reasons before this one (the send window, the offer's end), joined by "; ",
    # depending on the time the preview runs.
    skipped = re.findall(r"(?:^|; )SKIPPED: SMS would be (\d+) segments, over max_sms_segments 1$", result.out, re.M)
    assert skipped and skipped == [segments for _, _, segments in facts if int(segments) > 1], result


RULE = re.compile(r"^─* ?(\S+) · (sms|email) · (?:(\w+) · )?(\d{4}-\d\d-\d\d \d\d:\d\d) ", re.M)


def test_preview_for_an_enrolled_contact_shows_its_stored_messages_and_what_will_be_skipped(populated):
    populated.all_day()
    assert populated.run("enroll", "winter-sale", "--contact", "crm-1").rc == 0
    assert populated.run("worker", "--once").rc == 0  # hello is sent; value is scheduled a day after it
    with sqlite3.connect(populated.db) as conn:
        conn.execute(f"UPDATE contacts SET email_suppressed = 'bounced: mailbox full' WHERE id = {ALI}")
        due = conn.execute("SELECT next_attempt_at FROM messages WHERE touch = 'value'").fetchone()[0]
    result = populated.run("preview", "winter-sale", "--contact", "crm-1")
    assert result.rc == 0, result
    assert result.out.startswith(f"contact {ALI} (Ali) is enrolled in winter-sale since "), result
    rows = {touch: (channel, status, when) for touch, channel, status, when in RULE.findall(result.out)}
    due_local = (datetime.fromisoformat(due).replace(tzinfo=timezone.utc) + timedelta(hours=3, minutes=30))
    assert rows["hello"][:2] == ("sms", "sent")
    assert rows["value"] == ("email", "scheduled", due_local.strftime("%Y-%m-%d %H:%M")), result
    assert rows["reminder"][:2] == ("sms", "pending") and rows["last-chance"][:2] == ("sms", "pending")
    assert "will be skipped: suppressed on email: bounced: mailbox full" in result.out
    assert "waits for the touch before it, then 1d" in result.out
    assert "Subject:" in result.out and "Ali" in result.out  # the open messages rendered for Ali


def test_preview_for_a_contact_not_enrolled_says_so_and_plans_from_now(populated):
    result = populated.run("preview", "winter-sale", "--contact", "crm-3")
    assert result.rc == 0, result
    assert result.out.startswith(f"contact {JOHN} (John) is not enrolled in winter-sale; the plan if it were "
                                 "enrolled now"), result
    assert [status for _, _, status, _ in RULE.findall(result.out)] == ["", "", "", ""]
    assert result.out.count("will be skipped: no phone number for this contact") == 3, result


# -- help ---------------------------------------------------------------------------------------
HELP = {
    "": ["follow-up sequences", "Commands:", "validate", "worker"],
    "init": ["starter config/ and templates/"],
    "validate": ["Check settings, sequences, templates"],
    "db": ["Database schema", "upgrade"],
    "db upgrade": ["Create the schema"],
    "contacts": ["import from CSV"],
    "contacts import": ["Import contacts from a CSV", "exit status 1"],
    "enroll": ["Enroll contacts in SEQUENCE", "--tag", "--contact"],
    "event": ["converted, replied, unsubscribed or resubscribed"],
    "worker": ["background worker", "--once"],
    "preview": ["every touch of SEQUENCE", "segments"],
    "logs": ["delivery log", "--json"],
    "stats": ["funnel per sequence", "--json"],
    "offer": ["redeem stock", "redeem  Take one item of CODE's stock"],
    "providers": ["configured providers", "check   Ask each provider for its account state",
                  "resume  Lift the pause on provider NAME"],
}


@pytest.mark.parametrize("command", list(HELP))
def test_help_explains_each_command(background, command):
    _, result = background(f"help:{command}")
    assert result.rc == 0, result
    assert result.out.startswith(f"Usage: followup {command}".rstrip()), result
    for words in HELP[command]:
        assert words in result.out, (words, result)


def test_event_idempotency_key_and_a_repeated_sale_are_told(populated):
    assert populated.run("enroll", "winter-sale", "--tag", "winter").rc == 0
    sale = ("event", "09121234567", "converted", "--value", "1200000")
    first = populated.run(*sale, "--idempotency-key", "order-981")
    again = populated.run(*sale, "--idempotency-key", "order-981")
    twin = populated.run(*sale)
    assert first.rc == again.rc == twin.rc == 0, (first, again, twin)
    assert "warning" not in first.err
    assert again.out.strip() == f"contact {ALI}: converted not recorded: already recorded (idempotency key order-981)"
    assert "warning: an identical conversion of this contact was recorded" in twin.err
    assert "--idempotency-key" in twin.err and "converted recorded" in twin.out
    stats = populated.run("stats", "winter-sale")
    # nothing was sent to the buyer yet: both sales are converted, not attributed (engine/attribution.py)
    assert "converted, not attributed: 2, revenue 2,400,000" in stats.out, stats


# -- `make run` again ----------------------------------------------------------------------------
MAKEFILE = Path(__file__).resolve().parent.parent / "Makefile"


def make_run_setup() -> list[list[str]]:
    """The followup commands `make run` runs before it starts the service and the worker."""
    recipe = MAKEFILE.read_text(encoding="utf-8").split("\nrun:", 1)[1].split("\n\n", 1)[0]
    return [line.split("$(BIN)/followup ", 1)[1].split() for line in recipe.splitlines()
            if line.startswith("\t$(BIN)/followup ") and " serve " not in line and " worker" not in line]


def test_make_run_twice_sends_nothing_new_to_contacts_already_done(tmp_path):
    """The Makefile's own lines on the repository's config: the second run enrolls no one who is done."""
    project = Project.copy_of(REPO_CONFIG.parent, tmp_path / "p")
    project.all_day()
    setup = make_run_setup()
    assert any(args[0] == "enroll" for args in setup), setup
    for args in setup:
        assert project.run(*args).rc == 0
    assert project.run("worker", "--once").rc == 0
    assert project.run("event", "crm-1001", "converted").rc == 0  # Sara bought
    outbox = project.path("var/outbox.jsonl")
    sent_before = outbox.read_text(encoding="utf-8").splitlines()
    enrollments = project.count("select count(*) from enrollments")
    messages = project.count("select count(*) from messages")
    again = [project.run(*args) for args in setup]
    assert all(result.rc == 0 for result in again), again
    sale = next(r for r in again if r.args[:2] == ("enroll", "winter-sale"))
    assert "contact 1: not enrolled again: already enrolled, converted on " in sale.out, sale
    assert "(contact converted); this sequence's reentry is never" in sale.out
    assert sale.out.strip().endswith("0 enrolled, 3 already active, 1 already enrolled/finished, 0 not enrolled"), sale
    assert project.count("select count(*) from enrollments") == enrollments
    assert project.count("select count(*) from messages") == messages
    assert project.run("worker", "--once").rc == 0
    sent = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    new = sent[len(sent_before):]
    assert all(r["to"] not in ("+989121234567", "sara.rezaei@example.com") for r in new), new  # Sara: nothing
    assert len({r["message_id"] for r in sent}) == len(sent)  # nothing went out twice


# -- followup sequences ------------------------------------------------------------------------------
def test_sequences_lists_pauses_unenrolls_and_stops(populated):
    assert populated.run("enroll", "winter-sale", "--tag", "winter").rc == 0
    listed = populated.run("sequences")
    assert listed.rc == 0, listed
    rows = {line.split()[0]: line.split() for line in listed.out.splitlines()[1:]}
    assert rows["winter-sale"][2:5] == ["active", "2", "2"], listed  # state, active enrollments, due in 24 h
    assert rows["welcome-en"][2:5] == ["active", "0", "0"], listed
    paused = populated.run("sequences", "pause", "winter-sale")
    assert paused.rc == 0 and paused.out.startswith("winter-sale: paused; due messages wait"), paused
    assert populated.run("sequences").out.count(" paused ") == 1
    out = populated.run("sequences", "unenroll", "winter-sale", "--contact", "crm-2")
    assert out.rc == 0 and out.out.strip() == f"contact {SARA}: unenrolled from winter-sale; 4 pending message(s) cancelled"
    stopped = populated.run("sequences", "stop", "winter-sale")
    assert stopped.out.strip() == "winter-sale: stopped; 1 enrollment(s) ended, 4 pending message(s) cancelled", stopped
    assert populated.count("select count(*) from enrollments where status = 'stopped'") == 1
    assert populated.count("select count(*) from messages where status != 'cancelled'") == 0
    unknown = populated.run("sequences", "pause", "winter-sal")
    assert unknown.rc == 2 and unknown.err.startswith("error: no sequence named 'winter-sal' (known: "), unknown


# -- the sample contact's extra columns ---------------------------------------------------------
def test_validate_renders_attrs_the_database_contacts_have(migrated):
    migrated.write(HELLO, "سلام {{ contact.first_name }}\nاز {{ contact.attrs.city }}\n")
    before = migrated.run("validate")
    assert before.rc == 2, before
    assert before.problems == [
        f"{HELLO}:2: contact.attrs.city: no contact has this column (none of the 1,000 most recent in the database), "
        "so the message would be skipped; import contacts with a city column, declare it in "
        f"{WINTER} as sample: {{city: ...}}, or write {{{{ contact.attrs.city | default('...') }}}} "
        "(used by winter-sale touch 'hello')"], before
    migrated.write("leads.csv", "phone,first_name,city\n09121234567,سارا,تهران\n")
    assert migrated.run("contacts", "import", "leads.csv").rc == 0
    after = migrated.run("validate")
    assert after.rc == 0 and after.err == "", after


def test_validate_renders_attrs_declared_as_the_sequence_sample_without_a_database(project):
    project.write(HELLO, "سلام {{ contact.first_name }}\nاز {{ contact.attrs.city }}\n")
    project.append(WINTER, "sample: {city: تهران}\n")
    result = project.run("validate")
    assert result.rc == 0 and result.err == "", result
    assert not project.db.exists()  # validate looks into a database, never creates one
