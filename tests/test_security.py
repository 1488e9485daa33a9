"""Security: sandboxed templates, secrets that never leave, masked addresses in the JSON log, and
fuzzed input parsers that answer with their own errors and never crash or half-write."""
from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from engine.addresses import normalize_phone
from engine.config import load_config
from engine.contacts import import_csv
from engine.db import make_engine, upgrade
from engine.durations import parse_duration
from engine.errors import ConfigError, InputError
from engine.templates import Renderer, RenderError, SequenceView, TouchView
from engine.render import template_context
from tests.fakes.httpserver import FakeHttpServer, Reply

from .conftest import World, simple_sequence
from .faults import ANYTIME, KAVE_KEY, FakeKavenegar, kavenegar_entry

CANARY = "CANARY-env-value-7f3e9b"

ESCAPES = [
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum.__globals__['os'].environ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ contact.__class__.__init__.__globals__ }}",
    "{{ contact.attrs.__class__.__base__.__subclasses__() }}",
    "{{ touch.__class__ }}",
    "{{ config }}",
    "{{ request }}",
    "{% include '/etc/passwd' %}",
    "{% include '../../../../etc/passwd' %}",
    "{% import '/etc/hostname' as h %}",
    "{% extends '/etc/passwd' %}",
    "{{ range.__self__ }}",
    "{{ (contact|attr('__class__')) }}",
    "{{ contact.first_name.format.__globals__ }}",
    "{{ '{0.__class__}'.format(contact) }}",
    "{{ offer.expires_at.__class__.__module__ }}",
]


@pytest.fixture
def renderer(tmp_path, monkeypatch):
    monkeypatch.setenv("FOLLOWUP_TEST_CANARY", CANARY)
    (tmp_path / "t").mkdir()
    return Renderer(tmp_path / "t")


def context(**contact):
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from engine.config import Config  # noqa: F401  (only for the type)

    class _Settings:
        locale = "fa"
        unsubscribe_url = None
        secret_key = None

    class _Cfg:
        settings = _Settings()

    return template_context(_Cfg(), contact={"id": 1, "first_name": "x", **contact}, offer_spec_title=None,
                            offer_row=None, deadline=None, tz=ZoneInfo("Asia/Tehran"),
                            at=datetime(2026, 12, 5, tzinfo=timezone.utc), sequence=SequenceView("s"),
                            touch=TouchView("t", "sms", 0))


@pytest.mark.parametrize("payload", ESCAPES)
@pytest.mark.parametrize("channel", ["sms", "email"])
def test_templates_cannot_reach_python_files_or_the_environment(renderer, payload, channel):
    name = f"evil.{channel}.j2"
    source = payload if channel == "sms" else (
        "{% block subject %}s{% endblock %}{% block text %}" + payload + "{% endblock %}"
        "{% block html %}" + payload + "{% endblock %}")
    (renderer.templates_dir / name).write_text(source, encoding="utf-8")
    try:
        out = renderer.render(name, channel, context())
    except RenderError:
        return  # refused: the sandbox or the loader said no
    shown = f"{out.text} {out.subject} {out.html}"
    for leak in ("root:", CANARY, "<module", "__builtins__", "<class", "os.environ", "uid=", "_TemplateReference"):
        assert leak not in shown, (payload, shown[:300])


@pytest.mark.parametrize("source", [
    "{% set touch.name = 'changed' %}{{ touch.name }}",
    "{% set contact.first_name = 'changed' %}{{ contact.first_name }}",
    "{{ touch.__setattr__('name', 'changed') }}",
    "{{ sequence.__setattr__('name', 'changed') }}",
])
def test_templates_cannot_change_the_views_they_read(renderer, source):
    # the views are not frozen dataclasses, and a touch's and a sequence's views are shared by every message
    # of that touch: what keeps them unchanged is that a template cannot assign to them (they hold only
    # strings and numbers; a contact's attrs dict can be changed by dict methods, but it is a copy per message)
    ctx = context()
    (renderer.templates_dir / "set.sms.j2").write_text(source, encoding="utf-8")
    try:
        out = renderer.render("set.sms.j2", "sms", ctx).text
    except RenderError:
        out = ""
    assert "changed" not in out
    assert ctx["touch"].name == "t" and ctx["sequence"].name == "s" and ctx["contact"].first_name == "x"


