"""The auth service outside local mode refuses a service key with too little entropy; with
`ACCORD_ENV` unset it starts on local defaults and says so once, in a warning."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import pytest

from services.auth.app import create_app
from services.auth.settings import Settings, SettingsError, load_settings
from services.kit.tokens import SigningKey


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("AUTH_SERVICE_API_KEY", "AUTH_SIGNING_KEY", "AUTH_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCORD_ENV", "production")
    monkeypatch.setenv("AUTH_SIGNING_KEY", SigningKey.generate().to_pem().decode())
    return monkeypatch


@pytest.mark.parametrize("key", ["aaaaaaaaaaaaaaaa", "Ab1!Ab1!Ab1!Ab1!", "short-key"])
def test_outside_local_mode_a_weak_service_key_is_refused_in_one_line(
    production: pytest.MonkeyPatch, key: str
) -> None:
    production.setenv("AUTH_SERVICE_API_KEY", key)

    with pytest.raises(SettingsError) as raised:
        load_settings()

    [line] = str(raised.value).splitlines()[1:]
    assert line.strip().startswith("AUTH_SERVICE_API_KEY ")
    assert key not in str(raised.value)


def test_outside_local_mode_a_strong_random_service_key_is_accepted(
    production: pytest.MonkeyPatch,
) -> None:
    production.setenv("AUTH_SERVICE_API_KEY", secrets.token_urlsafe(32))

    assert not load_settings().local


def local_settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'auth.db'}", signing_key_path=tmp_path / "auth.pem"
    )


def local_default_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and "local defaults are in use" in record.getMessage()
    ]


async def test_with_accord_env_unset_the_local_defaults_are_warned_of_once_at_start_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.delenv("ACCORD_ENV", raising=False)
    monkeypatch.delenv("AUTH_SERVICE_API_KEY", raising=False)
    monkeypatch.delenv("AUTH_SIGNING_KEY", raising=False)
    app = create_app(local_settings(tmp_path))

    async with app.router.lifespan_context(app):
        pass

    [warning] = local_default_warnings(caplog)
    assert "auth service: ACCORD_ENV is not set" in warning
    assert "placeholder service key (AUTH_SERVICE_API_KEY)" in warning
    assert "signing key generated" in warning
    assert "ACCORD_ENV=production" in warning


async def test_with_accord_env_local_nothing_is_warned_of(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("ACCORD_ENV", "local")
    app = create_app(local_settings(tmp_path))

    async with app.router.lifespan_context(app):
        pass

    assert local_default_warnings(caplog) == []
