"""A stand-in for the auth service over real HTTP: its key set, its liveness probe and
`getUserRoles`, with scripted failures (status codes, slow answers) for the roles endpoint."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ROLES = re.compile(r"^/api/v1/auth/users/([^/]+)/roles$")


@dataclass(frozen=True)
class Failure:
    """How the next roles request fails: with a status, or by answering late."""

    status: int = 200
    delay: float = 0.0


class AuthStub:
    """The auth service's HTTP endpoints the user service calls, on 127.0.0.1 (a free port)."""

    def __init__(self, api_key: str, key_set: Mapping[str, Any]) -> None:
        self.api_key = api_key
        self.key_set = dict(key_set)
        self.roles: dict[str, list[str]] = {}
        self.failures: deque[Failure] = deque()
        self.always: Failure | None = None
        self.roles_requests: list[str | None] = []  # the X-API-Key of each
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> AuthStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        if request.path == "/.well-known/jwks.json":
            # `Cache-Control` is a required header of `getJwks`.
            self._answer(request, 200, self.key_set, {"Cache-Control": "public, max-age=25"})
            return
        if request.path == "/health/live":
            self._answer(request, 200, {"status": "ok"})
            return
        match = ROLES.match(request.path)
        if match is None:
            self._answer(request, 404, {"title": "Not found", "status": 404})
            return
        self.roles_requests.append(request.headers.get("X-API-Key"))
        failure = self.failures.popleft() if self.failures else self.always
        if failure is not None:
            time.sleep(failure.delay)
            if failure.status != 200:
                self._answer(request, failure.status, {"title": "Failure", "status": 500})
                return
        if request.headers.get("X-API-Key") != self.api_key:
            self._answer(request, 401, {"title": "Unauthenticated", "status": 401})
            return
        user_id = match.group(1)
        if user_id not in self.roles:
            self._answer(request, 404, {"title": "Not found", "status": 404})
            return
        self._answer(request, 200, {"userId": user_id, "roles": self.roles[user_id]})

    @staticmethod
    def _answer(
        request: BaseHTTPRequestHandler,
        status: int,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        payload = json.dumps(body).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                request.send_header(name, value)
            request.end_headers()
            request.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout under test)


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