def test_contact_data_with_template_syntax_prints_as_text(renderer):
    (renderer.templates_dir / "hi.sms.j2").write_text("سلام {{ contact.first_name }} {{ contact.attrs.city }}")
    evil = "{{ 7*7 }}{% for x in range(3) %}X{% endfor %}{{ cycler.__init__.__globals__.os.environ }}"
    out = renderer.render("hi.sms.j2", "sms", context(first_name=evil, attrs={"city": "{% include '/etc/passwd' %}"}))
    assert evil in out.text and "{% include '/etc/passwd' %}" in out.text
    assert "49" not in out.text and "XXX" not in out.text and CANARY not in out.text


@pytest.mark.parametrize("source, says", [
    ("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", "too much work"),
    ("{% for i in range(100000) %}{% endfor %}", "at most 10,000"),
    ("{% for i in range(10000) %}" + "x" * 100 + "{% endfor %}", "renders more than 200,000 characters"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(20) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "200,000"),
    ("{{ 'a'.center(10 ** 7) }}", "str.center would be more than 200,000"),
    ("{{ ('x\\n' * 3)|indent(10 ** 6) }}", "the indent filter's result"),
    ("{{ '%010000000d' % 1 }}", "a format width"),
    ("{{ '{:>10000000}'.format(1) }}", "a format width"),
    ("{% set s = 'a' * 1000 %}{{ s.replace('a', s) }}", "str.replace"),
    ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "RecursionError"),
])
def test_a_template_has_a_render_budget(renderer, source, says):
    (renderer.templates_dir / "greedy.sms.j2").write_text(source, encoding="utf-8")
    renderer.preload(["greedy.sms.j2"])  # compiling evaluates nothing
    with pytest.raises(RenderError) as caught:
        renderer.render("greedy.sms.j2", "sms", context())
    assert says in caught.value.message


@pytest.mark.parametrize("source", [
    "{% set l = [] %}{% for i in range(5000) %}{{ l.append(contact) }}{% endfor %}{{ l }}",
    "{% set ns = namespace(a=contact.attrs) %}{% set l = [] %}{% for i in range(5000) %}{{ l.append(ns) }}"
    "{% endfor %}{{ l }}",
    "{% set l = [] %}{% for i in range(5000) %}{{ l.append(contact.attrs.items()) }}{% endfor %}{{ l }}",
])
def test_what_a_list_of_views_prints_counts_against_the_budget(renderer, source, monkeypatch):
    # each reference to a view, a namespace or a dict view prints the contact's attrs again (5,000 x 2 KB);
    # counted as one item each, the list would be printed. The time limit is lifted so only the size decides
    # (on a loaded machine the 2 s would come first).
    monkeypatch.setattr("engine.budget.MAX_SECONDS", 600.0)
    (renderer.templates_dir / "refs.sms.j2").write_text(source, encoding="utf-8")
    with pytest.raises(RenderError, match="200,000 characters"):
        renderer.render("refs.sms.j2", "sms", context(attrs={f"k{i}": "v" * 200 for i in range(10)}))


def test_a_template_within_its_budget_renders_as_before(renderer):
    (renderer.templates_dir / "fine.sms.j2").write_text(
        "{% for i in range(3) if i %}{{ i }}-{% endfor %}{{ 2 ** 10 }} {{ '%.1f' % 2.25 }} {{ '{:>3}'.format('x') }} "
        "{{ ['a', 'b']|join(',') }} {{ 'ab'|replace('a', 'x') }} {{ 'q' ~ 1 }}", encoding="utf-8")
    assert renderer.render("fine.sms.j2", "sms", context()).text == "1-2-1024 2.2   x a,b xb q1"


def test_previews_are_bounded_by_the_same_budget(tmp_path):
    from engine.preview import preview

    seq = simple_sequence("greedy")
    seq["touches"][0]["template"] = "greedy.sms.j2"
    world = World(tmp_path, f"sqlite:///{tmp_path}/f.db", [seq], templates={
        "greedy.sms.j2": "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}hi"})
    try:
        rows = preview(world.config, world.config.sequences["greedy"])  # what `preview` and the dashboard show
    finally:
        world.close()
    assert rows[0].rendered is None and "too much work" in rows[0].error
    assert [r.error for r in rows[1:]] == [None, None] and rows[1].rendered.text


