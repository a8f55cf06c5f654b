"""The user service's settings, from `USER_*` environment variables (and `ACCORD_ENV`).

Local mode (`ACCORD_ENV` unset or `local`) runs with no configuration at all: SQLite under
`.accord/`, the auth service on 127.0.0.1:3001 with its default issuer and audience, a
placeholder service key (with a warning at start-up when `ACCORD_ENV` is unset). Anywhere else
a weak service key (`services.kit.settings.secret_weakness`) and an `http://` auth service or
JWKS URL are refused at start-up, and every error names the environment variable to fix.
"""

from __future__ import annotations

from typing import Annotated

import httpx
from pydantic import AfterValidator, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from generated.user.events import QUEUE
from services.kit.retention import (
    DEFAULT_PROCESSED_EVENT_RETENTION_DAYS,
    check_processed_event_retention,
)
from services.kit.settings import (
    ServiceSettings,
    is_placeholder,
    not_blank,
    require_https,
    require_strong_secret,
)
from services.kit.settings import SettingsError as SettingsError

ENV_PREFIX = "USER_"
JWKS_PATH = "/.well-known/jwks.json"

Seconds = Annotated[float, Field(gt=0)]
WholeSeconds = Annotated[int, Field(ge=0)]
NotBlank = Annotated[str, AfterValidator(not_blank)]


class Settings(ServiceSettings):
    """Everything the user service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    database_url: str = "sqlite:///.accord/user.db"

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
    issuer: NotBlank = "http://127.0.0.1:3001"
    audience: NotBlank = "accord"
    # The longest lifetime (`exp - iat`) a token may claim: at least the auth service's
    # AUTH_ACCESS_TOKEN_TTL_SECONDS (900 by default), or its own tokens are refused.
    access_token_max_lifetime_seconds: Annotated[int, Field(ge=1)] = 900

    # Events: the queue of the AsyncAPI operation `receiveUserEvents`.
    queue: NotBlank = QUEUE
    # Events received and in hand at once (SQS hands out at most 10 per receive). On SQLite
    # their transactions still run one at a time, as SQLite's writers do anyway.
    consumer_max_in_flight: Annotated[int, Field(ge=1, le=100)] = 10
    # The long-poll wait of one receive (SQS allows 0 to 20 s); a stop waits for it to end.
    consumer_wait_seconds: Annotated[float, Field(ge=0, le=20)] = 20.0
    # Receive calls under way at once, each taking up to 10 messages: at 20 ms a call (AWS),
    # one at a time caps a consumer near 500 messages a second. More than one needs
    # CONSUMER_MAX_IN_FLIGHT of at least 10 per receive, or the room is never there.
    consumer_receives: Annotated[int, Field(ge=1, le=10)] = 1

    # Retention (`accord prune`): processed-event records are deleted this many days after
    # the event was applied, by a pass every `prune_interval_seconds`. The record is what makes
    # a redelivered duplicate a no-op, and SQS may redeliver for up to 14 days (its maximum
    # message retention; a dead letter can be redriven as long), so at least 15 are required.
    processed_event_retention_days: int = DEFAULT_PROCESSED_EVENT_RETENTION_DAYS
    prune_interval_seconds: Seconds = 3600.0

    # `Retry-After` of a pending profile (404) and of an unreachable auth service (503).
    pending_retry_after_seconds: WholeSeconds = 1
    unavailable_retry_after_seconds: WholeSeconds = 5

    # Request bodies over this many bytes are refused with 413 before they are read.
    max_request_body_bytes: Annotated[int, Field(ge=1)] = 64 * 1024

    @property
    def local_defaults(self) -> list[str]:
        """The local-mode defaults in use, for the start-up warning when `ACCORD_ENV` is unset."""
        defaults = []
        if is_placeholder(self.auth_service_api_key):
            defaults.append(f"a placeholder service key ({ENV_PREFIX}AUTH_SERVICE_API_KEY)")
        if not self.auth_service_url.startswith("https://"):
            defaults.append(
                f"the auth service over plain HTTP at {self.auth_service_url} "
                f"({ENV_PREFIX}AUTH_SERVICE_URL)"
            )
        return defaults

    @property
    def jwks_endpoint(self) -> str:
        return self.jwks_url or self.auth_service_url.rstrip("/") + JWKS_PATH

    @field_validator("processed_event_retention_days")
    @classmethod
    def _outlasts_redelivery(cls, value: int) -> int:
        return check_processed_event_retention(value)

    @field_validator("auth_service_url", "jwks_url")
    @classmethod
    def _usable_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    def check_production(self, where: str) -> None:
        require_strong_secret(
            f"{ENV_PREFIX}AUTH_SERVICE_API_KEY (the auth service's AUTH_SERVICE_API_KEY)",
            self.auth_service_api_key.get_secret_value(),
            where,
        )
        require_https(f"{ENV_PREFIX}AUTH_SERVICE_URL", self.auth_service_url, where)
        if self.jwks_url is not None:
            require_https(f"{ENV_PREFIX}JWKS_URL", self.jwks_url, where)


def _http_url(value: str) -> str:
    try:
        url = httpx.URL(value)
    except Exception:
        raise ValueError(f"not a URL: {value!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value


def load_settings() -> Settings:
    """Settings from the environment; `SettingsError` naming every variable that is wrong."""
    return Settings.from_environment()
