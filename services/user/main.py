"""Entry point: run the user service with uvicorn (`accord serve user`)."""

from __future__ import annotations

from services.kit import startup
from services.user.app import create_app
from services.user.settings import load_settings

DEFAULT_PORT = 3002

serve = startup.entry_point(load_settings, create_app, default_port=DEFAULT_PORT)


if __name__ == "__main__":
    startup.main(serve)
