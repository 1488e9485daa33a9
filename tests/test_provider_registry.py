"""providers.registry: creating providers from their settings, and the errors naming the key."""
from __future__ import annotations

import pytest

from providers.errors import ProviderConfigError
from providers.file import FileProvider
from providers.memory import MemoryProvider
from providers.registry import create_provider, known_types


def test_unknown_provider_type_lists_the_known_ones():
    with pytest.raises(ProviderConfigError) as caught:
        create_provider({"name": "x", "type": "pigeon"})
    assert caught.value.key == "type"
    assert "'pigeon'" in caught.value.message
    for known in ("file", "memory", "kavenegar", "smtp"):
        assert known in caught.value.message
    assert known_types() == sorted(known_types()) and "file" in known_types()


@pytest.mark.parametrize("timeout", ["ten", -1, 0, True, 3600])
def test_a_provider_timeout_that_is_not_a_bound_is_refused_at_start(timeout):
    """Every provider call waits at most ``timeout``; a value that bounds nothing is a config error, not a hang."""
    with pytest.raises(ProviderConfigError) as caught:
        create_provider({"name": "k", "type": "kavenegar", "api_key": "k", "sender": "1", "timeout": timeout})
    assert caught.value.key == "timeout" and "e.g. timeout: 10" in caught.value.message
    for good in (0.5, 30, "15"):  # a number, or its text from ${ENV}
        provider = create_provider({"name": "k", "type": "kavenegar", "api_key": "k", "sender": "1", "timeout": good})
        assert provider.timeout == float(good)


def test_create_file_and_memory_providers(tmp_path):
    file_provider = create_provider({"name": "out", "type": "file", "path": str(tmp_path / "o.jsonl")})
    memory = create_provider({"name": "mem", "type": "memory"})
    assert isinstance(file_provider, FileProvider) and file_provider.name == "out"
    assert isinstance(memory, MemoryProvider) and memory.channels == {"sms", "email"}


@pytest.mark.parametrize("settings, key, words", [
    ({"name": "f", "type": "file"}, "path", "is required"),
    ({"name": "k", "type": "kavenegar", "sender": "1000"}, "api_key", "is required"),
    ({"type": "file", "path": "x"}, "name", "needs a name"),
    ({"name": "f", "type": "file", "path": "x", "colour": "red"}, "colour", "is not a setting"),
])
def test_provider_setting_errors_name_the_key(settings, key, words):
    with pytest.raises(ProviderConfigError) as caught:
        create_provider(settings)
    assert caught.value.key == key
    assert words in caught.value.message
    assert str(caught.value).startswith(f"{key}: ")


def test_provider_repr_masks_secrets():
    provider = create_provider({"name": "k", "type": "kavenegar", "sender": "1000", "api_key": "ABCDEF-secret-123456"})
    shown = repr(provider)
    assert "ABCDEF-secret-123456" not in shown and "secret" not in shown
    assert "AB********56" in shown and "'1000'" in shown
