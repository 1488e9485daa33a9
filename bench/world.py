"""A throwaway world: a config folder, a migrated database and a dispatcher with memory providers.

The test suite builds one per test (``make_world`` in tests/conftest.py); the fault tests and
``python -m bench.chaos`` build one whose providers append to a file and run real worker processes on it.
"""
from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
import yaml

from engine.config import load_config
from engine.contacts import ImportReport, parse_row, upsert_contacts
from engine.db import current_revision, head_revision, make_engine, upgrade
from engine.installation import client_reference
from engine.dispatch import Dispatcher
from engine.timer import Immediate
from engine.enrollment import enroll
from engine.events import record_event
from engine.models import DeliveryLog, Enrollment, Message
from engine.provider_setup import build_providers

UTC = timezone.utc

WINTER_TEMPLATES = {
    "winter/hello.sms.j2": "{{ contact.first_name }} عزیز، کد {{ offer.code }}: {{ offer.title }}",
    "winter/value.email.j2": textwrap.dedent("""\
        {% block subject %}راهنمای انتخاب پالتو، {{ contact.first_name }}{% endblock %}
        {% block text %}سلام {{ contact.first_name }}، کد {{ offer.code }}{% endblock %}
        {% block html %}<p>سلام {{ contact.first_name }}</p>{% endblock %}"""),
    "winter/reminder.sms.j2": "{{ contact.first_name }} جان، {{ offer.title }} هنوز هست.",
    "winter/last-chance.sms.j2": "فقط {{ offer.time_left | duration }} مانده؛ {{ offer.stock_left | fa_digits }} عدد باقی است.",
}


class World:
    """A config folder, a migrated database and a dispatcher with memory providers."""

    def __init__(self, root: Path, db_url: str, sequences: list[dict], settings: dict | None = None,
                 templates: dict[str, str] | None = None):
        self.root = root
        cfg = root / "config"
        (cfg / "sequences").mkdir(parents=True, exist_ok=True)
        base = {
            "database_url": db_url, "templates_dir": "../templates", "timezone": "Asia/Tehran",
            "default_region": "IR",
            "send_window": {"start": "09:00", "end": "21:00", "days": ["sat", "sun", "mon", "tue", "wed", "thu"]},
            "frequency_cap": {"per_day": 3}, "sms_opt_out_footer": "لغو11",
            "providers": {"sms": [{"name": "mem-sms", "type": "memory"}],
                          "email": [{"name": "mem-email", "type": "memory"}]},
        }
        base.update(settings or {})
        (cfg / "settings.yaml").write_text(yaml.safe_dump(base, allow_unicode=True), encoding="utf-8")
        for seq in sequences:
            (cfg / "sequences" / f"{seq['name']}.yaml").write_text(yaml.safe_dump(seq, allow_unicode=True), encoding="utf-8")
        tpl = {**WINTER_TEMPLATES, "plain.sms.j2": "سلام {{ contact.first_name }}، {{ touch.name }}", **(templates or {})}
        for name, text in tpl.items():
            path = root / "templates" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        self.config = load_config(cfg)
        self.engine = make_engine(self.config.settings.database_url)
        if current_revision(self.engine) != head_revision():  # a database the tests migrated already is left as is
            upgrade(self.config.settings.database_url)
        self.providers = build_providers(self.config)
        self.sleeps: list[float] = []
        self.dispatcher = Dispatcher(self.config, self.providers, engine=self.engine, sleep=self.sleeps.append,
                                     timer=Immediate(self.sleeps.append))

    # -- acting ------------------------------------------------------------------------
    def add_contacts(self, *rows: dict) -> list[int]:
        report = ImportReport()
        with self.engine.begin() as conn:
            upsert_contacts(conn, [parse_row(r, "IR") for r in rows], report)
        return report.contact_ids

    def enroll(self, sequence: str, *contact_ids: int):
        with self.engine.begin() as conn:
            return enroll(conn, self.config, sequence, list(contact_ids))

    def event(self, contact_id: int, kind: str, **kw):
        with self.engine.begin() as conn:
            contact = dict(conn.execute(sa.text("SELECT * FROM contacts WHERE id = :i"), {"i": contact_id}).mappings().one())
            return record_event(conn, self.config, contact, kind, **kw)

    def tick(self):
        return self.dispatcher.tick()

    def run(self, frozen, until: datetime, step: timedelta = timedelta(minutes=15)) -> None:
        """Advance the frozen clock in steps up to ``until``, ticking at each step."""
        self.tick()
        now = datetime.now(UTC)
        while now < until:
            now = min(now + step, until)
            frozen.move_to(now)
            self.tick()

    # -- looking -----------------------------------------------------------------------
    @property
    def sms(self):
        return self.providers["sms"][0]

    @property
    def email(self):
        return self.providers["email"][0]

    def reference(self, message_id: int) -> str:
        """The client reference providers get for message ``message_id`` of this world's database."""
        return client_reference(self.dispatcher.reference_prefix, message_id)

    def sent(self) -> list[tuple[str, str]]:
        """(touch, channel) of every message the providers accepted, in order."""
        with self.engine.connect() as conn:
            touch_of = {self.reference(r.id): r.touch for r in conn.execute(sa.select(Message.__table__.c.id, Message.__table__.c.touch))}
        out = [m for group in self.providers.values() for p in group for m in p.outbox]
        return [(touch_of[m.message_id], m.to) for m in out]

    def messages(self, **where) -> list[dict]:
        return self._rows(Message.__table__, where)

    def log(self, **where) -> list[dict]:
        return self._rows(DeliveryLog.__table__, where)

    def _rows(self, table: sa.Table, where: dict) -> list[dict]:
        """The rows of ``table`` whose columns equal ``where``'s values, in id order."""
        query = sa.select(table).order_by(table.c.id)
        for k, v in where.items():
            query = query.where(table.c[k] == v)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def enrollment(self, contact_id: int, sequence: str) -> dict:
        table = Enrollment.__table__
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(table).where(table.c.contact_id == contact_id,
                                                            table.c.sequence == sequence)).mappings().one())

    def close(self):
        self.dispatcher.close()
