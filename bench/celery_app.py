"""The usual alternative, for bench 9: one Celery task per touch, scheduled with ``eta``, on Redis.

The common "reliable" setup: ``acks_late`` + ``reject_on_worker_lost`` (a task killed mid-run is
redelivered, not lost), Redis ``visibility_timeout`` lowered to 30 s so redelivery shows within the
bench (the default is one hour). Each task renders the same template as the engine's sequence and
posts a Kavenegar send, with our key as ``localid``, to the fake API.

    BENCH_BROKER=redis://127.0.0.1:6379/13 BENCH_SEND_URL=http://127.0.0.1:PORT/v1/KEY/sms/send.json \
        celery -A bench.celery_app worker --pool threads -c 50
"""
from __future__ import annotations

import os
import threading

import requests
from celery import Celery
from jinja2.sandbox import SandboxedEnvironment

BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/13")
SEND_URL = os.environ.get("BENCH_SEND_URL", "")
TEMPLATE = SandboxedEnvironment().from_string(
    "{{ contact.first_name }} عزیز، پیام {{ touch.name }} از فروشگاه: کد تخفیف شما آماده است.")

app = Celery("bench", broker=BROKER)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    broker_transport_options={"visibility_timeout": 30},
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
_local = threading.local()


class Transient(Exception):
    pass


def session() -> requests.Session:
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
        s.trust_env = False  # the same client settings as our providers
    return s


@app.task(bind=True, autoretry_for=(Transient, requests.ConnectionError), retry_backoff=1, retry_jitter=True,
          max_retries=5)
def send_touch(self, localid: str, phone: str, first_name: str, touch: str) -> None:
    text = TEMPLATE.render(contact={"first_name": first_name}, touch={"name": touch}) + "\nلغو11"
    r = session().post(SEND_URL, data={"receptor": phone, "message": text, "sender": "10004346",
                                       "localid": localid}, timeout=10)
    if r.status_code >= 500 or r.status_code == 429:
        raise Transient(f"HTTP {r.status_code}")
    body = r.json()
    if body.get("return", {}).get("status") != 200:
        raise RuntimeError(f"refused: {body}")
