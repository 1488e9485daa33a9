"""Kavenegar runs out of credit mid-run; every remaining message goes out once through SMS.ir.

A real worker process, real HTTP servers on 127.0.0.1 speaking each panel's wire format.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from pathlib import Path

from tests.fakes.httpserver import FakeHttpServer, Reply

from .conftest import World, simple_sequence

FOLLOWUP = str(Path(sys.executable).parent / "followup")
KEY = "5A6B7C-KAVE-SECRET-KEY-0123456789"
SMSIR_KEY = "smsir-secret-key-9876543210"


class Kavenegar:
    """Accepts the first ``credit`` sends, then answers 418 (insufficient credit) like the real API."""

    def __init__(self, credit: int):
        self.credit, self.accepted, self.lock = credit, [], threading.Lock()
        self.ids = itertools.count(8792343)

    def __call__(self, req):
        assert req.path == f"/v1/{KEY}/sms/send.json", req.path
        with self.lock:
            if len(self.accepted) >= self.credit:
                return Reply(418, {"return": {"status": 418, "message": "اعتبار حساب شما کافی نیست"}, "entries": None})
            self.accepted.append(req.form["localid"])
            return Reply(200, {"return": {"status": 200, "message": "تایید شد"}, "entries": [
                {"messageid": next(self.ids), "status": 1, "receptor": req.form["receptor"], "cost": 120}]})


class SmsIr:
    def __init__(self):
        self.received, self.lock, self.ids = [], threading.Lock(), itertools.count(89545112)

    def __call__(self, req):
        assert req.headers.get("X-API-KEY") == SMSIR_KEY and req.path.endswith("/send/bulk"), req.path
        with self.lock:
            self.received.append((req.json["mobiles"][0], req.json["messageText"]))
            return Reply(200, {"status": 1, "message": "موفق", "data": {
                "packId": "6b3d5a0e", "messageIds": [next(self.ids)], "cost": 1.0}})


def test_credit_runs_out_mid_run_and_the_failover_sends_the_rest_once(tmp_path, monkeypatch):
    monkeypatch.setenv("KAVENEGAR_API_KEY", KEY)
    monkeypatch.setenv("SMSIR_API_KEY", SMSIR_KEY)
    kave, smsir = Kavenegar(credit=4), SmsIr()
    with FakeHttpServer(kave) as k_server, FakeHttpServer(smsir) as s_server:
        world = World(tmp_path, f"sqlite:///{tmp_path}/followup.db", [simple_sequence("a", after="1h")], settings={
            "send_window": {"start": "00:00", "end": "24:00", "days": "all"},
            "providers": {
                "sms": [{"name": "kavenegar", "type": "kavenegar", "api_key": "${KAVENEGAR_API_KEY}",
                         "sender": "10004346", "base_url": k_server.url + "/v1"},
                        {"name": "smsir", "type": "smsir", "api_key": "${SMSIR_API_KEY}", "sender": "30007732",
                         "base_url": s_server.url + "/v1"}],
                "email": [{"name": "mail", "type": "file", "path": str(tmp_path / "outbox.jsonl")}]},
        })
        phones = [f"0912000{i:04d}" for i in range(12)]
        ids = world.add_contacts(*({"phone": p, "first_name": f"n{i}"} for i, p in enumerate(phones)))
        world.enroll("a", *ids)
        world.dispatcher.close()
        env = {**os.environ, "FOLLOWUP_CONFIG": str(world.root / "config")}
        proc = subprocess.run([FOLLOWUP, "worker", "--once"], env=env, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()

    first = world.messages(touch="t0")
    assert {m["status"] for m in first} == {"sent"}
    by_kave = {m["id"] for m in first if m["provider"] == "kavenegar"}
    by_smsir = {m["id"] for m in first if m["provider"] == "smsir"}
    assert len(by_kave) == 4 and len(by_smsir) == 8 and not by_kave & by_smsir
    assert sorted(kave.accepted) == sorted(world.reference(i) for i in by_kave)  # our reference travelled as localid
    assert len(smsir.received) == 8 and len({p for p, _ in smsir.received}) == 8  # nobody twice
    paused = world.log(event="provider_paused")
    assert paused and paused[0]["provider"] == "kavenegar"
    output = proc.stdout.decode() + proc.stderr.decode()
    logged = " ".join(str(v) for r in world.log() for v in r.values())
    for secret in (KEY, SMSIR_KEY):
        assert secret not in output and secret not in logged

