"""A provider that prints each message to the terminal, for trying a sequence locally."""
from __future__ import annotations

import sys
import threading

from .base import OutgoingMessage, Provider, SendResult

__all__ = ["ConsoleProvider"]

_print_lock = threading.Lock()


class ConsoleProvider(Provider):
    type = "console"
    channels = frozenset({"sms", "email"})
    optional = ("stream",)

    def send(self, message: OutgoingMessage) -> SendResult:
        stream = sys.stderr if self.settings.get("stream") == "stderr" else sys.stdout
        head = f"[{self.name}] {message.channel} → {message.to}"
        body = f"Subject: {message.subject}\n{message.text}" if message.channel == "email" else message.text
        with _print_lock:
            print(f"{head}\n{body}\n", file=stream, flush=True)
        return SendResult(provider_message_id=f"console-{message.message_id}")
