"""`accord serve gateway`: the gateway service in one uvicorn process, configured from its
`GATEWAY_*` environment variables."""

from __future__ import annotations

from services.gateway.app import create_app
from services.gateway.settings import load_settings
from services.kit import startup

DEFAULT_PORT = 3000

serve = startup.entry_point(load_settings, create_app, default_port=DEFAULT_PORT)


if __name__ == "__main__":
    startup.main(serve)
