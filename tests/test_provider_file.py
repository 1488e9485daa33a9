"""The sandbox provider's outbox: a path it can never write is found at start-up, and a send that finds it
unwritable pauses the provider (it would fail every time) instead of being retried as a passing fault."""
from __future__ import annotations

import json

import pytest

from providers.base import OutgoingMessage
from providers.errors import ProviderBlockedError, ProviderConfigError
from providers.file import FileProvider


def message() -> OutgoingMessage:
    return OutgoingMessage(channel="sms", to="+989121234567", text="سلام", message_id="7")


def test_an_outbox_under_a_file_is_a_setting_problem_with_a_fix(tmp_path):
    (tmp_path / "var").write_text("not a folder")
    with pytest.raises(ProviderConfigError) as caught:
        FileProvider("sandbox", {"type": "file", "path": str(tmp_path / "var" / "outbox.jsonl")})
    assert caught.value.key == "path"
    assert "is a file, so" in caught.value.message and "choose a writable path" in caught.value.message


def test_an_outbox_that_is_a_folder_is_a_setting_problem(tmp_path):
    with pytest.raises(ProviderConfigError, match="is a folder, not a file"):
        FileProvider("sandbox", {"type": "file", "path": str(tmp_path)})


def test_missing_folders_are_fine_and_created_on_the_first_send(tmp_path):
    outbox = tmp_path / "var" / "deep" / "outbox.jsonl"
    provider = FileProvider("sandbox", {"type": "file", "path": str(outbox)})
    provider.send(message())
    assert json.loads(outbox.read_text(encoding="utf-8"))["message_id"] == "7"


def test_an_outbox_that_became_unwritable_pauses_the_provider(tmp_path):
    outbox = tmp_path / "outbox.jsonl"
    provider = FileProvider("sandbox", {"type": "file", "path": str(outbox)})
    outbox.mkdir()  # the path is now a folder: every append fails the same way
    with pytest.raises(ProviderBlockedError, match="cannot append to the outbox file"):
        provider.send(message())
