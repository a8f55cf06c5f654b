"""What the services' settings share: loading them from the environment so that a wrong value
stops the service at start-up with a message naming each environment variable to fix; the
checks every service makes outside local mode (secrets strong enough, `https://` for what it
fetches from other services); and the warning that local defaults are in use.

`BaseServiceSettings` is the base of each service's `Settings`: it holds what every service
reads the same way (`ACCORD_ENV`) and the order of the checks (each setting's own, then
`check`, then `check_production` outside local mode), so that a service's settings say only
what is its own. `ServiceSettings` adds the database (its URL, migrating on start) for the
services that keep one.

A secret is strong enough when it has at least `MIN_SECRET_LENGTH` (16) characters and an
estimated entropy of at least `MIN_SECRET_BITS` (64 bits). The estimate is
`counted * log2(alphabet)`:

- `alphabet` is the size of the character classes the secret uses (26 lower-case letters,
  26 upper-case letters, 10 digits, 33 ASCII symbols and space, 100 for any other character),
  but at most twice the number of distinct characters in it, since a secret drawn from a few
  symbols is not drawn from the whole class;
- `counted` leaves out each character that continues a run of steps of -1, 0 or +1 (`abcd`
  and `4321` count two) and each stretch of three or more characters that repeats an earlier
  part, overlapping or not (`Ab1!Ab1!` counts four, `aaaaaaaa` one).

So `aaaaaaaaaaaaaaaa` is refused (about 1 bit) while `secrets.token_urlsafe(32)` and
`secrets.token_hex(16)` pass with a wide margin. It is an estimate from the text alone: it
cannot tell a random secret from a memorable phrase of the same shape, so generate secrets.
"""

from __future__ import annotations

import logging
import math
import string
from collections.abc import Iterable
from typing import Final, Self, TypeVar

import httpx
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.kit.database import async_url

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

# Shared by every service, hence read without a prefix.
ENVIRONMENT_VARIABLE = "ACCORD_ENV"
# The values of `ACCORD_ENV` that mean local mode (compared stripped and in lower case).
LOCAL_ENVIRONMENTS: Final = frozenset({"", "local"})


MIN_SECRET_LENGTH: Final = 16
MIN_SECRET_BITS: Final = 64
# How to make a secret that passes, for the error messages.
GENERATE_COMMAND: Final = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
PLACEHOLDER_SECRETS: Final = frozenset(
    {"changethis", "change-me", "changeme", "secret", "password", "placeholder", "dev", "test"}
)

_CHARACTER_CLASSES: Final = (
    (frozenset(string.ascii_lowercase), 26),
    (frozenset(string.ascii_uppercase), 26),
    (frozenset(string.digits), 10),
    (frozenset(string.punctuation + " "), 33),
)
_CLASSIFIED: Final = frozenset().union(*(members for members, _ in _CHARACTER_CLASSES))
_OTHER_CHARACTERS: Final = 100
_REPEAT: Final = 3
# Enough for any real secret, and a bound on the (quadratic) work of the estimate.
_ESTIMATED_PREFIX: Final = 256


class SettingsError(ValueError):
    """The settings cannot start the service; the message names each variable to fix."""


def env_name(prefix: str, field: str) -> str:
    """The environment variable behind a settings field."""
    return ENVIRONMENT_VARIABLE if field == "environment" else prefix + field.upper()


def load(settings_class: type[SettingsT], service: str, prefix: str) -> SettingsT:
    """`settings_class` from the environment, or `SettingsError` naming every wrong variable."""
    try:
        return settings_class()
    except ValidationError as error:
        lines = []
        for item in error.errors(include_url=False, include_input=False):
            location = [str(part) for part in item.get("loc", ())]
            message = str(item.get("msg", "")).removeprefix("Value error, ")
            lines.append(f"{env_name(prefix, location[0])}: {message}" if location else message)
        raise SettingsError(
            f"the {service} service cannot start:\n" + "\n".join(f"  {line}" for line in lines)
        ) from None


def estimated_entropy_bits(secret: str) -> float:
    """The entropy of `secret` as this module's docstring estimates it, in bits."""
    secret = secret[:_ESTIMATED_PREFIX]
    if not secret:
        return 0.0
    classes = [size for members, size in _CHARACTER_CLASSES if not members.isdisjoint(secret)]
    if not _CLASSIFIED.issuperset(secret):
        classes.append(_OTHER_CHARACTERS)
    alphabet = min(sum(classes), 2 * len(set(secret)))
    counted, i = 0, 0
    while i < len(secret):
        repeat = _repeat_length(secret, i)
        if repeat:
            i += repeat
            continue
        if not _continues_a_run(secret, i):
            counted += 1
        i += 1
    return counted * math.log2(alphabet)


def _continues_a_run(secret: str, i: int) -> bool:
    """Whether `secret[i]` takes the same step of -1, 0 or +1 as the character before it."""
    if i < 2:
        return False
    step = ord(secret[i]) - ord(secret[i - 1])
    return abs(step) <= 1 and step == ord(secret[i - 1]) - ord(secret[i - 2])


def _repeat_length(secret: str, i: int) -> int:
    """How many characters from `i` on repeat an earlier part of `secret` (0 for fewer than
    `_REPEAT`); the earlier part may overlap them, as in `abababab`."""
    length = 0
    while i + length < len(secret) and secret.find(secret[i : i + length + 1], 0, i + length) != -1:
        length += 1
    return length if length >= _REPEAT else 0