# -- secrets never leave -----------------------------------------------------------------------------
SENDGRID_KEY = "SG.faults-secret-sendgrid-key.0123456789abcdef"
SMTP_PASSWORD = "smtp-Faults-Passw0rd-!x9"


def test_a_full_run_leaks_no_secret_and_masks_addresses(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("KAVENEGAR_API_KEY", KAVE_KEY)
    monkeypatch.setenv("SENDGRID_API_KEY", SENDGRID_KEY)
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
    kave = FakeKavenegar()
    # a burst of every kind of failure, each of which builds an error text around the request URL
    kave.then(Reply(503, "upstream down"), times=2).then(Reply(200, "not json"), record=False) \
        .then(Reply(200, {"return": {"status": 411, "message": "گیرنده 09128000003 نامعتبر است"}}))
    kave.then(Reply(200, {"return": {"status": 200}, "entries": []}, delay=1.2), record=False)
    sent_mail = []

    def sendgrid(req):
        sent_mail.append(req)
        if len(sent_mail) == 1:
            return Reply(401, {"errors": [{"message": f"bad key {req.headers.get('Authorization')}"}]})
        return Reply(202, "", headers={"X-Message-Id": f"sg-{len(sent_mail)}"})

    seq = simple_sequence("a", after="1h")
    seq["touches"][1]["channel"] = "email"
    seq["touches"][1]["template"] = "mail.email.j2"
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    keep = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(keep)
    old_level = root.level
    root.setLevel(logging.DEBUG)  # everything, more than `followup -v worker` (it keeps urllib3 at WARNING):
    urllib3_log = logging.getLogger("urllib3")  # urllib3's DEBUG lines print Kavenegar's key-bearing URL path
    old_urllib3 = urllib3_log.level
    urllib3_log.setLevel(logging.DEBUG)
    errors = []
    try:
        with FakeHttpServer(kave) as k_server, FakeHttpServer(sendgrid) as s_server:
            world = World(tmp_path, f"sqlite:///{tmp_path}/followup.db", [seq], templates={
                "mail.email.j2": "{% block subject %}hi {{ contact.first_name }}{% endblock %}"
                                 "{% block text %}text{% endblock %}"}, settings={
                "send_window": ANYTIME,
                "providers": {
                    "sms": [kavenegar_entry(k_server.url, timeout=0.5)],
                    "email": [{"name": "sendgrid", "type": "sendgrid", "api_key": "${SENDGRID_API_KEY}",
                               "from": "Shop <news@shop.example>", "base_url": s_server.url + "/v3"},
                              {"name": "smtp", "type": "smtp", "host": "127.0.0.1", "port": 1,
                               "username": "news@shop.example", "password": "${SMTP_PASSWORD}",
                               "from": "Shop <news@shop.example>"}]},
                "worker": {"provider_pause_seconds": 60}})
            phones = [f"0912800{i:04d}" for i in range(6)]
            ids = world.add_contacts(*({"phone": p, "email": f"lead{i}@mail.example", "first_name": f"n{i}"}
                                       for i, p in enumerate(phones)))
            world.enroll("a", *ids)
            from freezegun import freeze_time

            with freeze_time("2026-12-05 06:30:00") as clock:
                for _ in range(12):
                    world.dispatcher.tick()
                    clock.tick(timedelta(minutes=40))
            for group in world.providers.values():
                for provider in group:
                    errors.append(repr(provider))
                    try:
                        provider.check()
                    except Exception as err:  # noqa: BLE001 - we scan its text
                        errors.append(f"{err!s} {err!r}")
    finally:
        root.removeHandler(keep)
        root.setLevel(old_level)
        urllib3_log.setLevel(old_urllib3)

    texts = [r.getMessage() for r in records] + [
        logging.Formatter().formatException(r.exc_info) for r in records if r.exc_info]
    logged = " ".join(str(v) for row in world.log() for v in row.values())
    stored = " ".join(str(v) for row in world.messages() for v in row.values())
    everything = "\n".join(texts + errors + [logged, stored])
    for secret in (KAVE_KEY, SENDGRID_KEY, SMTP_PASSWORD):
        for form in {secret, quote(secret, safe="")}:
            at = everything.find(form)
            assert at < 0, f"{secret[:6]}… leaked: {everything[max(0, at - 300):at + 100]!r}"
    assert len(world.sms.settings["api_key"]) and "KAVE" not in repr(world.sms)  # masked in repr too

    json_lines = [r.getMessage() for r in records if r.name == "followup.delivery"]
    assert json_lines
    assert {e for row in world.log() for e in [row["event"]]} >= {"sending", "sent", "retry"}
    for line in json_lines:
        for i, phone in enumerate(phones):
            assert phone not in line and "+98" + phone[1:] not in line, line
            assert f"lead{i}@mail.example" not in line, line
    assert any("***" in line for line in json_lines)  # the 411 reason named a phone: masked


def test_the_settings_repr_hides_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("KAVENEGAR_API_KEY", KAVE_KEY)
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
    world = World(tmp_path, f"sqlite:///{tmp_path}/followup.db", [simple_sequence("a")], settings={
        "secret_key": "${SMTP_PASSWORD}",
        "providers": {"sms": [kavenegar_entry("http://127.0.0.1:9")],
                      "email": [{"name": "smtp", "type": "smtp", "host": "127.0.0.1", "port": 1,
                                 "username": "u", "password": "${SMTP_PASSWORD}", "from": "a@b.example"}]}})
    shown = repr(world.config.settings) + repr(world.config)
    world.close()
    assert KAVE_KEY not in shown and SMTP_PASSWORD not in shown


# -- fuzzing ---------------------------------------------------------------------------------------
KEYS = ["name", "touches", "after", "channel", "template", "urgent", "offer", "code", "title", "expires_after",
        "expires_at", "stock", "send_window", "start", "end", "days", "frequency_cap", "per_day", "exit_on",
        "database_url", "templates_dir", "timezone", "default_region", "providers", "sms", "email", "type",
        "path", "worker", "lease_seconds", "rate", "locale", "sms_opt_out_footer", "unsubscribe_url"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=False),
                    st.text(max_size=20), st.sampled_from(["0s", "1h", "sms", "email", "09:00", "24:00", "all",
                                                           "file", "memory", "${NOPE}", "Asia/Tehran", "x.j2"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)),
    max_leaves=20)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _write_config(root: Path, settings_doc, sequence_doc) -> Path:
    cfg = root / "config"
    (cfg / "sequences").mkdir(parents=True, exist_ok=True)
    (root / "templates").mkdir(exist_ok=True)
    (root / "templates" / "x.j2").write_text("hi")
    for path, doc in ((cfg / "settings.yaml", settings_doc), (cfg / "sequences" / "s.yaml", sequence_doc)):
        path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return cfg


