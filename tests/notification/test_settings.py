"""Settings: nothing to configure locally; every wrong value stops the start, naming its
environment variable."""

from __future__ import annotations

import logging
import secrets

import pytest

from services.notification import main
from services.notification.app import create_app
from services.notification.mail import RecordingEmailSender
from services.notification.settings import Settings, SettingsError, load_settings
from tests.notification.support import Tokens, running_service

GOOD_KEY = "k3y-for-the-auth-service-0123456789"
HTTPS_URLS = {
    "NOTIFICATION_JWKS_URL": "https://auth.internal/.well-known/jwks.json",
    "NOTIFICATION_AUTH_SERVICE_URL": "https://auth.internal",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("NOTIFICATION_") or name in ("ACCORD_ENV", "AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name)


def test_local_mode_needs_no_configuration() -> None:
    settings = load_settings()
    assert settings.local
    assert settings.database_url == "sqlite:///.accord/notification.db"
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_tls) == (
        "127.0.0.1",
        1025,
        "none",
    )
    assert settings.link_base_url == "http://127.0.0.1:3001"
    assert settings.jwks_url == "http://127.0.0.1:3001/.well-known/jwks.json"
    assert settings.queue == "accord-notification-service"
    assert settings.auth_service_api_key is None


def test_settings_are_read_from_notification_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFICATION_SMTP_HOST", "mail.example.com")
    monkeypatch.setenv("NOTIFICATION_SMTP_PORT", "465")
    monkeypatch.setenv("NOTIFICATION_SMTP_TLS", "tls")
    monkeypatch.setenv("NOTIFICATION_SMTP_USERNAME", "accord")
    monkeypatch.setenv("NOTIFICATION_SMTP_PASSWORD", "s3cret-pw")
    monkeypatch.setenv("NOTIFICATION_LINK_BASE_URL", "https://accounts.example.com/app/")
    settings = load_settings()
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_tls) == (
        "mail.example.com",
        465,
        "tls",
    )
    assert settings.smtp_password is not None
    assert "s3cret-pw" not in repr(settings)
    assert settings.link_base_url == "https://accounts.example.com/app"


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"NOTIFICATION_SMTP_PORT": "smtp"}, "NOTIFICATION_SMTP_PORT"),
        ({"NOTIFICATION_SMTP_PORT": "70000"}, "NOTIFICATION_SMTP_PORT"),
        ({"NOTIFICATION_SMTP_TLS": "ssl"}, "NOTIFICATION_SMTP_TLS"),
        ({"NOTIFICATION_DATABASE_URL": "mysql://db/notification"}, "NOTIFICATION_DATABASE_URL"),
        ({"NOTIFICATION_LINK_BASE_URL": "accounts.example.com"}, "NOTIFICATION_LINK_BASE_URL"),
        ({"NOTIFICATION_LINK_BASE_URL": "https://a.example/?x=1"}, "NOTIFICATION_LINK_BASE_URL"),
        ({"NOTIFICATION_JWKS_URL": "file:///etc/keys"}, "NOTIFICATION_JWKS_URL"),
        ({"NOTIFICATION_FROM_ADDRESS": "nobody"}, "NOTIFICATION_FROM_ADDRESS"),
        ({"NOTIFICATION_SMTP_TIMEOUT_SECONDS": "0"}, "NOTIFICATION_SMTP_TIMEOUT_SECONDS"),
        ({"NOTIFICATION_QUEUE": " "}, "NOTIFICATION_QUEUE"),
        ({"NOTIFICATION_SMTP_PASSWORD": "pw"}, "NOTIFICATION_SMTP_USERNAME"),
        ({"NOTIFICATION_SMTP_USERNAME": "accord"}, "NOTIFICATION_SMTP_PASSWORD"),
        ({"ACCORD_ENV": "production"}, "NOTIFICATION_AUTH_SERVICE_API_KEY"),
        (
            {"ACCORD_ENV": "production", "NOTIFICATION_AUTH_SERVICE_API_KEY": "changethis"},
            "NOTIFICATION_AUTH_SERVICE_API_KEY",
        ),
        (
            {
                "ACCORD_ENV": "production",
                "NOTIFICATION_AUTH_SERVICE_API_KEY": GOOD_KEY,
                "NOTIFICATION_SMTP_USERNAME": "accord",
                "NOTIFICATION_SMTP_PASSWORD": "pw",
            },
            "NOTIFICATION_SMTP_TLS",
        ),
    ],
)
def test_a_wrong_setting_stops_the_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert named in str(raised.value)
    assert "pw" not in str(raised.value).replace(named, "")


