"""Entry point: run the auth service with uvicorn (`accord serve auth`)."""

from __future__ import annotations

import uvicorn

from services.auth.app import create_app
from services.auth.settings import SettingsError, load_settings

DEFAULT_PORT = 3001


def serve(port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> None:
    """Serve the auth service until interrupted; bad settings stop it before it starts."""
    try:
        settings = load_settings()
    except SettingsError as error:
        raise SystemExit(str(error)) from None
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        access_log=settings.access_log,
    )


if __name__ == "__main__":
    serve()
