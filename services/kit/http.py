"""The HTTP conventions every Accord service shares: RFC 9457 problem responses and request
body limits (trace context: `services.kit.tracing.ServerSpans`).

Every contract under `contracts/openapi/` answers errors with a `Problem`
(`application/problem+json`): a body that is not JSON is 400 `malformed-request`; a request
that fails the contract is 422 `validation-error` with `errors: [{pointer, message}]`, each
pointer into the request seen as `{"body": ..., "path": ..., "query": ..., "header": ...}`;
unknown paths and methods are 404 and 405; a lost or refused database connection is 503
`dependency-unavailable` with `Retry-After` (`database_unavailable_problems`); a request body
over the service's limit is 413 `payload-too-large`, refused before it is read
(`BodyLimitMiddleware`); a bug is a bare 500 without a stack trace.

A request without a usable access token is 401 `unauthenticated` with the `bearerAuth`
challenge `WWW-Authenticate: Bearer realm="accord"` (`unauthenticated`); `bearer_token` reads
the token from the `Authorization` header the same way in every service.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("accord.http")

PROBLEM_JSON: Final = "application/problem+json"
PROBLEM_TYPES: Final = "https://accord.example/problems/"


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem: what went wrong, for a client, and the headers that go with it."""

    status: int
    type: str
    title: str
    detail: str | None = None
    errors: Sequence[Mapping[str, str]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[Mapping[str, str]] | None = None,
    ) -> Problem:
        """A problem whose type is `https://accord.example/problems/<slug>`."""
        return cls(status, PROBLEM_TYPES + slug, title, detail, errors, dict(headers or {}))

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail is not None:
            body["detail"] = self.detail
        if instance is not None:
            body["instance"] = instance
        if self.errors is not None:
            body["errors"] = [dict(error) for error in self.errors]
        return body

    def response(self, instance: str | None = None) -> JSONResponse:
        return JSONResponse(
            self.body(instance),
            status_code=self.status,
            headers=dict(self.headers),
            media_type=PROBLEM_JSON,
        )