def test_production_starts_with_a_service_key_and_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCORD_ENV", "production")
    monkeypatch.setenv("NOTIFICATION_AUTH_SERVICE_API_KEY", GOOD_KEY)
    for name, value in HTTPS_URLS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NOTIFICATION_SMTP_TLS", "starttls")
    monkeypatch.setenv("NOTIFICATION_SMTP_USERNAME", "accord")
    monkeypatch.setenv("NOTIFICATION_SMTP_PASSWORD", "s3cret-pw")
    assert not load_settings().local


def test_serve_refuses_to_start_on_a_wrong_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFICATION_SMTP_TLS", "maybe")
    with pytest.raises(SettingsError, match="NOTIFICATION_SMTP_TLS"):
        main.serve(port=0, host="127.0.0.1")


def test_a_wrong_bus_endpoint_stops_the_app_from_being_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "localhost:4566")
    with pytest.raises(ValueError, match="AWS_ENDPOINT_URL"):
        create_app(Settings())


@pytest.mark.parametrize("key", ["aaaaaaaaaaaaaaaa", "short-key"])
def test_outside_local_mode_a_weak_service_key_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("ACCORD_ENV", "production")
    monkeypatch.setenv("NOTIFICATION_AUTH_SERVICE_API_KEY", key)
    for name, value in HTTPS_URLS.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError) as raised:
        load_settings()

    [line] = str(raised.value).splitlines()[1:]
    assert line.strip().startswith("NOTIFICATION_AUTH_SERVICE_API_KEY ")
    assert key not in str(raised.value)


def test_outside_local_mode_a_strong_random_service_key_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCORD_ENV", "production")
    monkeypatch.setenv("NOTIFICATION_AUTH_SERVICE_API_KEY", secrets.token_urlsafe(32))
    for name, value in HTTPS_URLS.items():
        monkeypatch.setenv(name, value)

    assert not load_settings().local


@pytest.mark.parametrize("named", sorted(HTTPS_URLS))
def test_outside_local_mode_an_http_jwks_or_auth_service_url_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, named: str
) -> None:
    monkeypatch.setenv("ACCORD_ENV", "production")
    monkeypatch.setenv("NOTIFICATION_AUTH_SERVICE_API_KEY", secrets.token_urlsafe(32))
    for name, value in HTTPS_URLS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(named, HTTPS_URLS[named].replace("https://", "http://"))

    with pytest.raises(SettingsError) as raised:
        load_settings()

    [line] = str(raised.value).splitlines()[1:]
    assert line.strip().startswith(f"{named} must be an https:// URL")


def test_in_local_mode_http_urls_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCORD_ENV", "local")
    monkeypatch.setenv("NOTIFICATION_JWKS_URL", "http://auth.internal/.well-known/jwks.json")
    monkeypatch.setenv("NOTIFICATION_AUTH_SERVICE_URL", "http://auth.internal")

    assert load_settings().jwks_url == "http://auth.internal/.well-known/jwks.json"


def local_default_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and "local defaults are in use" in record.getMessage()
    ]


async def start_and_stop(settings: Settings) -> None:
    async with running_service(settings, sender=RecordingEmailSender(), tokens=Tokens()):
        pass


async def test_with_accord_env_unset_the_local_defaults_are_warned_of_once_at_start_up(
    caplog: pytest.LogCaptureFixture, sqlite_url: str
) -> None:
    await start_and_stop(Settings(database_url=sqlite_url))

    [warning] = local_default_warnings(caplog)
    assert "notification service: ACCORD_ENV is not set" in warning
    assert "NOTIFICATION_AUTH_SERVICE_API_KEY" in warning
    assert "ACCORD_ENV=production" in warning


async def test_with_accord_env_local_nothing_is_warned_of(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, sqlite_url: str
) -> None:
    monkeypatch.setenv("ACCORD_ENV", "local")

    await start_and_stop(Settings(database_url=sqlite_url))

    assert local_default_warnings(caplog) == []
