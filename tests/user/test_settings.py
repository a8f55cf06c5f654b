"""The user service's settings: `USER_*` variables, working defaults in local mode, and bad
settings refused at start-up with the variable to fix named."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import pytest

from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
from services.kit.topology import QueueSpec
from services.user.app import Adapters, create_app
from services.user.roles import InMemoryRolesClient
from services.user.settings import Settings, SettingsError, load_settings
from services.user.storage import SqlUserStore
from tests.user.conftest import FAST, Tokens


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("USER_") or name == "ACCORD_ENV":
            monkeypatch.delenv(name)


def test_local_mode_needs_no_configuration() -> None:
    settings = load_settings()

    assert settings.database_url == "sqlite:///.accord/user.db"
    assert settings.auth_service_url == "http://127.0.0.1:3001"
    assert settings.jwks_endpoint == "http://127.0.0.1:3001/.well-known/jwks.json"
    assert (settings.issuer, settings.audience) == ("http://127.0.0.1:3001", "accord")
    assert settings.queue == "accord-user-service"


def test_settings_come_from_user_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_DATABASE_URL", "postgresql://postgres@db/users")
    monkeypatch.setenv("USER_AUTH_SERVICE_URL", "http://auth.internal:3001/")
    monkeypatch.setenv("USER_AUTH_SERVICE_API_KEY", "a-long-random-service-key")
    monkeypatch.setenv("USER_QUEUE", "prod-accord-user-service")

    settings = load_settings()

    assert settings.database_url == "postgresql://postgres@db/users"
    assert settings.jwks_endpoint == "http://auth.internal:3001/.well-known/jwks.json"
    assert settings.auth_service_api_key.get_secret_value() == "a-long-random-service-key"
    assert settings.queue == "prod-accord-user-service"


def test_an_explicit_jwks_url_wins_over_the_auth_service_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER_JWKS_URL", "https://keys.example/jwks.json")

    assert load_settings().jwks_endpoint == "https://keys.example/jwks.json"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("USER_DATABASE_URL", "mysql://db/users"),
        ("USER_AUTH_SERVICE_URL", "auth:3001"),
        ("USER_JWKS_URL", "ftp://keys.example/jwks.json"),
        ("USER_AUTH_SERVICE_TIMEOUT_SECONDS", "0"),
        ("USER_AUTH_SERVICE_RETRIES", "many"),
        ("USER_QUEUE", " "),
    ],
)
def test_a_wrong_setting_stops_the_service_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError, match=variable):
        load_settings()


@pytest.mark.parametrize("key", ["changethis", "secret", "short"])
def test_outside_local_mode_a_placeholder_service_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("ACCORD_ENV", "production")
    monkeypatch.setenv("USER_AUTH_SERVICE_API_KEY", key)

    with pytest.raises(SettingsError, match="USER_AUTH_SERVICE_API_KEY"):
        load_settings()


def test_outside_local_mode_a_real_service_key_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCORD_ENV", "production")
    monkeypatch.setenv("USER_AUTH_SERVICE_API_KEY", "k3y-0f-at-least-sixteen")
    monkeypatch.setenv("USER_AUTH_SERVICE_URL", "https://auth.internal")

    assert not load_settings().local


@pytest.mark.parametrize("key", ["aaaaaaaaaaaaaaaa", "short-key"])
def test_outside_local_mode_a_weak_service_key_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("ACCORD_ENV", "production")
    monkeypatch.setenv("USER_AUTH_SERVICE_API_KEY", key)
    monkeypatch.setenv("USER_AUTH_SERVICE_URL", "https://auth.internal")

    with pytest.raises(SettingsError) as raised:
        load_settings()

    [line] = str(raised.value).splitlines()[1:]
    assert line.strip().startswith("USER_AUTH_SERVICE_API_KEY ")
    assert key not in str(raised.value)


def test_outside_local_mode_a_strong_random_service_key_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCORD_ENV", "production")
    monkeypatch.setenv("USER_AUTH_SERVICE_API_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("USER_AUTH_SERVICE_URL", "https://auth.internal")

    assert not load_settings().local


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({}, "USER_AUTH_SERVICE_URL"),
        ({"USER_AUTH_SERVICE_URL": "http://auth.internal:3001"}, "USER_AUTH_SERVICE_URL"),
        (
            {
                "USER_AUTH_SERVICE_URL": "https://auth.internal",
                "USER_JWKS_URL": "http://auth.internal/.well-known/jwks.json",
            },
            "USER_JWKS_URL",
        ),
    ],
)
def test_outside_local_mode_an_http_auth_service_or_jwks_url_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    monkeypatch.setenv("ACCORD_ENV", "production")
    monkeypatch.setenv("USER_AUTH_SERVICE_API_KEY", secrets.token_urlsafe(32))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError) as raised:
        load_settings()

    [line] = str(raised.value).splitlines()[1:]
    assert line.strip().startswith(f"{named} must be an https:// URL")


def test_in_local_mode_http_urls_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCORD_ENV", "local")
    monkeypatch.setenv("USER_AUTH_SERVICE_URL", "http://auth.internal:3001")
    monkeypatch.setenv("USER_JWKS_URL", "http://auth.internal:3001/.well-known/jwks.json")

    assert load_settings().jwks_endpoint == "http://auth.internal:3001/.well-known/jwks.json"


def test_settings_can_be_given_in_code() -> None:
    settings = Settings(environment="local", roles_cache_seconds=0)

    assert settings.roles_cache_seconds == 0


async def start_and_stop(settings: Settings, tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'user.db'}"
    broker = InMemoryBroker()
    broker.create_queue(QueueSpec(settings.queue))
    adapters = Adapters(
        store=SqlUserStore(database_url),
        verifier=Tokens().verifier(),
        roles=InMemoryRolesClient(),
        consumer=InMemoryEventConsumer(broker, settings.queue, FAST),
    )
    app = create_app(settings.model_copy(update={"database_url": database_url}), adapters=adapters)
    async with app.router.lifespan_context(app):
        pass


def local_default_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and "local defaults are in use" in record.getMessage()
    ]


async def test_with_accord_env_unset_the_local_defaults_are_warned_of_once_at_start_up(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    await start_and_stop(load_settings(), tmp_path)

    [warning] = local_default_warnings(caplog)
    assert "user service: ACCORD_ENV is not set" in warning
    assert "placeholder service key (USER_AUTH_SERVICE_API_KEY)" in warning
    assert "ACCORD_ENV=production" in warning


async def test_with_accord_env_local_nothing_is_warned_of(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("ACCORD_ENV", "local")

    await start_and_stop(load_settings(), tmp_path)

    assert local_default_warnings(caplog) == []