BASE_SETTINGS = {"database_url": "sqlite:///x.db", "templates_dir": "../templates",
                 "providers": {"sms": [{"name": "m", "type": "memory"}], "email": [{"name": "e", "type": "memory"}]}}


@FUZZ
@given(settings_doc=st.one_of(values, st.dictionaries(st.sampled_from(KEYS), values, max_size=6).map(
    lambda d: {**BASE_SETTINGS, **d}), st.text(max_size=200)),
       sequence_doc=st.one_of(values, st.dictionaries(st.sampled_from(KEYS), values, max_size=6), st.text(max_size=200)))
def test_fuzzed_config_gives_config_error_and_nothing_else(settings_doc, sequence_doc):
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _write_config(Path(tmp), settings_doc, sequence_doc)
        try:
            load_config(cfg)
        except ConfigError as err:
            assert str(err).strip()


@FUZZ
@given(touches=st.lists(st.dictionaries(st.sampled_from(["name", "after", "channel", "template", "urgent"]),
                                        values, max_size=5), max_size=6),
       extra=st.dictionaries(st.sampled_from(["offer", "send_window", "frequency_cap", "exit_on"]), values, max_size=3))
def test_fuzzed_sequences_with_a_good_settings_file(touches, extra):
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _write_config(Path(tmp), BASE_SETTINGS, {"name": "s", "touches": touches, **extra})
        try:
            load_config(cfg)
        except ConfigError as err:
            assert str(err).strip()


