"""Entry point: run the user service with uvicorn (`accord serve user`)."""

from __future__ import annotations

import uvicorn

from services.user.app import create_app
from services.user.settings import SettingsError, load_settings

DEFAULT_PORT = 3002


def serve(port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> None:
    """Serve the user service until interrupted; bad settings stop it before it starts."""
    try:
        settings = load_settings()
    except SettingsError as error:
        raise SystemExit(str(error)) from None
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


if __name__ == "__main__":
    serve()
