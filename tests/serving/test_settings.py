"""Tests of the service settings: defaults, environment parsing and errors naming the key."""

from __future__ import annotations

import pytest

from serving.auth import generate_api_key, hash_api_key, is_valid_key
from serving.errors import SettingsError
from serving.settings import load_settings

_, DIGEST = generate_api_key()


def test_defaults_need_only_a_key() -> None:
    settings = load_settings({"ESCALATION_API_KEY_HASHES": DIGEST})

    assert settings.redis_url is None
    assert settings.database_url.startswith("sqlite:///")
    assert settings.api_key_hashes == (DIGEST,)


def test_lists_split_on_commas() -> None:
    settings = load_settings({
        "ESCALATION_API_KEY_HASHES": f"{DIGEST}, {hash_api_key('other')}",
        "ESCALATION_WEBHOOK_URLS": "http://127.0.0.1:9/a,http://127.0.0.1:9/b",
        "ESCALATION_WEBHOOK_SECRET": "x" * 20,
    })

    assert len(settings.api_key_hashes) == 2
    assert settings.webhook_urls == ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b")


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"ESCALATION_MAX_TURNS": "lots"}, "ESCALATION_MAX_TURNS='lots'"),
        ({"ESCALATION_STATE_TTL_SECONDS": "-1"}, "ESCALATION_STATE_TTL_SECONDS"),
        ({"ESCALATION_WEBHOOK_URLS": "ftp://x"}, "ESCALATION_WEBHOOK_URLS"),
        ({"ESCALATION_WEBHOOK_URLS": "http://127.0.0.1:9/a"}, "ESCALATION_WEBHOOK_SECRET"),
        ({"ESCALATION_BUNDLE": "/no/such/bundle"}, "ESCALATION_BUNDLE"),
    ],
)
def test_invalid_value_names_variable(environment: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({"ESCALATION_API_KEY_HASHES": DIGEST, **environment})


def test_plain_key_instead_of_hash_is_hidden() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({"ESCALATION_API_KEY_HASHES": "esk_my-secret-key"})

    assert "my-secret-key" not in str(error.value)
    assert "sha256" in str(error.value)


def test_auth_can_be_disabled_explicitly() -> None:
    assert load_settings({"ESCALATION_AUTH_DISABLED": "true"}).auth_disabled is True


def test_key_check() -> None:
    key, digest = generate_api_key()

    assert is_valid_key(key, (hash_api_key("x"), digest)) is True
    assert is_valid_key(key + "x", (digest,)) is False
    assert is_valid_key(None, (digest,)) is False
    assert is_valid_key(key, ()) is False
