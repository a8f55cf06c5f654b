"""`accord serve notification`: the notification service in one uvicorn process, configured
from its `NOTIFICATION_*` environment variables."""

from __future__ import annotations

import logging

import uvicorn

from services.notification.app import create_app
from services.notification.settings import load_settings


def serve(port: int, host: str) -> None:
    """Run the service until interrupted; a wrong setting raises `SettingsError` naming it."""
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)-22s %(message)s")
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None)