@pytest.fixture(scope="module")
def csv_engine(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('csv')}/c.db"
    upgrade(url)
    return make_engine(url)


def _contacts(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM contacts")).scalar()


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzzed_csv_bytes_give_a_report_or_input_error(csv_engine, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.csv"
        path.write_bytes(b"phone,email,first_name\n" + data)
        before = _contacts(csv_engine)
        try:
            report = import_csv(csv_engine, path, "IR")
        except InputError as err:
            assert str(err) and _contacts(csv_engine) == before  # refused whole: nothing written
            return
        assert report.good + len(report.errors) >= 0
        assert all(isinstance(line, (int, type(None))) and reason for line, reason in report.errors)


cells = st.one_of(st.text(max_size=15), st.sampled_from(["09121234567", "+989121234568", "۰۹۱۲۱۲۳۴۵۶۹", "a@b.co",
                                                          "Asia/Tehran", "Mars/Base", "fa", "xx", ";", '"', ""]))


@FUZZ
@given(rows=st.lists(st.fixed_dictionaries({k: cells for k in
                                            ("phone", "email", "first_name", "timezone", "locale", "tags")}),
                     max_size=12))
def test_fuzzed_csv_rows_report_every_bad_row(csv_engine, rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["phone"])
    writer.writeheader()
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.csv"
        path.write_text(buf.getvalue(), encoding="utf-8")
        report = import_csv(csv_engine, path, "IR")
    assert report.good + len(report.errors) == len(rows)


def _file_breaking_after_the_first_batch(tmp_path, tail: bytes):
    url = f"sqlite:///{tmp_path}/c.db"
    upgrade(url)
    good = "".join(f"0912{i:07d},n{i}\n" for i in range(1500)).encode()
    path = tmp_path / "c.csv"
    path.write_bytes(b"phone,first_name\n" + good + tail)
    return make_engine(url), path


def test_a_csv_that_is_not_utf8_after_the_first_batch_writes_nothing(tmp_path):
    engine, path = _file_breaking_after_the_first_batch(tmp_path, b"09129999999,\xff\xfe broken\n")
    with pytest.raises(InputError, match="not UTF-8"):
        import_csv(engine, path, "IR")
    assert _contacts(engine) == 0


def test_a_csv_that_breaks_after_the_first_batch_writes_nothing(tmp_path):
    engine, path = _file_breaking_after_the_first_batch(tmp_path, b'09129999999,"' + b"x" * 200_000 + b'"\n')
    with pytest.raises(InputError, match="not a readable CSV"):
        import_csv(engine, path, "IR")
    assert _contacts(engine) == 0


@FUZZ
@given(text=st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none(), st.floats(),
                      st.from_regex(r"\A(\d{1,4}[dhms]){1,5}\Z")))
def test_fuzzed_durations(text):
    try:
        value = parse_duration(text)
    except ValueError as err:
        assert str(err)
        return
    assert value >= timedelta(0)


@FUZZ
@given(text=st.one_of(st.text(max_size=25), st.from_regex(r"\A[+0۰]?[0-9۰-۹ ()\-]{4,18}\Z")),
       region=st.sampled_from(["IR", "DE", "US", "GB"]))
def test_fuzzed_phones(text, region):
    try:
        phone = normalize_phone(text, region)
    except ValueError as err:
        assert str(err)
        return
    assert phone.startswith("+") and phone[1:].isdigit()
    assert normalize_phone(phone, region) == phone


@pytest.mark.parametrize("key", ["timezone", "templates_dir"])
def test_a_value_too_long_for_a_file_name_is_a_config_error(tmp_path, key):
    # found by the fuzzer above: ZoneInfo and Path.is_dir raise OSError (ENAMETOOLONG) on such names
    cfg = _write_config(tmp_path, {**BASE_SETTINGS, key: "x" * 300}, {"name": "s"})
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert "settings.yaml" in str(err.value) and key in str(err.value)


# -- dashboard sessions: ended by logout, key revocation and a new password; idle and absolute lifetimes -------
def _service_client(world, password: str | None = "dashboard-pass-42", address: str = "198.51.100.7"):
    from fastapi.testclient import TestClient

    from engine.service import create_app
    from engine.service.options import ServiceOptions, service_options

    options = service_options(world.config)
    options = ServiceOptions(password, None, "the test" if password else None, options.sessions)
    return TestClient(create_app(world.config, engine=world.engine, options=options), client=(address, 40000),
                      raise_server_exceptions=False)


def _log_in(client, secret: str) -> str:
    response = client.post("/login", data={"secret": secret, "next": "/dashboard"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.cookies["followup_session"]


def _dashboard(client, cookie: str) -> int:
    client.cookies.clear()
    client.cookies.set("followup_session", cookie)
    return client.get("/dashboard", follow_redirects=False).status_code


def _session_rows(world) -> list[dict]:
    from engine.models import DashboardSession

    with world.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(DashboardSession.__table__)).mappings()]


@pytest.fixture
def service_world(make_world):
    from tests.service_support import SERVICE_SETTINGS

    return make_world([simple_sequence("drip")], settings=SERVICE_SETTINGS)


def test_revoking_a_key_ends_the_dashboard_sessions_opened_with_it(service_world):
    from click.testing import CliRunner

    from engine.cli import cli

    runner = CliRunner()
    created = runner.invoke(cli, ["--config", str(service_world.config.dir), "apikey", "create", "ops"])
    key = created.stdout.strip().splitlines()[-1]
    client = _service_client(service_world)
    cookie = _log_in(client, key)
    assert _dashboard(client, cookie) == 200
    stored = _session_rows(service_world)
    assert len(stored) == 1 and cookie not in str(stored) and stored[0]["who"] == "key:ops"
    revoked = runner.invoke(cli, ["--config", str(service_world.config.dir), "apikey", "revoke", "ops"])
    assert revoked.exit_code == 0, revoked.output
    assert _dashboard(client, cookie) == 303
    assert client.get("/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert _session_rows(service_world) == []


def test_logout_ends_the_session_for_every_copy_of_the_cookie(service_world):
    client = _service_client(service_world)
    cookie = _log_in(client, "dashboard-pass-42")
    assert _dashboard(client, cookie) == 200
    out = client.post("/logout", follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert _dashboard(client, cookie) == 303  # a copy kept from before the logout is worth nothing
    assert _session_rows(service_world) == []


def test_a_new_password_ends_password_sessions_even_across_a_restart(service_world):
    cookie = _log_in(_service_client(service_world, "first-password-123"), "first-password-123")
    assert _dashboard(_service_client(service_world, "first-password-123"), cookie) == 200  # restarted, same password
    assert _dashboard(_service_client(service_world, "second-password-456"), cookie) == 303
    assert _dashboard(_service_client(service_world, None), cookie) == 303  # no password: only keys log in
    assert "first-password-123" not in str(_session_rows(service_world))


def test_a_session_ends_after_its_idle_time_and_at_its_maximum_age(service_world):
    from freezegun import freeze_time

    client = _service_client(service_world)
    with freeze_time("2026-12-05 06:00:00", tz_offset=0) as frozen:
        idle = _log_in(client, "dashboard-pass-42")
        kept = _log_in(client, "dashboard-pass-42")
        for _ in range(27):  # used every 6 hours: never idle for 8 hours
            frozen.tick(timedelta(hours=6))
            assert _dashboard(client, kept) == 200
        assert _dashboard(client, idle) == 303
        frozen.tick(timedelta(hours=6) - timedelta(seconds=1))
        assert _dashboard(client, kept) == 200
        frozen.tick(timedelta(seconds=1))  # seven days after login
        assert _dashboard(client, kept) == 303


def test_last_seen_is_written_at_most_once_a_minute(service_world):
    from freezegun import freeze_time

    client = _service_client(service_world)
    with freeze_time("2026-12-05 06:00:00", tz_offset=0) as frozen:
        cookie = _log_in(client, "dashboard-pass-42")
        opened = _session_rows(service_world)[0]["last_seen_at"]
        for _ in range(5):
            frozen.tick(timedelta(seconds=10))
            assert _dashboard(client, cookie) == 200
        assert _session_rows(service_world)[0]["last_seen_at"] == opened
        frozen.tick(timedelta(seconds=10))  # a minute since login
        assert _dashboard(client, cookie) == 200
        assert _session_rows(service_world)[0]["last_seen_at"] != opened


def test_session_lifetimes_come_from_settings_and_bad_ones_are_named(make_world, tmp_path):
    from freezegun import freeze_time

    from tests.service_support import SERVICE_SETTINGS

    world = make_world([simple_sequence("drip")], settings={**SERVICE_SETTINGS, "service": {"session_idle": "30m"}})
    client = _service_client(world)
    with freeze_time("2026-12-05 06:00:00", tz_offset=0) as frozen:
        cookie = _log_in(client, "dashboard-pass-42")
        frozen.tick(timedelta(minutes=31))
        assert _dashboard(client, cookie) == 303
    settings_file = world.config.dir / "settings.yaml"
    doc = yaml.safe_load(settings_file.read_text(encoding="utf-8"))
    doc["service"] = {"session_idle": "eight hours", "session_max": "1h"}
    settings_file.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(world.config.dir)
    problems = [str(p) for p in caught.value.problems]
    assert any("service.session_idle" in p and "30m" in p and ":" in p.split("service.")[0] for p in problems), problems


# -- login throttling ---------------------------------------------------------------------------------
def test_300_wrong_passwords_from_one_address_get_5_answers_and_then_429_with_backoff(service_world, caplog):
    from freezegun import freeze_time

    client = _service_client(service_world)
    caplog.set_level(logging.WARNING, logger="followup.service")
    with freeze_time("2026-12-05 06:00:00", tz_offset=0) as frozen:
        codes = [client.post("/login", data={"secret": f"guess-{i}"}).status_code for i in range(300)]
        assert codes.count(401) == 5 and codes.count(429) == 295 and codes[:5] == [401] * 5
        refused = client.post("/login", data={"secret": "dashboard-pass-42"}, follow_redirects=False)
        assert refused.status_code == 429  # the right password waits too: a guess is not checked at all
        waits = [int(refused.headers["Retry-After"])]
        for _ in range(3):
            frozen.tick(timedelta(seconds=waits[-1]))
            assert client.post("/login", data={"secret": "wrong again"}).status_code == 401
            retry = client.post("/login", data={"secret": "wrong again"})
            assert retry.status_code == 429
            waits.append(int(retry.headers["Retry-After"]))
        assert waits == [2, 4, 8, 16]
        frozen.tick(timedelta(seconds=waits[-1]))
        _log_in(client, "dashboard-pass-42")
        assert client.post("/login", data={"secret": "a typo"}).status_code == 401  # success forgot the failures
    text = caplog.text
    assert "login failed from 198.51.100.7" in text and "refused" in text
    assert "guess-" not in text and "dashboard-pass-42" not in text and "wrong again" not in text


def test_failures_from_many_addresses_close_the_password_door_for_a_while(service_world):
    from freezegun import freeze_time

    from engine.service.throttle import GLOBAL_FAILURES, WINDOW

    first = _service_client(service_world, address="203.0.113.1")
    app = first.app
    with freeze_time("2026-12-05 06:00:00", tz_offset=0) as frozen:
        for n in range(GLOBAL_FAILURES // 2):
            other = type(first)(app, client=(f"203.0.113.{n + 1}", 40000))
            assert [other.post("/login", data={"secret": "x"}).status_code for _ in range(2)] == [401, 401]
        newcomer = type(first)(app, client=("192.0.2.200", 40000))
        refused = newcomer.post("/login", data={"secret": "dashboard-pass-42"})
        assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= WINDOW.total_seconds()
        frozen.tick(WINDOW)
        _log_in(newcomer, "dashboard-pass-42")


# -- CSRF on the login and logout forms -----------------------------------------------------------------
@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                                     {"Origin": "https://evil.example"}])
def test_a_login_or_logout_posted_from_another_site_is_refused(service_world, headers):
    client = _service_client(service_world)
    forged = client.post("/login", data={"secret": "dashboard-pass-42"}, headers=headers, follow_redirects=False)
    assert forged.status_code == 403 and "followup_session" not in forged.cookies
    assert _session_rows(service_world) == []
    cookie = _log_in(client, "dashboard-pass-42")
    out = client.post("/logout", headers=headers, follow_redirects=False)
    assert out.status_code == 403 and _dashboard(client, cookie) == 200
    same = {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}
    assert client.post("/login", data={"secret": "dashboard-pass-42"}, headers=same,
                       follow_redirects=False).status_code == 303


# -- `followup serve`: the password for the address, the password's source, a busy port ------------------
def _serve(world, *args: str, password: str | None) -> tuple[int | None, str]:
    from tests.service_support import followup

    env = {"FOLLOWUP_DASHBOARD_PASSWORD": password or ""}
    proc = followup("serve", *args, config=world.config.dir, env=env)
    try:
        out, _ = proc.communicate(timeout=30)
    except Exception:
        proc.kill()
        out, _ = proc.communicate()
        return None, out.decode(errors="replace")
    return proc.returncode, out.decode(errors="replace")


@pytest.mark.parametrize("password", ["followup", "eleven-char"])
def test_serve_refuses_a_public_address_with_the_default_or_a_short_password(service_world, password):
    code, out = _serve(service_world, "--host", "0.0.0.0", "--port", "1", password=password)
    assert code == 2, out
    assert "FOLLOWUP_DASHBOARD_PASSWORD" in out and "service:" in out and "serving on" not in out
    assert password not in out.replace("'followup'", "")


def test_serve_says_where_the_password_comes_from_and_never_shows_it(service_world):
    from tests.service_support import followup, free_port, stop, wait_for_server

    for password, said in (("kept-Secret-99", "from the environment variable FOLLOWUP_DASHBOARD_PASSWORD"),
                           (None, "dashboard login only with an API key")):
        port = free_port()
        proc = followup("serve", "--port", str(port), config=service_world.config.dir,
                        env={"FOLLOWUP_DASHBOARD_PASSWORD": password or ""})
        try:
            wait_for_server(f"http://127.0.0.1:{port}", proc)
        finally:
            out = stop(proc)
        assert said in out and "serving on" in out, out
        assert out.index(said) < out.index("serving on")
        assert "kept-Secret-99" not in out


def test_serve_on_a_busy_port_says_so_in_one_line_before_serving(service_world):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out = _serve(service_world, "--port", str(port), password="dashboard-pass-42")
    assert code == 1, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert "serving on" not in out and f"port {port}" in lines[-1] and "--port" in lines[-1], out
    assert "Traceback" not in out and "Errno" not in out


def _alias_bomb(levels: int) -> str:
    """A YAML "billion laughs": each level names nine aliases of the one before (9**levels strings)."""
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("where", ["settings.yaml", "sequences/s.yaml"])
def test_a_yaml_alias_bomb_is_refused_with_file_and_line(tmp_path, where):
    from engine.validate import validate

    cfg = _write_config(tmp_path, BASE_SETTINGS, simple_sequence("s"))
    with (cfg / where).open("a", encoding="utf-8") as fh:
        fh.write(_alias_bomb(9))
    first_alias = len((cfg / where).read_text(encoding="utf-8").splitlines()) - 8  # the line of lol1
    config, problems = validate(cfg)  # without the refusal, expanding 9**9 strings does not end
    assert (config is None) == (where == "settings.yaml") and (config is None or not config.sequences)
    assert [str(p) for p in problems] == [
        f"{os.path.relpath(cfg / where)}:{first_alias}: YAML alias *lol0 is not accepted here; repeat the value "
        "instead of naming it with &lol0 and reusing it"]


def test_a_yaml_anchor_without_an_alias_is_still_read(tmp_path):
    cfg = _write_config(tmp_path, BASE_SETTINGS, "name: &n s\n" + yaml.safe_dump({"touches": simple_sequence("s")["touches"]}))
    assert load_config(cfg).sequences["s"].name == "s"
