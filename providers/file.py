"""The sandbox provider: appends each message as one JSON line to a file.

Every line has ``channel``, ``to``, ``text`` (or ``subject``/``text``/``html``),
``message_id`` and ``at``. Because each line carries our message id, :meth:`lookup`
can tell after a crash whether a message got out, so nothing is resent or lost.
"""
from __future__ import annotations

import errno
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from .base import LookupResult, OutgoingMessage, Provider, SendResult
from .errors import ProviderBlockedError, ProviderConfigError, TransientError

__all__ = ["FileProvider"]

#: an outbox that fails with these will fail every send until someone fixes the path or its permissions
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR}


class FileProvider(Provider):
    type = "file"
    channels = frozenset({"sms", "email"})
    required = ("path",)
    supports_lookup = True

    @property
    def path(self) -> Path:
        return Path(self.settings["path"])

    def validate_settings(self) -> None:
        """Also check, at start-up, that the outbox file can be created or appended to."""
        super().validate_settings()
        problem = _unwritable(self.path)
        if problem:
            raise ProviderConfigError("path", f"{problem}; choose a writable path (e.g. ../var/outbox.jsonl)")

    def send(self, message: OutgoingMessage) -> SendResult:
        record = {"channel": message.channel, "to": message.to}
        if message.channel == "email":
            record.update(subject=message.subject, text=message.text, html=message.html, headers=dict(message.headers))
        else:
            record["text"] = message.text
        record.update(message_id=message.message_id, provider=self.name, at=datetime.now(timezone.utc).isoformat())
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # one write() on an O_APPEND descriptor: lines from several threads or workers never interleave
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as err:
            reason = f"cannot append to the outbox file {self.path}: {err.strerror}"
            if err.errno in _NOT_WRITABLE:
                raise ProviderBlockedError(reason, code=errno.errorcode.get(err.errno)) from err
            raise TransientError(reason) from err
        return SendResult(provider_message_id=f"file-{message.message_id}")

    def lookup(self, message_id: str) -> LookupResult:
        if not self.path.exists():
            return LookupResult(found=False)
        needle = f'"message_id": "{message_id}"'
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if needle in line:
                    return LookupResult(found=True, provider_message_id=f"file-{message_id}")
        return LookupResult(found=False)


def _unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be appended to (created with its missing folders), or None."""
    if path.is_dir():
        return f"{path} is a folder, not a file"
    if path.exists():
        return None if os.access(path, os.W_OK) else f"{path} is not writable"
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, so {path} cannot be created under it"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable, so {path} cannot be created"
    return None
