"""`accord serve notification`: the notification service in one uvicorn process, configured
from its `NOTIFICATION_*` environment variables."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.types import ASGIApp

from services.kit import startup
from services.notification.app import create_app
from services.notification.settings import load_settings

DEFAULT_PORT = 3003


def serve(
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    *,
    around: Callable[[FastAPI], ASGIApp] | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Run the service until interrupted. A wrong setting (`SettingsError`), or a database,
    queue or port it cannot use (`StartupError`), stops it before it starts, naming the
    setting to fix. `around` adds to the app (the harness's /docs pages); `ready` is told the
    URL once it accepts connections."""
    settings = load_settings()
    app = create_app(settings)
    startup.serve(
        app if around is None else around(app),
        service="notification",
        host=host,
        port=port,
        database=startup.DatabaseSetting("NOTIFICATION_DATABASE_URL", settings.database_url),
        ready=ready,
    )


if __name__ == "__main__":
    startup.main(serve)
