"""The fault tests' fake SMS panels and database fixture; the kill harness itself is ``bench.faults``
(``python -m bench.chaos`` runs it too), imported here under the names the fault tests use."""
from __future__ import annotations

import os
import threading

import pytest

from bench.faults import (ALLOWED_NEXT, ANYTIME, FINAL, FOLLOWUP, Audit, Fleet, Killer,  # noqa: F401
                          add_and_enroll, audit_history, chaos_run, kill_world, outbox_ids, own_database,
                          reset_postgres, start_worker, statuses, three_touch, wait_for_file, wait_until_final,
                          worker_env)


# -- fake SMS panels on 127.0.0.1 ------------------------------------------------------------------
KAVE_KEY = "5A6B7C-KAVE-FAULTS-KEY-0123456789"
SMSIR_KEY = "smsir-faults-key-9876543210"


class FakeKavenegar:
    """Kavenegar's wire format, scriptable: ``script`` is a list of Replies (or callables) used for the next sends.

    It accepts a send (records our ``localid``) unless the scripted reply says otherwise; ``record``
    tells whether a scripted reply still counts as accepted (a lost answer after the panel took it).
    ``credit`` makes it answer 418 once that many sends were accepted. ``lookup`` answers by localid.
    """

    def __init__(self, *, credit: int | None = None, delay: float = 0.0):
        from tests.fakes.httpserver import Reply

        self.Reply = Reply
        self.credit, self.delay = credit, delay
        self.accepted: list[str] = []
        self.sends = 0
        self.lookups = 0
        self.script: list[tuple[object, bool]] = []
        self.always: tuple[object, bool] | None = None
        self.lock = threading.Lock()
        self.ids = iter(range(8792343, 10**9))

    def then(self, reply, *, record: bool = False, times: int = 1) -> "FakeKavenegar":
        self.script.extend([(reply, record)] * times)
        return self

    def ok(self, localid: str, receptor: str):
        return self.Reply(200, {"return": {"status": 200, "message": "تایید شد"}, "entries": [
            {"messageid": next(self.ids), "status": 1, "receptor": receptor, "cost": 120, "localid": localid}]},
            delay=self.delay)

    def __call__(self, req):
        Reply = self.Reply
        assert req.path.startswith(f"/v1/{KAVE_KEY}/"), req.path
        method = req.path.split(f"/v1/{KAVE_KEY}/", 1)[1]
        form = req.form
        with self.lock:
            if method == "sms/send.json":
                self.sends += 1
                scripted = self.script.pop(0) if self.script else self.always
                if scripted is not None:
                    reply, record = scripted
                    if record:
                        self.accepted.append(form["localid"])
                    return reply(req) if callable(reply) else reply
                if self.credit is not None and len(self.accepted) >= self.credit:
                    return Reply(418, {"return": {"status": 418, "message": "اعتبار حساب شما کافی نیست"},
                                       "entries": None})
                self.accepted.append(form["localid"])
                return self.ok(form["localid"], form["receptor"])
            if method == "sms/statuslocalmessageid.json":
                self.lookups += 1
                found = form["localid"] in self.accepted
                return Reply(200, {"return": {"status": 200, "message": "تایید شد"}, "entries": [
                    {"messageid": 5000 + self.accepted.index(form["localid"]) if found else 0,
                     "localid": form["localid"], "status": 1 if found else 100,
                     "statustext": "ok" if found else "نامعتبر"}]})
            if method in ("sms/status.json", "sms/receive.json"):
                return Reply(200, {"return": {"status": 200, "message": "تایید شد"}, "entries": []})
            if method == "account/info.json":
                return Reply(200, {"return": {"status": 200, "message": "ok"},
                                   "entries": {"remaincredit": 1000, "expiredate": 0, "type": "Master"}})
        return Reply(404, {"return": {"status": 404, "message": "not found"}, "entries": None})


class FakeSmsIr:
    """SMS.ir's ``send/bulk``; records (mobile, text) of every accepted send."""

    def __init__(self):
        from tests.fakes.httpserver import Reply

        self.Reply = Reply
        self.received: list[tuple[str, str]] = []
        self.script: list = []
        self.lock = threading.Lock()
        self.ids = iter(range(89545112, 10**9))

    def __call__(self, req):
        assert req.headers.get("X-API-KEY") == SMSIR_KEY, req.headers
        with self.lock:
            if self.script:
                reply = self.script.pop(0)
                return reply(req) if callable(reply) else reply
            self.received.append((req.json["mobiles"][0], req.json["messageText"]))
            return self.Reply(200, {"status": 1, "message": "موفق", "data": {
                "packId": "6b3d5a0e", "messageIds": [next(self.ids)], "cost": 1.0}})


def kavenegar_entry(url: str, **extra) -> dict:
    return {"name": "kavenegar", "type": "kavenegar", "api_key": "${KAVENEGAR_API_KEY}", "sender": "10004346",
            "base_url": url + "/v1", **extra}


def smsir_entry(url: str, **extra) -> dict:
    return {"name": "smsir", "type": "smsir", "api_key": "${SMSIR_API_KEY}", "sender": "30007732",
            "base_url": url + "/v1", **extra}


@pytest.fixture(params=["sqlite", "postgres"])
def fault_db_url(request, tmp_path) -> str:
    """SQLite always; PostgreSQL (an emptied database of our own) when FOLLOWUP_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/followup.db"
    url = os.environ.get("FOLLOWUP_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("FOLLOWUP_TEST_POSTGRES_URL is not set")
    return reset_postgres(url)
