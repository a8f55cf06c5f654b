"""The checks every service's settings share: secrets strong enough for production, `https://`
for what a service fetches from another, and the warning that local defaults are in use."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.kit.settings import (
    MIN_SECRET_BITS,
    estimated_entropy_bits,
    require_https,
    require_strong_secret,
    secret_weakness,
    warn_of_local_defaults,
)

WHERE = "ACCORD_ENV=production"


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "changethis",
        "short-key",
        "aaaaaaaaaaaaaaaa",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "abcdefghijklmnopqrstuvwxyz",
        "0123456789012345678901234567890",
        "Aa1!Aa1!Aa1!Aa1!Aa1!Aa1!",
        "acacacacacacacacacacacacacacacacacacacac",
        "changethischangethis",
    ],
)
def test_a_short_placeholder_or_repetitive_secret_is_too_weak(secret: str) -> None:
    assert secret_weakness(secret) is not None


@pytest.mark.parametrize(
    "make",
    [
        lambda: secrets.token_urlsafe(32),
        lambda: secrets.token_urlsafe(16),
        lambda: secrets.token_hex(16),
        lambda: secrets.token_hex(32),
    ],
    ids=["token_urlsafe(32)", "token_urlsafe(16)", "token_hex(16)", "token_hex(32)"],
)
def test_random_secrets_from_the_secrets_module_are_strong_enough(make: Callable[[], str]) -> None:
    for _ in range(200):
        secret = make()
        assert secret_weakness(secret) is None, secret


def test_a_sixteen_letter_run_of_one_letter_has_almost_no_entropy() -> None:
    assert estimated_entropy_bits("aaaaaaaaaaaaaaaa") < 2
    assert estimated_entropy_bits(secrets.token_urlsafe(32)) > 3 * MIN_SECRET_BITS


def test_a_weak_secret_is_refused_in_one_line_naming_the_variable_not_the_value() -> None:
    with pytest.raises(ValueError, match="AUTH_SERVICE_API_KEY") as raised:
        require_strong_secret("AUTH_SERVICE_API_KEY", "aaaaaaaaaaaaaaaa", WHERE)

    message = str(raised.value)
    assert "\n" not in message
    assert "aaaa" not in message
    assert WHERE in message


def test_a_strong_secret_passes() -> None:
    require_strong_secret("AUTH_SERVICE_API_KEY", secrets.token_urlsafe(32), WHERE)


@pytest.mark.parametrize(
    "url", ["http://auth.internal:3001", "HTTP://auth.internal", "auth.internal", "ftp://x.y"]
)
def test_anything_but_an_https_url_is_refused_naming_the_variable(url: str) -> None:
    with pytest.raises(ValueError, match="USER_JWKS_URL must be an https:// URL") as raised:
        require_https("USER_JWKS_URL", url, WHERE)

    assert "\n" not in str(raised.value)


def test_an_https_url_passes() -> None:
    require_https("USER_JWKS_URL", "https://auth.example/.well-known/jwks.json", WHERE)


class Demo(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore", populate_by_name=True)

    environment: str = Field(default="local", validation_alias="ACCORD_ENV")


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_local_defaults_are_warned_of_when_accord_env_is_unset(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("ACCORD_ENV", raising=False)

    warn_of_local_defaults(Demo(), "demo", ["a placeholder key"], logging.getLogger("demo"))

    [warning] = warnings_of(caplog)
    assert "demo service: ACCORD_ENV is not set" in warning
    assert "a placeholder key" in warning
    assert "ACCORD_ENV=production" in warning


@pytest.mark.parametrize("value", ["local", "production"])
def test_nothing_is_warned_of_when_accord_env_is_set(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    monkeypatch.setenv("ACCORD_ENV", value)

    warn_of_local_defaults(Demo(), "demo", ["a placeholder key"], logging.getLogger("demo"))

    assert warnings_of(caplog) == []
