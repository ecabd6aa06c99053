"""Service settings: one typed object, read once from the environment and validated at start-up.

Every variable is optional; the defaults run on a laptop with no database or cache server
(SQLite under var/, conversation state in process).

| variable | meaning |
| --- | --- |
| ESCALATION_BUNDLE | bundle folder; default: the newest under models/ |
| ESCALATION_POLICY | rule policy YAML; default: the packaged policy |
| ESCALATION_ROSTER | roster YAML; default: the packaged example roster |
| DATABASE_URL | prediction log URL (SQLAlchemy); default: var/escalation.db of the project |
| REDIS_URL | share conversation state between workers through Redis |
| ESCALATION_API_KEY_HASHES | comma-separated sha256 hex digests of the accepted API keys |
| ESCALATION_AUTH_DISABLED | `true` serves /v1 without API keys, for a local trial only |
| ESCALATION_WEBHOOK_URLS | comma-separated URLs that receive escalation events |
| ESCALATION_WEBHOOK_SECRET | shared secret that signs webhook events |
| ESCALATION_WEBHOOK_MAX_ATTEMPTS | delivery attempts before an event is dead-lettered, default 10 |
| ESCALATION_WEBHOOK_BASE_DELAY_SECONDS | first retry delay, doubled per attempt, default 5 |
| ESCALATION_STATE_MAX_CONVERSATIONS | in-process state capacity (LRU), default 10000 |
| ESCALATION_STATE_TTL_SECONDS | idle seconds before a conversation's state expires, default 86400 |
| ESCALATION_MAX_BODY_BYTES | largest accepted request body, default 262144 |
| ESCALATION_MAX_TURNS | most turns per conversation, default 1000 |
| ESCALATION_STORE_TEXT | keep message text in the prediction log (default true), so a worker that
  lost its in-process state can re-score a conversation; set false where the platform must not
  store chat text |
| ESCALATION_SESSION_SECRET | key of at least 32 characters that signs dashboard session cookies;
  unset, each process draws a random one, so sessions end at restart and are not shared |
| ESCALATION_SESSION_TTL_SECONDS | lifetime of a dashboard session cookie, default 28800 (8 hours) |
| ESCALATION_SESSION_COOKIE_SECURE | `true` marks the session cookie Secure (sent over HTTPS only);
  set it when TLS ends at a proxy in front of the service |
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from serving.errors import SettingsError
from serving.notify import MIN_SECRET_CHARS as MIN_WEBHOOK_SECRET_CHARS
from serving.schema import MAX_TURNS
from serving.store.database import DEFAULT_DATABASE_URL

PROJECT_ROOT = Path(__file__).resolve().parent.parent

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

# Environment variable of each field; a field not listed here has no variable.
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "bundle": "ESCALATION_BUNDLE",
    "policy": "ESCALATION_POLICY",
    "roster": "ESCALATION_ROSTER",
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
    "api_key_hashes": "ESCALATION_API_KEY_HASHES",
    "webhook_urls": "ESCALATION_WEBHOOK_URLS",
    "webhook_secret": "ESCALATION_WEBHOOK_SECRET",
    "webhook_max_attempts": "ESCALATION_WEBHOOK_MAX_ATTEMPTS",
    "webhook_base_delay_seconds": "ESCALATION_WEBHOOK_BASE_DELAY_SECONDS",
    "state_max_conversations": "ESCALATION_STATE_MAX_CONVERSATIONS",
    "state_ttl_seconds": "ESCALATION_STATE_TTL_SECONDS",
    "max_body_bytes": "ESCALATION_MAX_BODY_BYTES",
    "max_turns": "ESCALATION_MAX_TURNS",
    "store_text": "ESCALATION_STORE_TEXT",
    "auth_disabled": "ESCALATION_AUTH_DISABLED",
    "session_secret": "ESCALATION_SESSION_SECRET",
    "session_ttl_seconds": "ESCALATION_SESSION_TTL_SECONDS",
    "session_cookie_secure": "ESCALATION_SESSION_COOKIE_SECURE",
}
SECRET_FIELDS = {"webhook_secret", "api_key_hashes", "session_secret"}
MIN_SESSION_SECRET_CHARS = 32
LIST_FIELDS = {"api_key_hashes", "webhook_urls"}


class Settings(BaseModel):
    """Configuration of the scoring service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bundle: Path | None = None
    policy: Path | None = None
    roster: Path | None = None
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    api_key_hashes: tuple[str, ...] = ()
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: SecretStr | None = None
    webhook_max_attempts: int = Field(default=10, ge=1, le=100)
    webhook_base_delay_seconds: float = Field(default=5.0, gt=0, le=3_600)
    state_max_conversations: int = Field(default=10_000, ge=1)
    state_ttl_seconds: float = Field(default=86_400.0, gt=0)
    max_body_bytes: int = Field(default=262_144, ge=1_024)
    max_turns: int = Field(default=MAX_TURNS, ge=1, le=MAX_TURNS)
    store_text: bool = True
    auth_disabled: bool = False
    session_secret: SecretStr | None = None
    session_ttl_seconds: int = Field(default=28_800, ge=60, le=7 * 86_400)
    session_cookie_secure: bool = False

    @model_validator(mode="after")
    def _check_auth(self) -> Settings:
        if not self.api_key_hashes and not self.auth_disabled:
            raise ValueError(
                "no API key is configured; set ESCALATION_API_KEY_HASHES to the sha256 of each "
                "accepted key (`escalation apikey` prints a new key and its hash), or set "
                "ESCALATION_AUTH_DISABLED=true for a local trial"
            )
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
        if self.webhook_urls and len(secret) < MIN_WEBHOOK_SECRET_CHARS:
            raise ValueError(
                f"ESCALATION_WEBHOOK_URLS is set, so ESCALATION_WEBHOOK_SECRET must hold a "
                f"shared secret of at least {MIN_WEBHOOK_SECRET_CHARS} characters (it has "
                f"{len(secret)}); generate one with "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        return self

    @field_validator("api_key_hashes")
    @classmethod
    def _check_hashes(cls, hashes: tuple[str, ...]) -> tuple[str, ...]:
        for value in hashes:
            if not _SHA256_HEX.fullmatch(value):
                raise ValueError(
                    f"an entry of {len(value)} characters is not a lowercase sha256 hex digest; "
                    "store hashes, not keys: `escalation apikey` prints a new key and its hash"
                )
        return hashes

    @field_validator("session_secret")
    @classmethod
    def _check_session_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < MIN_SESSION_SECRET_CHARS:
            raise ValueError(
                f"the session secret has {len(secret.get_secret_value())} characters; it needs "
                f"at least {MIN_SESSION_SECRET_CHARS}; generate one with "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        return secret

    @field_validator("webhook_urls")
    @classmethod
    def _check_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook URL {url!r} must start with http:// or https://")
        return urls

    @field_validator("bundle", "policy", "roster")
    @classmethod
    def _check_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.exists():
            raise ValueError(f"{path} does not exist")
        return path


def load_settings(
    environment: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Read the settings from `environment` (default: os.environ), then apply `overrides`.

    Raises SettingsError naming the variable, its value and what is allowed.
    """
    environment = os.environ if environment is None else environment
    values: dict[str, Any] = {}
    for field, variable in ENVIRONMENT_VARIABLES.items():
        raw = environment.get(variable)
        if raw is None or raw.strip() == "":
            continue
        if field in LIST_FIELDS:
            values[field] = tuple(item.strip() for item in raw.split(",") if item.strip())
        else:
            values[field] = raw.strip()
    values.update({key: value for key, value in overrides.items() if value is not None})

    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        problems = []
        for detail in error.errors(include_url=False):
            if not detail["loc"]:
                problems.append(str(detail["msg"]).removeprefix("Value error, "))
                continue
            field = str(detail["loc"][0])
            variable = ENVIRONMENT_VARIABLES.get(field, field)
            value_text = "(hidden)" if field in SECRET_FIELDS else repr(values.get(field))
            problems.append(f"{variable}={value_text}: {detail['msg']}")
        raise SettingsError("invalid service settings: " + "; ".join(problems)) from None
