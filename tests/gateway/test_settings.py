"""The gateway's settings: `GATEWAY_*` variables, working defaults in local mode, and bad
settings refused at start-up with the variable to fix named."""

from __future__ import annotations

import os
import secrets

import pytest

from services.gateway.app import build_adapters
from services.gateway.settings import Settings, load_settings
from services.kit.settings import SettingsError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GATEWAY_") or name == "ACCORD_ENV":
            monkeypatch.delenv(name)


def test_local_mode_needs_no_configuration() -> None:
    settings = load_settings()

    assert settings.auth_service_url == "http://127.0.0.1:3001"
    assert settings.user_service_url == "http://127.0.0.1:3002"
    assert settings.jwks_endpoint == "http://127.0.0.1:3001/.well-known/jwks.json"
    assert (settings.part_timeout_seconds, settings.deadline_seconds) == (2.0, 3.0)


def test_the_deadlines_and_the_policy_come_from_gateway_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_USER_SERVICE_URL", "http://user.internal:3002")
    monkeypatch.setenv("GATEWAY_PART_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("GATEWAY_DEADLINE_SECONDS", "0.75")
    monkeypatch.setenv("GATEWAY_CALL_TIMEOUT_SECONDS", "0.25")
    monkeypatch.setenv("GATEWAY_CALL_RETRIES", "0")

    settings = load_settings()

    assert settings.user_service_url == "http://user.internal:3002"
    assert (settings.part_timeout_seconds, settings.deadline_seconds) == (0.5, 0.75)
    assert (settings.call_timeout_seconds, settings.call_retries) == (0.25, 0)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEWAY_USER_SERVICE_URL", "user:3002"),
        ("GATEWAY_AUTH_SERVICE_URL", "ftp://auth.internal"),
        ("GATEWAY_PART_TIMEOUT_SECONDS", "0"),
        ("GATEWAY_DEADLINE_SECONDS", "-1"),
        ("GATEWAY_CALL_RETRIES", "many"),
    ],
)
def test_a_wrong_setting_stops_the_service_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_a_part_deadline_longer_than_the_whole_is_refused_naming_both_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_PART_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("GATEWAY_DEADLINE_SECONDS", "3")

    with pytest.raises(SettingsError) as raised:
        load_settings()

    assert "GATEWAY_PART_TIMEOUT_SECONDS" in str(raised.value)
    assert "GATEWAY_DEADLINE_SECONDS" in str(raised.value)


def test_outside_local_mode_an_http_user_service_url_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCORD_ENV", "production")
    monkeypatch.setenv("GATEWAY_AUTH_SERVICE_API_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("GATEWAY_AUTH_SERVICE_URL", "https://auth.internal")
    monkeypatch.setenv("GATEWAY_USER_SERVICE_URL", "http://user.internal")

    with pytest.raises(SettingsError, match="GATEWAY_USER_SERVICE_URL must be an https:// URL"):
        load_settings()


async def test_the_real_adapters_are_built_from_the_settings_and_close() -> None:
    adapters = build_adapters(Settings())

    await adapters.close()


def test_local_defaults_name_the_plain_http_user_service() -> None:
    defaults = Settings().local_defaults

    assert any("GATEWAY_USER_SERVICE_URL" in default for default in defaults)
