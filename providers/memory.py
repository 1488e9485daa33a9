"""An in-memory provider with an outbox and scriptable failures, for tests.

>>> p = MemoryProvider("mem", {"type": "memory"})
>>> p.fail_next(TransientError("gateway busy"), times=2)
>>> # the next two sends raise, the third is accepted and lands in p.outbox
"""
from __future__ import annotations

import itertools
from typing import Callable

from .base import (
    DeliveryReport,
    InboundMessage,
    LookupResult,
    OutgoingMessage,
    Provider,
    SendResult,
)
from .errors import ProviderError

__all__ = ["MemoryProvider"]


class MemoryProvider(Provider):
    type = "memory"
    channels = frozenset({"sms", "email"})
    supports_lookup = True

    def __init__(self, name, settings):
        super().__init__(name, settings)
        self.outbox: list[OutgoingMessage] = []
        #: every call to send, accepted or not, in order
        self.attempts: list[OutgoingMessage] = []
        self._script: list[ProviderError | None] = []
        self.rule: Callable[[OutgoingMessage], ProviderError | None] | None = None
        self.reports: list[DeliveryReport] = []
        self.replies: list[InboundMessage] = []
        self._ids = itertools.count(1)

    def fail_next(self, error: ProviderError, times: int = 1) -> None:
        """Make the next ``times`` sends raise ``error``."""
        with self._lock:
            self._script.extend([error] * times)

    def fail_when(self, rule: Callable[[OutgoingMessage], ProviderError | None]) -> None:
        """Raise whatever ``rule(message)`` returns (None lets the message through)."""
        self.rule = rule

    def send(self, message: OutgoingMessage) -> SendResult:
        with self._lock:
            self.attempts.append(message)
            error = self._script.pop(0) if self._script else None
            if error is None and self.rule is not None:
                error = self.rule(message)
            if error is not None:
                raise error
            self.outbox.append(message)
            return SendResult(provider_message_id=f"mem-{next(self._ids)}")

    def lookup(self, message_id: str) -> LookupResult:
        with self._lock:
            for index, sent in enumerate(self.outbox, start=1):
                if sent.message_id == message_id:
                    return LookupResult(found=True, provider_message_id=f"mem-{index}")
        return LookupResult(found=False)

    def delivery_status(self, provider_message_ids):
        wanted = set(provider_message_ids)
        return [r for r in self.reports if r.provider_message_id in wanted]

    def inbound(self):
        with self._lock:
            replies, self.replies = self.replies, []
        return replies
