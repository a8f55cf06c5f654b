"""`accord serve notification`: the notification service in one uvicorn process, configured
from its `NOTIFICATION_*` environment variables."""

from __future__ import annotations

from services.kit import startup
from services.notification.app import create_app
from services.notification.settings import load_settings

DEFAULT_PORT = 3003

serve = startup.entry_point(load_settings, create_app, default_port=DEFAULT_PORT)


if __name__ == "__main__":
    startup.main(serve)
