"""The user service's settings: `USER_*` variables, working defaults in local mode, and bad
settings refused at start-up with the variable to fix named."""

from __future__ import annotations

import os

import pytest

from services.user.settings import Settings, SettingsError, load_settings


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

    assert not load_settings().local


def test_settings_can_be_given_in_code() -> None:
    settings = Settings(environment="local", roles_cache_seconds=0)

    assert settings.roles_cache_seconds == 0