class ProblemError(Exception):
    """Raised by an adapter (a security dependency, a route) to answer with `problem`."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail or problem.title)
        self.problem = problem


# The challenge of the contracts' `bearerAuth` scheme (RFC 6750).
REALM: Final = 'Bearer realm="accord"'


def bearer_challenge(error: str | None = None) -> dict[str, str]:
    """The `WWW-Authenticate` header of a 401, naming the RFC 6750 `error` when there is one."""
    if error is None:
        return {"WWW-Authenticate": REALM}
    return {"WWW-Authenticate": f'{REALM}, error="{error}"'}


def unauthenticated(detail: str, *, invalid_token: bool = False) -> ProblemError:
    """401 `unauthenticated`: no usable access token (`invalid_token`: one was presented and
    refused)."""
    return ProblemError(
        Problem.of(
            401,
            "unauthenticated",
            "Unauthenticated",
            detail,
            headers=bearer_challenge("invalid_token" if invalid_token else None),
        )
    )


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization` header value `Bearer <token>` (the scheme in any case),
    without surrounding white space; None for another scheme or no token."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_bearer_token(
    authorization: str | None,
    *,
    missing: str = "An access token is required.",
    malformed: str = "Present the access token as `Bearer <token>`.",
) -> str:
    """The bearer token of an `Authorization` header value (None: no header), or 401
    `unauthenticated` with the detail `missing` (no header) or `malformed` (no bearer token
    in it)."""
    if authorization is None:
        raise unauthenticated(missing)
    token = bearer_token(authorization)
    if token is None:
        raise unauthenticated(malformed)
    return token


def validation_problem(errors: Iterable[Mapping[str, str]]) -> Problem:
    return Problem.of(
        422,
        "validation-error",
        "Validation failed",
        "The request does not match the contract.",
        errors=list(errors),
    )


def json_pointer(location: Iterable[object]) -> str:
    """An RFC 6901 pointer to `location`, e.g. ("body", "email") → "/body/email"."""
    parts = (str(part).replace("~", "~0").replace("/", "~1") for part in location)
    return "".join("/" + part for part in parts)


def _pointer(location: Sequence[object]) -> str:
    # FastAPI says `header`, `path` and `query` like the contract; an empty or missing body
    # is reported at `/body`.
    return json_pointer(location) or "/body"


ProblemFor = Callable[[Any], Problem]

# What a lost or refused database connection raises, through SQLAlchemy or from the driver
# directly (asyncpg lets a refused connection through as `ConnectionRefusedError`, a name that
# does not resolve as `socket.gaierror`): the request may succeed later, so the answer is 503
# with Retry-After, not a 500. Other OS errors (a missing file, a permission) stay bugs.
DATABASE_UNAVAILABLE: Final = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
    socket.gaierror,
)


def dependency_unavailable(detail: str, retry_after: int) -> Problem:
    return Problem.of(
        503,
        "dependency-unavailable",
        "Service unavailable",
        detail,
        headers={"Retry-After": str(retry_after)},
    )


def database_unavailable_problems(retry_after: int) -> dict[type[Exception], ProblemFor]:
    """The 503 problem for each error of `DATABASE_UNAVAILABLE`, for `install_problem_handlers`."""

    def problem(error: Exception) -> Problem:
        log.warning("the database cannot be reached: %s: %s", type(error).__name__, error)
        return dependency_unavailable("the service's database cannot be reached", retry_after)

    return dict.fromkeys(DATABASE_UNAVAILABLE, problem)


def install_problem_handlers(
    app: FastAPI, domain_problems: Mapping[type[Exception], ProblemFor] | None = None
) -> None:
    """Answer every error with a problem: the `domain_problems` (an exception type → its
    problem), `ProblemError`, request validation, routing (404/405) and unexpected ones."""

    for kind, problem_for in (domain_problems or {}).items():
        app.add_exception_handler(kind, _domain_handler(problem_for))

    async def on_problem(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ProblemError)
        return error.problem.response(_instance(request))

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        details = error.errors()
        if any(item.get("type") == "json_invalid" for item in details):
            problem = Problem.of(
                400, "malformed-request", "Malformed request", "The request body is not valid JSON."
            )
            return problem.response(_instance(request))
        issues = [
            {"pointer": _pointer(tuple(item.get("loc", ()))), "message": str(item.get("msg", ""))}
            for item in details
        ]
        return validation_problem(issues).response(_instance(request))

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        headers = dict(error.headers or {})
        if error.status_code == 404:
            problem = Problem.of(404, "not-found", "Not found", "There is nothing at this path.")
        elif error.status_code == 405:
            # Starlette names only the first route on the path; the resource allows them all.
            headers["Allow"] = ", ".join(_allowed_methods(request)) or headers.get("Allow", "")
            problem = Problem.of(
                405,
                "method-not-allowed",
                "Method not allowed",
                f"{request.method} is not allowed here.",
            )
        else:
            problem = Problem(error.status_code, "about:blank", _title(error.status_code))
        return Problem(
            problem.status, problem.type, problem.title, problem.detail, None, headers
        ).response(_instance(request))

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        # Logged with its traceback here; the client learns nothing about the internals.
        log.error(
            "unhandled %s on %s %s",
            type(error).__name__,
            request.method,
            request.url.path,
            exc_info=error,
        )
        problem = Problem(500, "about:blank", "Internal server error", "The request failed.")
        return problem.response(_instance(request))

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def _instance(request: Request) -> str:
    # `instance` is a URI reference: the path as sent, percent-encoded, not as decoded.
    return quote(request.url.path, safe="/:@!$&'()*+,;=-._~")


def _allowed_methods(request: Request) -> list[str]:
    # Asked of the router itself, method by method, so nested routers answer too.
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]


_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _domain_handler(problem_for: ProblemFor) -> Callable[[Request, Exception], Any]:
    async def handle(request: Request, error: Exception) -> JSONResponse:
        return problem_for(error).response(_instance(request))

    return handle


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# 64 KiB: many times the largest body a contract admits, far below what a client could make the
# service hold in memory otherwise.
DEFAULT_MAX_REQUEST_BODY_BYTES: Final = 64 * 1024


def payload_too_large(limit: int) -> Problem:
    return Problem.of(
        413,
        "payload-too-large",
        "Payload too large",
        f"The request body is larger than the limit of {limit} bytes.",
    )


class BodyLimitMiddleware:
    """Refuses a request body over `max_body_bytes` with a 413 problem before the app sees it."""

    # A declared `Content-Length` over the limit is refused without reading a byte (nor sending
    # `100 Continue`); a body without one (chunked) is counted as it arrives and refused as soon
    # as it passes the limit. The app is called only with a whole body within the limit, so no
    # route, validation or handler ever runs on a refused body.

    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_REQUEST_BODY_BYTES) -> None:
        if max_body_bytes < 0:
            raise ValueError(f"max_body_bytes must not be negative, not {max_body_bytes}")
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > self.max_body_bytes:
            await self._refuse(scope, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body was complete: no one to answer
            chunk = message.get("body", b"")
            if len(body) + len(chunk) > self.max_body_bytes:
                await self._refuse(scope, send)
                return
            body += chunk
            if not message.get("more_body", False):
                break

        whole: Message | None = {"type": "http.request", "body": bytes(body), "more_body": False}

        async def replay() -> Message:
            # The body once, then the server's own messages (a disconnect, for streaming).
            nonlocal whole
            if whole is not None:
                message, whole = whole, None
                return message
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        log.info(
            "refused a request body over %d bytes: %s %s",
            self.max_body_bytes,
            scope.get("method", ""),
            scope.get("path", ""),
        )
        response = payload_too_large(self.max_body_bytes).response(_instance(Request(scope)))
        await response(scope, _nothing_to_receive, send)


async def _nothing_to_receive() -> Message:
    # A response never reads the request; were it to, the body is not for it.
    return {"type": "http.disconnect"}


def _declared_length(scope: Scope) -> int:
    """The largest `Content-Length` the request declares; 0 when none (or none readable: the
    body is then counted as it arrives)."""
    declared = 0
    for key, value in scope.get("headers", ()):
        if key.lower() == b"content-length":
            text = bytes(value).strip()
            if text.isdigit():
                declared = max(declared, int(text))
    return declared
