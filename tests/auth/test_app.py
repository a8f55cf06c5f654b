"""Starting the auth service: settings that fail with the variable's name, keys, readiness."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from services.auth.app import create_app
from services.auth.settings import Settings, SettingsError, load_settings
from services.kit.tokens import SigningKey

STRONG_KEY = "a-long-random-service-credential-0123456789"


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("AUTH_SERVICE_API_KEY", "AUTH_SIGNING_KEY", "AUTH_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCORD_ENV", "production")
    return monkeypatch


@pytest.mark.parametrize("value", [None, "", "changethis", "short-key"], ids=repr)
def test_a_placeholder_service_key_outside_local_mode_fails_naming_the_variable(
    production: pytest.MonkeyPatch, value: str | None
) -> None:
    production.setenv("AUTH_SIGNING_KEY", SigningKey.generate().to_pem().decode())
    if value is not None:
        production.setenv("AUTH_SERVICE_API_KEY", value)

    with pytest.raises(SettingsError, match="AUTH_SERVICE_API_KEY"):
        load_settings()


def test_outside_local_mode_a_signing_key_must_be_given_not_generated(
    production: pytest.MonkeyPatch,
) -> None:
    production.setenv("AUTH_SERVICE_API_KEY", STRONG_KEY)

    with pytest.raises(SettingsError, match="AUTH_SIGNING_KEY must be set"):
        load_settings()


def test_production_settings_with_real_secrets_load(production: pytest.MonkeyPatch) -> None:
    key = SigningKey.generate()
    production.setenv("AUTH_SERVICE_API_KEY", STRONG_KEY)
    production.setenv("AUTH_SIGNING_KEY", key.to_pem().decode())

    settings = load_settings()

    assert not settings.local
    assert settings.signing_key is not None
    assert STRONG_KEY not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUTH_DATABASE_URL", "mysql://localhost/auth"),
        ("AUTH_ACCESS_TOKEN_TTL_SECONDS", "soon"),
        ("AUTH_SIGNING_KEY", "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"),
    ],
)
def test_a_wrong_setting_fails_at_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.delenv("ACCORD_ENV", raising=False)
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError, match=variable) as raised:
        load_settings()

    assert "nope" not in str(raised.value)


async def test_local_mode_generates_a_signing_key_once_and_keeps_it(tmp_path: Path) -> None:
    settings = Settings(
        environment="local",
        database_url=f"sqlite:///{tmp_path / 'auth.db'}",
        signing_key_path=tmp_path / "keys" / "auth.pem",
    )
    kids = []
    for _ in range(2):
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://auth") as http:
                kids.append((await http.get("/.well-known/jwks.json")).json()["keys"][0]["kid"])

    assert kids[0] == kids[1]
    ring = tmp_path / "keys" / "auth-keys"  # next to AUTH_SIGNING_KEY_PATH
    [key_file] = ring.iterdir()
    assert key_file.name.endswith(f"-{kids[0]}.pem")
    assert key_file.stat().st_mode & 0o077 == 0
    assert ring.stat().st_mode & 0o077 == 0


async def test_readiness_answers_503_while_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = Settings(
        environment="local",
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",
        migrate_on_start=False,
        signing_key_path=tmp_path / "auth.pem",
        outbox_poll_seconds=60,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth") as http:
            ready = await http.get("/health/ready")
            live = await http.get("/health/live")

    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "checks": {"database": "unavailable"}}
    assert live.status_code == 200
