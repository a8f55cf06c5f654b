"""Starting a service: one uvicorn server, and a failure to start told in one line.

`serve` is what each service's `main.py` runs (`accord serve <service>`, through the `serve`
that `entry_point` makes for it): it binds the port
first, runs the application's lifespan (migrations, consumers, the outbox relay) before the
server accepts a connection, then serves until SIGINT or SIGTERM. Whatever stops a service
from starting becomes a `StartupError` whose message names the setting to fix and, for a
database, its host and port (never the URL, which may hold a password): `explain` is the one
mapping from an exception to that message, used by `serve` and by `accord up`.

The log format (`configure_logging`) and the line per request (`RequestLog`) are here too, so
that a service logs the same way whether `accord serve` or `accord up` runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal, Protocol, TypeVar

import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.kit.logs import JsonLines, Redacting
from services.kit.settings import BaseServiceSettings, ServiceSettings
from services.kit.tracing import SPAN_IDS

SettingsT = TypeVar("SettingsT", bound=BaseServiceSettings)

log = logging.getLogger("accord.startup")

LOG_FORMAT: Final = "%(asctime)s %(name)-20s %(message)s"
# Chatty at INFO; their warnings and errors still show. uvicorn's INFO lines are its start and
# stop messages, which the services replace with one line each.
QUIET_LOGGERS: Final = ("botocore", "aiosqlite", "alembic", "httpx", "uvicorn.error")

# A message that starts with the setting it is about.
SETTING_FIRST: Final = re.compile(r"[A-Z][A-Z0-9_]+: ")
# Modules whose OS errors are the database's: a refused or unresolvable PostgreSQL host.
DATABASE_MODULES: Final = ("asyncpg", "sqlalchemy", "aiosqlite", "alembic")


def configure_logging(quiet: Iterable[str] = (), *, log_format: str | None = None) -> None:
    """Log at INFO to stderr as `<time> <logger> <message>`, or one JSON object per line
    (`log_format` "json", or `ACCORD_LOG_FORMAT=json`: `services.kit.logs`), never with a
    secret in it; `QUIET_LOGGERS` and `quiet` at WARNING; uvicorn's access log is replaced by
    `RequestLog`."""
    chosen = (log_format or os.environ.get("ACCORD_LOG_FORMAT") or "text").strip().lower()
    if chosen not in ("text", "json"):
        raise ValueError(f"ACCORD_LOG_FORMAT: text or json, not {chosen!r}")
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLines() if chosen == "json" else Redacting(LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in (*QUIET_LOGGERS, *quiet):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True


class StartupError(Exception):
    """A service cannot start; the message (one line) names the setting to fix."""


@dataclass(frozen=True)
class DatabaseSetting:
    """The setting that names a service's database (`AUTH_DATABASE_URL`) and its value."""

    name: str
    url: str

    @classmethod
    def of(cls, settings: ServiceSettings) -> DatabaseSetting:
        """The database of a service's settings, named by its variable (`USER_DATABASE_URL`)."""
        return cls(f"{settings.prefix()}DATABASE_URL", settings.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def where(self) -> str:
        """`host:port` of a PostgreSQL database, the file of a SQLite one; never a password."""
        try:
            url = make_url(self.url)
        except ArgumentError:
            return "(a URL that cannot be parsed)"
        if url.get_backend_name() == "sqlite":
            return url.database or ":memory:"
        return f"{url.host or 'localhost'}:{url.port or 5432}"

    def describe(self) -> str:
        """The database as a person names it: `the SQLite database .accord/auth.db`,
        `the database "accord" on the PostgreSQL server at 127.0.0.1:5432`."""
        try:
            url = make_url(self.url)
        except ArgumentError:
            return "the database"
        if url.get_backend_name() == "sqlite":
            return f"the SQLite database {self.where()}"
        return f'the database "{url.database}" on the PostgreSQL server at {self.where()}'

    def scrub(self, text: str) -> str:
        """`text` without the URL's password, should a driver have quoted it."""
        with contextlib.suppress(ArgumentError):
            password = make_url(self.url).password
            if password:
                return text.replace(str(password), "***")
        return text


def explain(
    error: BaseException, *, service: str, database: DatabaseSetting | None
) -> StartupError:
    """What stopped `service` (with `database`, None for a service that keeps none) from
    starting, in one line naming the setting to fix."""
    if database is None:
        database = DatabaseSetting("", "")
    for cause in _causes(error):
        message = _explain_database(cause, database) if database.name else None
        if message is not None:
            return StartupError(database.scrub(message))
    for cause in _causes(error):
        if type(cause).__name__ == "EndpointConnectionError":  # botocore's, for SNS/SQS
            return StartupError(f"AWS_ENDPOINT_URL: cannot reach SNS/SQS: {_line(cause)}")
    if isinstance(error, StartupError):
        return error
    line = _line(error)
    if SETTING_FIRST.match(line):  # it names its setting already: `USER_QUEUE: ...`
        return StartupError(database.scrub(line))
    return StartupError(
        database.scrub(f"the {service} service could not start: {type(error).__name__}: {line}")
    )


def _explain_database(error: BaseException, database: DatabaseSetting) -> str | None:
    setting, where = database.name, database.where()
    sqlstate = getattr(error, "sqlstate", None)  # asyncpg's errors carry PostgreSQL's code
    if sqlstate == "3D000":
        name = _database_name(database.url)
        return (
            f'{setting}: the database "{name}" does not exist on the PostgreSQL server at '
            f"{where}; create it, or point {setting} at one that exists"
        )
    if isinstance(sqlstate, str) and sqlstate.startswith("28"):
        return f"{setting}: the PostgreSQL server at {where} refused the login: {_line(error)}"
    if sqlstate == "57P03":
        return f"{setting}: the PostgreSQL server at {where} is not accepting connections yet"
    if type(error).__name__ == "CommandError" and type(error).__module__.startswith("alembic"):
        hint = (
            " (its alembic_version names a revision this version of the service does not have)"
            if "Can't locate revision" in str(error)
            else ""
        )
        return f"{setting}: migrating {database.describe()} failed: {_line(error)}{hint}"
    if isinstance(error, sqlite3.Error):
        return f"{setting}: {database.describe()}: {_line(error)}"
    if isinstance(error, OSError) and _raised_in(error, DATABASE_MODULES):
        if database.is_sqlite:
            return f"{setting}: {database.describe()}: {_reason(error)}"
        return f"{setting}: cannot reach the PostgreSQL server at {where} ({_reason(error)})"
    if type(error).__module__.startswith(("sqlalchemy", "asyncpg")) and sqlstate is not None:
        return f"{setting}: {database.describe()}: {_line(error)}"
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    """`error`, then the driver's error SQLAlchemy wrapped (`.orig`), what it was raised from,
    and what it was raised while handling (unless `raise … from None` hid that)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        context = None if current.__suppress_context__ else current.__context__
        for linked in (getattr(current, "orig", None), current.__cause__, context):
            if isinstance(linked, BaseException):
                pending.append(linked)


def _raised_in(error: BaseException, modules: tuple[str, ...]) -> bool:
    tb: TracebackType | None = error.__traceback__
    while tb is not None:
        name = str(tb.tb_frame.f_globals.get("__name__", ""))
        if name.split(".", 1)[0] in modules:
            return True
        tb = tb.tb_next
    return False


def _reason(error: OSError) -> str:
    if isinstance(error, socket.gaierror):
        return "unknown host"
    if isinstance(error, TimeoutError):
        return "timed out"
    if error.errno is not None and error.errno in errno.errorcode:
        # Not `strerror`: asyncio puts its own words there ("Connect call failed (...)").
        return os.strerror(error.errno).lower()
    return _line(error)


def _line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _database_name(url: str) -> str:
    with contextlib.suppress(ArgumentError):
        return make_url(url).database or ""
    return ""


def listening_socket(
    host: str, port: int, *, setting: str = "--port", host_setting: str = "--host"
) -> socket.socket:
    """A socket bound to `host`:`port` for the server, or `StartupError` naming `setting`
    when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn does: connections in TIME_WAIT do not make a port busy.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by each accepted connection: an answer's head and body go out at once. Without
    # it, the body waits for the client's delayed ACK of the head (about 40 ms on Linux) on
    # every request of a keep-alive connection after its first (bench/gateway_bench.py).
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} is already in use on {host}; stop what uses it or choose "
                f"another port with {setting}"
            ) from None
        raise StartupError(
            f"cannot listen on {host}:{port} ({_reason(error)}); check {host_setting} and {setting}"
        ) from None
    return listener


