"""The auth service's settings, from `AUTH_*` environment variables (and `ACCORD_ENV`).

Local mode (`ACCORD_ENV` unset or `local`) runs with no configuration at all: SQLite under
`.accord/`, a signing key generated once and kept in `.accord/`, a placeholder service key
(with a warning at start-up when `ACCORD_ENV` is unset). Anywhere else a weak service key
(`services.kit.settings.secret_weakness`) or a missing signing key is refused at start-up, and
every error names the environment variable to fix.
"""

from __future__ import annotations

import os
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.kit.settings import ServiceSettings, is_placeholder, require_strong_secret
from services.kit.settings import SettingsError as SettingsError
from services.kit.tokens import SigningKey

ENV_PREFIX = "AUTH_"

Seconds = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=1)]
Days = Annotated[int, Field(ge=1)]


class Settings(ServiceSettings):
    """Everything the auth service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    # uvicorn's line per request (`accord serve auth`).
    access_log: bool = True

    database_url: str = "sqlite:///.accord/auth.db"

    # Tokens. `signing_key` is an unencrypted PKCS#8 PEM Ed25519 private key that signs for
    # ever. Without one, the keys are a key ring in `signing_key_dir` (default: `auth-keys`
    # next to `signing_key_path`, so `.accord/auth-keys`) that `accord keys rotate` adds to
    # (`services/auth/keyring.py`). Local mode creates the ring, importing the single key that
    # earlier versions kept at `signing_key_path`, or generating one; elsewhere the ring must
    # hold a key already. A rotated key is published `signing_key_publish_ahead_seconds` before
    # it signs: keep that above the verifiers' JWKS refetch interval (USER_JWKS_REFETCH_SECONDS,
    # 30 s) plus a second, and above the max-age of any HTTP cache in front of the JWKS.
    signing_key: SecretStr | None = None
    signing_key_path: Path = Path(".accord/auth-signing-key.pem")
    signing_key_dir: Path | None = None
    signing_key_publish_ahead_seconds: Annotated[int, Field(ge=0)] = 60
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

    # Rate limits: at most N in a sliding window of W seconds, kept in the service's database
    # so that they hold across replicas. A login attempt counts before its password is hashed
    # and is refunded when it succeeds. Failures count per (account, address), so that a
    # stranger's guesses cannot lock the owner out from elsewhere, and per address.
    login_failures_per_account_address: Count = 5
    login_failures_per_address: Count = 30
    # Failures against one account from every address together: high, so that only a
    # distributed attack reaches it, and there to bound guessing from many addresses (an IPv6
    # /64 counts as one address, but an attacker may hold many).
    login_failures_per_account: Count = 100
    # Password hashes one account, or one address, may have running at once in one process;
    # past that a login is answered 429 at once, without hashing.
    login_hashes_in_flight_per_account: Count = 2
    login_hashes_in_flight_per_address: Count = 4
    login_failure_window_seconds: Seconds = 900
    registrations_per_address: Count = 20
    registration_window_seconds: Seconds = 3600
    reset_requests_per_email: Count = 3
    reset_requests_per_address: Count = 20
    reset_request_window_seconds: Seconds = 3600
    verification_requests_per_account: Count = 5
    verification_request_window_seconds: Seconds = 3600

    # The client address that rate limits count against is the connection's peer. Only when
    # the peer is one of these proxies (comma-separated addresses or CIDR networks; none by
    # default) is `X-Forwarded-For` believed, from the right, up to the first address that is
    # not a trusted proxy.
    trusted_proxies: str = ""

    # Events: the SNS topic (the AsyncAPI channel `userEvents`) and the outbox relay.
    event_topic: str = "accord-user-events"
    outbox_poll_seconds: Annotated[float, Field(gt=0)] = 5.0
    outbox_backoff_base_seconds: Annotated[float, Field(gt=0)] = 1.0
    outbox_backoff_cap_seconds: Annotated[float, Field(gt=0)] = 300.0
    # How long a relay's claim on a batch of rows lasts: a relay that dies between publishing
    # and marking leaves its rows to another relay this long after claiming them (they are
    # then published a second time; the consumers are idempotent). Keep it well above the
    # time a batch takes to publish.
    outbox_lease_seconds: Annotated[float, Field(gt=0)] = 60.0
    # The relay publishes with SNS PublishBatch: this many rows to a call (SNS takes ten at
    # most), with up to `outbox_publish_concurrency` calls in flight. At 10-30 ms a call on
    # AWS, one call at a time caps a relay at a few hundred events a second; each call in
    # flight holds a database connection for its claim and its marking.
    outbox_publish_batch_size: Annotated[int, Field(ge=1, le=10)] = 10
    outbox_publish_concurrency: Annotated[int, Field(ge=1, le=32)] = 4

    # Retention (`services/auth/retention.py`, `accord prune`): published outbox rows, and
    # single-use and refresh tokens that were used, revoked or expired, are deleted this many
    # days later, by a pass every `prune_interval_seconds`.
    outbox_retention_days: Days = 7
    token_retention_days: Days = 7
    prune_interval_seconds: Annotated[float, Field(gt=0)] = 3600.0

    # Request bodies over this many bytes are refused with 413 before they are read.
    max_request_body_bytes: Annotated[int, Field(ge=1)] = 64 * 1024

    @property
    def key_ring_directory(self) -> Path:
        return self.signing_key_dir or self.signing_key_path.parent / "auth-keys"

    @property
    def local_defaults(self) -> list[str]:
        """The local-mode defaults in use, for the start-up warning when `ACCORD_ENV` is unset."""
        defaults = []
        if is_placeholder(self.service_api_key):
            defaults.append(f"a placeholder service key ({ENV_PREFIX}SERVICE_API_KEY)")
        if self.signing_key is None:
            defaults.append(
                f"a signing key generated into {self.key_ring_directory} ({ENV_PREFIX}SIGNING_KEY)"
            )
        return defaults

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return parse_networks(self.trusted_proxies)

    @field_validator("signing_key")
    @classmethod
    def _loadable_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            SigningKey.from_pem(value.get_secret_value())  # its ValueError never quotes the key
        return value

    def check_production(self, where: str) -> None:
        require_strong_secret(
            f"{ENV_PREFIX}SERVICE_API_KEY", self.service_api_key.get_secret_value(), where
        )
        if self.signing_key is None and self.signing_key_dir is None:
            raise ValueError(
                f"{ENV_PREFIX}SIGNING_KEY must be set to a PEM Ed25519 private key, or "
                f"{ENV_PREFIX}SIGNING_KEY_DIR to a key ring made with `accord keys rotate`; "
                f"keys are generated only in local mode ({where})"
            )

    @model_validator(mode="after")
    def _one_source_of_keys(self) -> Self:
        if self.signing_key is not None and self.signing_key_dir is not None:
            raise ValueError(
                f"set {ENV_PREFIX}SIGNING_KEY (one key) or {ENV_PREFIX}SIGNING_KEY_DIR (a key "
                "ring), not both"
            )
        return self


def parse_networks(value: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """Comma-separated addresses or CIDR networks; a `ValueError` naming the bad entry."""
    networks = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def load_settings() -> Settings:
    """Settings from the environment; `SettingsError` naming every variable that is wrong."""
    return Settings.from_environment()


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
