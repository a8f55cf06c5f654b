"""The auth service's settings, from `AUTH_*` environment variables (and `ACCORD_ENV`).

Local mode (`ACCORD_ENV` unset or `local`) runs with no configuration at all: SQLite under
`.accord/`, a signing key generated once and kept in `.accord/`, a placeholder service key.
Anywhere else a placeholder service key or a missing signing key is refused at start-up, and
every error names the environment variable to fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.kit.database import async_url
from services.kit.settings import SettingsError as SettingsError
from services.kit.settings import load
from services.kit.tokens import SigningKey

ENV_PREFIX = "AUTH_"
LOCAL_ENVIRONMENTS = frozenset({"", "local"})
PLACEHOLDER_SECRETS = frozenset(
    {"changethis", "change-me", "changeme", "secret", "password", "placeholder", "dev", "test"}
)
MIN_SERVICE_KEY_LENGTH = 16

Seconds = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=1)]


class Settings(BaseSettings):
    """Everything the auth service reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, populate_by_name=True
    )

    # Shared by every Accord service, hence no prefix.
    environment: str = Field(default="local", validation_alias="ACCORD_ENV")

    # uvicorn's line per request (`accord serve auth`).
    access_log: bool = True

    database_url: str = "sqlite:///.accord/auth.db"
    migrate_on_start: bool = True

    # Tokens. `signing_key` is an unencrypted PKCS#8 PEM Ed25519 private key; without one,
    # local mode generates a key once and keeps it at `signing_key_path`.
    signing_key: SecretStr | None = None
    signing_key_path: Path = Path(".accord/auth-signing-key.pem")
    issuer: str = "http://127.0.0.1:3001"
    audience: str = "accord"
    access_token_ttl_seconds: Seconds = 900
    refresh_token_ttl_seconds: Seconds = 30 * 24 * 3600
    verification_token_ttl_seconds: Seconds = 24 * 3600
    reset_token_ttl_seconds: Seconds = 3600

    # The credential other Accord services present in `X-API-Key` (`getUserRoles`).
    service_api_key: SecretStr = SecretStr("changethis")

    # Argon2id parameters (argon2-cffi's RFC 9106 low-memory profile by default), how many
    # hashes may run at once (default: the number of CPUs), and the `nice` value of the
    # hashing threads (0 keeps them at the priority of request handling).
    argon2_time_cost: Count = 3
    argon2_memory_cost_kib: Annotated[int, Field(ge=8)] = 65536
    argon2_parallelism: Count = 4
    password_hash_concurrency: Count | None = None
    password_hash_nice: Annotated[int, Field(ge=0, le=19)] = 10

    # Rate limits: at most N in a sliding window of W seconds.
    login_failures_per_account: Count = 5
    login_failures_per_address: Count = 30
    login_failure_window_seconds: Seconds = 900
    registrations_per_address: Count = 20
    registration_window_seconds: Seconds = 3600
    reset_requests_per_email: Count = 3
    reset_requests_per_address: Count = 20
    reset_request_window_seconds: Seconds = 3600
    verification_requests_per_account: Count = 5
    verification_request_window_seconds: Seconds = 3600

    # Events: the SNS topic (the AsyncAPI channel `userEvents`) and the outbox relay.
    event_topic: str = "accord-user-events"
    outbox_poll_seconds: Annotated[float, Field(gt=0)] = 5.0
    outbox_backoff_base_seconds: Annotated[float, Field(gt=0)] = 1.0
    outbox_backoff_cap_seconds: Annotated[float, Field(gt=0)] = 300.0

    @property
    def local(self) -> bool:
        return self.environment.strip().lower() in LOCAL_ENVIRONMENTS

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        try:
            async_url(value)
        except Exception as error:
            raise ValueError(f"not a usable database URL: {error}") from None
        return value

    @field_validator("signing_key")
    @classmethod
    def _loadable_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            SigningKey.from_pem(value.get_secret_value())  # its ValueError never quotes the key
        return value

    @model_validator(mode="after")
    def _production_ready(self) -> Self:
        if self.local:
            return self
        key = self.service_api_key.get_secret_value()
        where = f"ACCORD_ENV={self.environment}"
        if not key.strip():
            raise ValueError(f"{ENV_PREFIX}SERVICE_API_KEY must be set ({where})")
        if key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < MIN_SERVICE_KEY_LENGTH:
            raise ValueError(
                f"{ENV_PREFIX}SERVICE_API_KEY is a placeholder or shorter than "
                f"{MIN_SERVICE_KEY_LENGTH} characters; set a random secret ({where})"
            )
        if self.signing_key is None:
            raise ValueError(
                f"{ENV_PREFIX}SIGNING_KEY must be set to a PEM Ed25519 private key; keys are "
                f"generated only in local mode ({where})"
            )
        return self


def load_settings() -> Settings:
    """Settings from the environment; `SettingsError` naming every variable that is wrong."""
    return load(Settings, "auth", ENV_PREFIX)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