def secret_weakness(secret: str) -> str | None:
    """Why `secret` is too weak to guard a production service, or None when it is strong
    enough (see the module's docstring for the rule)."""
    value = secret.strip()
    if not value:
        return "is not set"
    if value.lower() in PLACEHOLDER_SECRETS:
        return "is a placeholder"
    if len(value) < MIN_SECRET_LENGTH:
        return f"has {len(value)} characters, fewer than {MIN_SECRET_LENGTH}"
    bits = estimated_entropy_bits(value)
    if bits < MIN_SECRET_BITS:
        return (
            f"is too predictable (about {bits:.0f} bits of entropy, fewer than {MIN_SECRET_BITS})"
        )
    return None


def require_strong_secret(variable: str, secret: str, where: str) -> None:
    """`ValueError` in one line naming `variable` when `secret` is too weak (never quoting it)."""
    weakness = secret_weakness(secret)
    if weakness is not None:
        raise ValueError(
            f"{variable} {weakness}; set a random secret of at least {MIN_SECRET_LENGTH} "
            f"characters, e.g. from {GENERATE_COMMAND} ({where})"
        )


def require_https(variable: str, url: str, where: str) -> None:
    """`ValueError` in one line naming `variable` unless `url` is an `https://` URL: keys and
    roles fetched over plain HTTP could be altered on the way."""
    try:
        scheme = httpx.URL(url).scheme
    except Exception:
        scheme = ""
    if scheme != "https":
        raise ValueError(
            f"{variable} must be an https:// URL outside local mode, not {url!r} ({where})"
        )


def environment_unset(settings: BaseSettings) -> bool:
    """Whether `ACCORD_ENV` was left unset (or blank): local mode by default, not by choice."""
    environment = str(getattr(settings, "environment", "") or "")
    return "environment" not in settings.model_fields_set or not environment.strip()


def warn_of_local_defaults(
    settings: BaseSettings, service: str, defaults: Iterable[str], log: logging.Logger
) -> None:
    """Log one warning, when `ACCORD_ENV` is unset, that `service` runs on local defaults (each
    of `defaults` says one) and how to leave local mode; nothing when local mode was chosen."""
    if not environment_unset(settings):
        return
    using = "; ".join(defaults) or "local settings"
    log.warning(
        "%s service: %s is not set, so local defaults are in use (%s). To run in production, "
        "set %s=production and the service's secrets; set %s=local to silence this warning.",
        service,
        ENVIRONMENT_VARIABLE,
        using,
        ENVIRONMENT_VARIABLE,
        ENVIRONMENT_VARIABLE,
    )


def is_placeholder(secret: SecretStr | str) -> bool:
    """Whether `secret` is one of the placeholders local mode runs with (`changethis`, …)."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return value.strip().lower() in PLACEHOLDER_SECRETS


def not_blank(value: str) -> str:
    """`value`, or `ValueError` when it is empty or only white space."""
    if not value.strip():
        raise ValueError("must not be empty")
    return value


class BaseServiceSettings(BaseSettings):
    """What every service's settings have: `ACCORD_ENV` and local mode, and the checks made in
    order: each field's, then `check`, then `check_production` outside local mode. A subclass
    sets its `env_prefix` in `model_config` (the service's name is the prefix in lower case,
    `AUTH_` for `auth`). A service that keeps a database takes `ServiceSettings`."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    # Shared by every Accord service, hence no prefix.
    environment: str = Field(default="local", validation_alias=ENVIRONMENT_VARIABLE)

    @property
    def local(self) -> bool:
        return self.environment.strip().lower() in LOCAL_ENVIRONMENTS

    @property
    def local_defaults(self) -> list[str]:
        """The local-mode defaults in use, for the start-up warning when `ACCORD_ENV` is unset."""
        return []

    @classmethod
    def prefix(cls) -> str:
        """The prefix of the service's environment variables (`AUTH_`)."""
        return str(cls.model_config.get("env_prefix", ""))

    @classmethod
    def service(cls) -> str:
        """The service's name in messages ("the auth service cannot start")."""
        return cls.prefix().rstrip("_").lower()

    @classmethod
    def from_environment(cls) -> Self:
        """The settings from the environment; `SettingsError` naming every variable that is
        wrong."""
        return load(cls, cls.service(), cls.prefix())

    def warn_of_local_defaults(self, log: logging.Logger) -> None:
        """The start-up warning that local defaults are in use (`warn_of_local_defaults`)."""
        warn_of_local_defaults(self, self.service(), self.local_defaults, log)

    def check(self) -> None:
        """Checks across fields made in every mode; `ValueError` naming the variables."""

    def check_production(self, where: str) -> None:
        """Checks made outside local mode; `ValueError` naming the variable and `where`
        (`ACCORD_ENV=production`)."""

    @model_validator(mode="after")
    def _production_ready(self) -> Self:
        self.check()
        if not self.local:
            self.check_production(f"{ENVIRONMENT_VARIABLE}={self.environment}")
        return self


class ServiceSettings(BaseServiceSettings):
    """The settings of a service that keeps a database: its URL (a subclass declares the
    default) and whether the service migrates it on start."""

    database_url: str
    # Whether the service migrates its database at start-up (under PostgreSQL's advisory lock,
    # so that replicas starting together take turns). Unset: in local mode only; outside it
    # `accord migrate SERVICE` is a deploy step, and the service refuses to start on a
    # database behind its schema (`services.kit.store.SqlStore.prepare`).
    migrate_on_start: bool | None = None

    @property
    def migrates_on_start(self) -> bool:
        """`migrate_on_start`, or when it is unset whether the service runs in local mode."""
        return self.local if self.migrate_on_start is None else self.migrate_on_start

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        try:
            async_url(value)
        except Exception as error:
            raise ValueError(f"not a usable database URL: {error}") from None
        return value
