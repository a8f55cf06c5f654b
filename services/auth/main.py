"""Entry point: run the auth service with uvicorn (`accord serve auth`)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.types import ASGIApp

from services.auth.app import create_app
from services.auth.keyring import KeyRingError
from services.auth.settings import load_settings
from services.kit import startup

DEFAULT_PORT = 3001


def serve(
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    *,
    around: Callable[[FastAPI], ASGIApp] | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the auth service until interrupted. A wrong setting (`SettingsError`), or a
    database, key ring or port it cannot use (`StartupError`), stops it before it starts,
    naming the setting to fix. `around` adds to the app (the harness's /docs pages); `ready`
    is told the URL once it accepts connections."""
    settings = load_settings()
    try:
        app = create_app(settings)
    except KeyRingError as error:
        raise startup.StartupError(f"the auth service cannot start: {error}") from None
    startup.serve(
        app if around is None else around(app),
        service="auth",
        host=host,
        port=port,
        database=startup.DatabaseSetting("AUTH_DATABASE_URL", settings.database_url),
        access_log=settings.access_log,
        ready=ready,
    )


if __name__ == "__main__":
    startup.main(serve)