class Lifespan:
    """An ASGI application's lifespan run beside the server rather than by it: `startup()`
    raises what the application raised (so it can be explained), `shutdown()` runs after the
    server has stopped."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        scope: Scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": {},
        }
        self._task = asyncio.create_task(self._run(scope), name="lifespan")
        await self._inbox.put({"type": "lifespan.startup"})
        reply = await self._reply()
        if reply is not None and reply["type"] == "lifespan.startup.complete":
            return
        await self._task  # raises what the application raised
        raise RuntimeError(str((reply or {}).get("message") or "the application did not start"))

    async def _run(self, scope: Scope) -> None:
        await self.app(scope, self._inbox.get, self._outbox.put)

    async def shutdown(self) -> None:
        task = self._task
        if task is None or task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        reply = await self._reply()
        try:
            await task
        except Exception as error:
            log.error("shutting down failed: %s: %s", type(error).__name__, _line(error))
            return
        if reply is not None and reply["type"] == "lifespan.shutdown.failed":
            log.error("shutting down failed: %s", _line(RuntimeError(reply.get("message", ""))))

    async def cancel(self) -> None:
        """Abandon a start-up under way (the process is being interrupted)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _reply(self) -> Message | None:
        """The application's next message, or None when it ended without sending one."""
        assert self._task is not None
        getting = asyncio.ensure_future(self._outbox.get())
        await asyncio.wait({getting, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if getting.done():
            return getting.result()
        getting.cancel()
        return None


class RequestLog:
    """One log line per request: `accord.auth  POST /api/v1/auth/register 201 (12 ms)`."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.log = logging.getLogger(f"accord.{name}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if not scope["path"].startswith(("/health", "/docs")):
                elapsed = (time.perf_counter() - started) * 1000
                route = scope.get("route")
                self.log.info(
                    "%s %s %d (%.0f ms)",
                    scope["method"],
                    scope["path"],
                    status,
                    elapsed,
                    # For JSON lines: the request's span (`ServerSpans`) has ended by now.
                    extra={
                        **scope.get(SPAN_IDS, {}),
                        "operation": getattr(route, "operation_id", None),
                        "status": status,
                        "duration_ms": round(elapsed, 1),
                    },
                )


class Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its caller and says when it listens."""

    def __init__(self, config: uvicorn.Config, started: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._on_started = started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            self._on_started()


def server_config(app: ASGIApp, *, lifespan: Literal["on", "off"] = "off") -> uvicorn.Config:
    """How every Accord server runs: a service's lifespan beside it (`Lifespan`), no uvicorn
    logging of its own, and client addresses from the peer: only the auth service decides
    which proxies' X-Forwarded-For to believe (`AUTH_TRUSTED_PROXIES`)."""
    return uvicorn.Config(
        app, lifespan=lifespan, log_config=None, access_log=False, proxy_headers=False
    )


def serve(
    app: ASGIApp,
    *,
    service: str,
    host: str,
    port: int,
    database: DatabaseSetting | None,
    access_log: bool = True,
    ready: Callable[[str], None] | None = None,
    draining: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve `app` on `host`:`port` until SIGINT or SIGTERM; `StartupError` if it cannot
    start. `ready` is called with the service's URL once it accepts connections.

    Stopping: the server stops accepting connections and finishes the requests under way
    while `draining` (the app's consumers: `services.kit.composition.Draining`) stops
    receiving and finishes the messages in hand; then the app's lifespan shuts down (the
    outbox relay, the clients), and the process exits 0."""
    if not logging.getLogger().handlers:
        configure_logging()
    listener = listening_socket(host, port)
    try:
        asyncio.run(
            _serve(
                RequestLog(app, service) if access_log else app,
                listener,
                service=service,
                database=database,
                url=f"http://{host}:{listener.getsockname()[1]}",
                ready=ready,
                draining=draining,
            )
        )
    finally:
        listener.close()


async def _serve(
    app: ASGIApp,
    listener: socket.socket,
    *,
    service: str,
    database: DatabaseSetting | None,
    url: str,
    ready: Callable[[str], None] | None,
    draining: Callable[[], Awaitable[None]] | None = None,
) -> None:
    def started() -> None:
        if ready is not None:
            ready(url)
        else:
            log.info("%s service on %s", service, url)

    server = Server(server_config(app), started)
    interrupted = asyncio.Event()
    drained: list[asyncio.Future[None]] = []

    def interrupt() -> None:
        if interrupted.is_set():  # a second Ctrl-C: stop waiting for open connections
            server.force_exit = True
        elif draining is not None and server.started:
            # Beside the server's own stop, not after it: no message is taken any more while
            # the last requests finish.
            drained.append(asyncio.ensure_future(draining()))
        interrupted.set()
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    lifespan = Lifespan(app)
    starting = asyncio.ensure_future(lifespan.startup())
    waiting = asyncio.ensure_future(interrupted.wait())
    await asyncio.wait({starting, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if not starting.done():  # interrupted while starting
        starting.cancel()
        await lifespan.cancel()
        return
    try:
        starting.result()
    except Exception as error:
        log.debug("%s service could not start", service, exc_info=error)
        raise explain(error, service=service, database=database) from None
    try:
        await server.serve(sockets=[listener])
    finally:
        if drained:
            await asyncio.gather(*drained, return_exceptions=True)
        await lifespan.shutdown()


def main(serve: Callable[[], None]) -> None:
    """Run a service's `serve` as a program (`python -m services.auth.main`): a failure to
    start is told on stderr, without a traceback, with exit status 2."""
    try:
        serve()
    except (StartupError, ValueError) as error:  # a SettingsError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


class Serve(Protocol):
    """A service's `serve` (`services.<service>.main.serve`), as `accord serve` calls it."""

    def __call__(
        self,
        port: int = ...,
        host: str = ...,
        *,
        around: Callable[[FastAPI], ASGIApp] | None = None,
        ready: Callable[[str], None] | None = None,
    ) -> None: ...


def entry_point(
    load_settings: Callable[[], SettingsT],
    create_app: Callable[[SettingsT], FastAPI],
    *,
    default_port: int,
    access_log: Callable[[SettingsT], bool] = lambda _: True,
) -> Serve:
    """The `serve` of a service's `main.py`: its settings are read and its app made before a
    port is bound, so that a wrong setting stops it first. `access_log` says from the settings
    whether to log a line per request (`RequestLog`)."""

    def serve_service(
        port: int = default_port,
        host: str = "127.0.0.1",
        *,
        around: Callable[[FastAPI], ASGIApp] | None = None,
        ready: Callable[[str], None] | None = None,
    ) -> None:
        """Serve the service until interrupted. A wrong setting (`SettingsError`), or a
        database, queue, key ring or port it cannot use (`StartupError`), stops it before it
        starts, naming the setting to fix. `around` adds to the app (the harness's /docs
        pages); `ready` is told the URL once it accepts connections."""
        settings = load_settings()
        app = create_app(settings)
        serve(
            app if around is None else around(app),
            service=settings.service(),
            host=host,
            port=port,
            database=(
                DatabaseSetting.of(settings) if isinstance(settings, ServiceSettings) else None
            ),
            access_log=access_log(settings),
            ready=ready,
            # The app's consumers, stopped first (`services.kit.composition.Draining`).
            draining=getattr(app.state, "draining", None),
        )

    return serve_service
