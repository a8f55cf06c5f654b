"""Entry point: run the auth service with uvicorn (`accord serve auth`)."""

from __future__ import annotations

from fastapi import FastAPI

from services.auth.app import create_app
from services.auth.keyring import KeyRingError
from services.auth.settings import Settings, load_settings
from services.kit import startup

DEFAULT_PORT = 3001


def create(settings: Settings) -> FastAPI:
    """The auth service's app; a key ring it cannot use is a `StartupError` naming it."""
    try:
        return create_app(settings)
    except KeyRingError as error:
        raise startup.StartupError(f"the auth service cannot start: {error}") from None


serve = startup.entry_point(
    load_settings,
    create,
    default_port=DEFAULT_PORT,
    access_log=lambda settings: settings.access_log,
)


if __name__ == "__main__":
    startup.main(serve)
