"""The user service's settings, from `USER_*` environment variables (and `ACCORD_ENV`).

Local mode (`ACCORD_ENV` unset or `local`) runs with no configuration at all: SQLite under
`.accord/`, the auth service on 127.0.0.1:3001 with its default issuer and audience, a
placeholder service key. Anywhere else a placeholder service key is refused at start-up, and
every error names the environment variable to fix.
"""

from __future__ import annotations

from typing import Annotated, Self

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.kit.database import async_url
from services.kit.settings import SettingsError as SettingsError
from services.kit.settings import load

ENV_PREFIX = "USER_"
LOCAL_ENVIRONMENTS = frozenset({"", "local"})
PLACEHOLDER_SECRETS = frozenset(
    {"changethis", "change-me", "changeme", "secret", "password", "placeholder", "dev", "test"}
)
MIN_SERVICE_KEY_LENGTH = 16
JWKS_PATH = "/.well-known/jwks.json"

Seconds = Annotated[float, Field(gt=0)]
WholeSeconds = Annotated[int, Field(ge=0)]


def _http_url(value: str) -> str:
    try:
        url = httpx.URL(value)
    except Exception:
        raise ValueError(f"not a URL: {value!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value


class Settings(BaseSettings):
    """Everything the user service reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, populate_by_name=True
    )

    # Shared by every Accord service, hence no prefix.
    environment: str = Field(default="local", validation_alias="ACCORD_ENV")

    database_url: str = "sqlite:///.accord/user.db"
    migrate_on_start: bool = True

    # The auth service: roles (`getUserRoles`, with the service credential) and its keys.
    auth_service_url: str = "http://127.0.0.1:3001"
    auth_service_api_key: SecretStr = SecretStr("changethis")
    auth_service_timeout_seconds: Seconds = 1.0
    # Attempts after the first, for a timeout, a connection error or a 5xx.
    auth_service_retries: Annotated[int, Field(ge=0, le=5)] = 2
    # How long a roles answer is trusted: a revoked admin is refused at most this much later.
    roles_cache_seconds: Annotated[float, Field(ge=0)] = 10.0

    # Access tokens: where the public keys are (default: the auth service's JWKS), and the
    # issuer and audience they must name (the auth service's defaults).
    jwks_url: str | None = None
    jwks_refetch_seconds: Seconds = 30.0
    issuer: str = "http://127.0.0.1:3001"
    audience: str = "accord"

    # Events: the queue of the AsyncAPI operation `receiveUserEvents`.
    queue: str = "accord-user-service"
    # Events received and in hand at once (SQS hands out at most 10 per receive). On SQLite
    # their transactions still run one at a time, as SQLite's writers do anyway.
    consumer_max_in_flight: Annotated[int, Field(ge=1, le=100)] = 10
    # The long-poll wait of one receive (SQS allows 0 to 20 s); a stop waits for it to end.
    consumer_wait_seconds: Annotated[float, Field(ge=0, le=20)] = 20.0

    # `Retry-After` of a pending profile (404) and of an unreachable auth service (503).
    pending_retry_after_seconds: WholeSeconds = 1
    unavailable_retry_after_seconds: WholeSeconds = 5

    @property
    def local(self) -> bool:
        return self.environment.strip().lower() in LOCAL_ENVIRONMENTS

    @property
    def jwks_endpoint(self) -> str:
        return self.jwks_url or self.auth_service_url.rstrip("/") + JWKS_PATH

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        try:
            async_url(value)
        except Exception as error:
            raise ValueError(f"not a usable database URL: {error}") from None
        return value

    @field_validator("auth_service_url", "jwks_url")
    @classmethod
    def _usable_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("issuer", "audience", "queue")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _production_ready(self) -> Self:
        if self.local:
            return self
        key = self.auth_service_api_key.get_secret_value()
        where = f"ACCORD_ENV={self.environment}"
        if not key.strip():
            raise ValueError(f"{ENV_PREFIX}AUTH_SERVICE_API_KEY must be set ({where})")
        if key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < MIN_SERVICE_KEY_LENGTH:
            raise ValueError(
                f"{ENV_PREFIX}AUTH_SERVICE_API_KEY is a placeholder or shorter than "
                f"{MIN_SERVICE_KEY_LENGTH} characters; set the auth service's "
                f"AUTH_SERVICE_API_KEY ({where})"
            )
        return self


def load_settings() -> Settings:
    """Settings from the environment; `SettingsError` naming every variable that is wrong."""
    return load(Settings, "user", ENV_PREFIX)
