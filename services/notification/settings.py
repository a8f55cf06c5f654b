"""The notification service's settings, from `NOTIFICATION_*` environment variables (and
`ACCORD_ENV`).

Local mode (`ACCORD_ENV` unset or `local`) runs with no configuration at all: SQLite under
`.accord/`, an SMTP server on 127.0.0.1:1025 without TLS (the sink `accord up` starts), links to
the auth service on 127.0.0.1:3001, and the `admin` role taken from the access token when no
service credential for the auth service is configured (with a warning at start-up when
`ACCORD_ENV` is unset). Anywhere else that credential is required and must be strong
(`services.kit.settings.secret_weakness`), the JWKS and auth service URLs must be `https://`,
and SMTP credentials are never sent without TLS. Every error names the environment variable
to fix.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from generated.notification import events
from services.kit.retention import (
    DEFAULT_PROCESSED_EVENT_RETENTION_DAYS,
    check_processed_event_retention,
)
from services.kit.settings import ServiceSettings, not_blank, require_https, require_strong_secret
from services.kit.settings import SettingsError as SettingsError

ENV_PREFIX = "NOTIFICATION_"

Seconds = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=1)]
Port = Annotated[int, Field(ge=1, le=65535)]
# Not blank, and stripped of surrounding white space.
Stripped = Annotated[str, AfterValidator(lambda value: not_blank(value).strip())]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
    return value


class Settings(ServiceSettings):
    """Everything the notification service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    database_url: str = "sqlite:///.accord/notification.db"

    # The SMTP server the emails are handed to.
    smtp_host: Stripped = "127.0.0.1"
    smtp_port: Port = 1025
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    # Bounds each SMTP command (a whole send: twice this). A claim on an email lasts three
    # times this, which must stay below the queue's visibility timeout (60 s in the AsyncAPI
    # bindings) so that a message is never handed to a second worker while the first sends it.
    smtp_timeout_seconds: Annotated[float, Field(gt=0, le=15)] = 10.0
    smtp_validate_certs: bool = True
    from_address: str = "Accord <no-reply@accord.localhost>"

    # The links in the emails: `{base}/verify-email?token=…`, `{base}/reset-password?token=…`.
    link_base_url: str = "http://127.0.0.1:3001"

    # Access tokens: verified locally with the auth service's published keys.
    jwks_url: str = "http://127.0.0.1:3001/.well-known/jwks.json"
    issuer: str = "http://127.0.0.1:3001"
    audience: Stripped = "accord"
    jwks_timeout_seconds: Seconds = 2.0
    # The longest lifetime (`exp - iat`) a token may claim: at least the auth service's
    # AUTH_ACCESS_TOKEN_TTL_SECONDS (900 by default), or its own tokens are refused.
    access_token_max_lifetime_seconds: Annotated[int, Field(ge=1)] = 900

    # The `admin` role is confirmed with the auth service (`getUserRoles`).
    auth_service_url: str = "http://127.0.0.1:3001"
    auth_service_api_key: SecretStr | None = None
    auth_service_timeout_seconds: Seconds = 2.0
    role_cache_seconds: Annotated[float, Field(ge=0)] = 30.0

    # Events: the SQS queue (by default the one the AsyncAPI document's receive operation names)
    # and the consumer's tuning.
    consume: bool = True
    queue: Stripped = events.QUEUE
    consumer_max_in_flight: Count = 10
    consumer_wait_seconds: Annotated[float, Field(ge=0, le=20)] = 20.0
    # Receive calls under way at once, each taking up to 10 messages: at 20 ms a call (AWS),
    # one at a time caps a consumer near 500 messages a second. More than one needs
    # CONSUMER_MAX_IN_FLIGHT of at least 10 per receive, or the room is never there.
    consumer_receives: Annotated[int, Field(ge=1, le=10)] = 1
    retry_backoff_base_seconds: Annotated[float, Field(ge=0)] = 1.0
    retry_backoff_cap_seconds: Seconds = 300.0

    # Retention (`accord prune`): processed-event records are deleted this many days after
    # the event was handled, by a pass every `prune_interval_seconds`. The record is what makes
    # a redelivered duplicate a no-op, and SQS may redeliver for up to 14 days (its maximum
    # message retention; a dead letter can be redriven as long), so at least 15 are required.
    processed_event_retention_days: int = DEFAULT_PROCESSED_EVENT_RETENTION_DAYS
    prune_interval_seconds: Seconds = 3600.0

    # Request bodies over this many bytes are refused with 413 before they are read.
    max_request_body_bytes: Annotated[int, Field(ge=1)] = 64 * 1024

    @property
    def local_defaults(self) -> list[str]:
        """The local-mode defaults in use, for the start-up warning when `ACCORD_ENV` is unset."""
        defaults = []
        if self.auth_service_api_key is None:
            defaults.append(
                f"no service key for the auth service, so the admin role is taken from the "
                f"access token ({ENV_PREFIX}AUTH_SERVICE_API_KEY)"
            )
        if not self.jwks_url.startswith("https://"):
            defaults.append(
                f"keys fetched over plain HTTP from {self.jwks_url} ({ENV_PREFIX}JWKS_URL)"
            )
        if self.smtp_tls == "none":
            defaults.append(f"SMTP without TLS ({ENV_PREFIX}SMTP_TLS)")
        return defaults

    @field_validator("processed_event_retention_days")
    @classmethod
    def _outlasts_redelivery(cls, value: int) -> int:
        return check_processed_event_retention(value)

    @field_validator("link_base_url")
    @classmethod
    def _link_base(cls, value: str) -> str:
        _http_url(value)
        parts = urlsplit(value)
        if parts.query or parts.fragment:
            raise ValueError(f"must not have a query or a fragment, not {value!r}")
        return value.rstrip("/")

    @field_validator("jwks_url", "issuer", "auth_service_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("from_address")
    @classmethod
    def _mailbox(cls, value: str) -> str:
        _, address = parseaddr(value)
        local, _, domain = address.rpartition("@")
        if not local or not domain or "\n" in value or "\r" in value:
            raise ValueError(
                f"must be an email address such as 'Accord <no-reply@example.com>', not {value!r}"
            )
        return value

    def check(self) -> None:
        password = self.smtp_password is not None and self.smtp_password.get_secret_value()
        if password and not self.smtp_username:
            raise ValueError(f"{ENV_PREFIX}SMTP_PASSWORD is set without {ENV_PREFIX}SMTP_USERNAME")
        if self.smtp_username and not password:
            raise ValueError(f"{ENV_PREFIX}SMTP_USERNAME is set without {ENV_PREFIX}SMTP_PASSWORD")
        if self.retry_backoff_cap_seconds < self.retry_backoff_base_seconds:
            raise ValueError(
                f"{ENV_PREFIX}RETRY_BACKOFF_CAP_SECONDS must not be smaller than "
                f"{ENV_PREFIX}RETRY_BACKOFF_BASE_SECONDS"
            )

    def check_production(self, where: str) -> None:
        if self.smtp_username and self.smtp_tls == "none":
            raise ValueError(
                f"{ENV_PREFIX}SMTP_TLS=none would send the SMTP password in clear; set it to "
                f"starttls or tls ({where})"
            )
        key = self.auth_service_api_key
        if key is None or not key.get_secret_value().strip():
            raise ValueError(
                f"{ENV_PREFIX}AUTH_SERVICE_API_KEY must be set: the admin role is confirmed "
                f"with the auth service ({where})"
            )
        require_strong_secret(f"{ENV_PREFIX}AUTH_SERVICE_API_KEY", key.get_secret_value(), where)
        require_https(f"{ENV_PREFIX}JWKS_URL", self.jwks_url, where)
        require_https(f"{ENV_PREFIX}AUTH_SERVICE_URL", self.auth_service_url, where)


def load_settings() -> Settings:
    """Settings from the environment; `SettingsError` naming every variable that is wrong."""
    return Settings.from_environment()
