"""Entry point: run the auth service with uvicorn (`accord serve auth`)."""

from __future__ import annotations

import uvicorn

from services.auth.app import create_app
from services.auth.keyring import KeyRingError
from services.auth.settings import SettingsError, load_settings

DEFAULT_PORT = 3001


def serve(port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> None:
    """Serve the auth service until interrupted; bad settings stop it before it starts."""
    try:
        settings = load_settings()
        app = create_app(settings)
    except SettingsError as error:
        raise SystemExit(str(error)) from None
    except KeyRingError as error:
        raise SystemExit(f"the auth service cannot start: {error}") from None
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=settings.access_log,
        # The rate limits decide from the peer address; only AUTH_TRUSTED_PROXIES may say
        # otherwise (uvicorn would believe X-Forwarded-For from any loopback peer).
        proxy_headers=False,
    )


if __name__ == "__main__":
    serve()
