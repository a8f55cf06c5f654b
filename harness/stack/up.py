"""`accord up`: the whole platform on one machine, in one process, with embedded defaults.

In order: an embedded moto server on 127.0.0.1:4566 (or the endpoint in `AWS_ENDPOINT_URL`,
e.g. a LocalStack you run), provisioned from the AsyncAPI bindings; an SMTP sink on 1025 with
its mailbox on 8025; then the auth, user and notification services (each runs its own
migrations, consumer and outbox relay). State lives in `.accord/`; `.accord/stack.json` lists
every URL. Services are configured the way they are in production, through their environment
variables, so `accord up` exercises the same code paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from harness.bus.provision import Provisioner, topology_from_contracts
from harness.project import Project, ServiceEntry
from harness.stack.smtp import SmtpSink
from services.kit.startup import (
    DatabaseSetting,
    Lifespan,
    RequestLog,
    Server,
    StartupError,
    explain,
    listening_socket,
    server_config,
)
from services.kit.tracing import SpanStore, Tracing

if TYPE_CHECKING:
    from fastapi import FastAPI

    from harness.replay.recorder import Recorder
    from services.kit.aws import BusLocation
    from services.kit.topology import Topology

log = logging.getLogger("accord.up")


# The parts of the stack that are not services, and their default ports.
INFRASTRUCTURE_PORTS = {"aws": 4566, "smtp": 1025, "mail": 8025}


@dataclass
class StackConfig:
    """What `accord up` starts, where, and with which state."""

    project: Project
    host: str = "127.0.0.1"
    # Ports by part: each service's (`[[tool.accord.service]]`) and the infrastructure's
    # (INFRASTRUCTURE_PORTS). Those not given keep their defaults.
    ports: dict[str, int] = field(default_factory=dict)
    endpoint: str | None = None  # an external SNS/SQS endpoint instead of the embedded moto
    reset: bool = False
    state_dir: Path | None = None
    # Which services to start (None: every one; tests start some later), and database URLs
    # instead of SQLite.
    services: tuple[str, ...] | None = None
    database_urls: dict[str, str] = field(default_factory=dict)
    # Extra environment for the services (tests shorten retry delays).
    extra_env: dict[str, str] = field(default_factory=dict)
    # Where to record every event that crosses the bus (`accord up --record FILE`).
    record: Path | None = None
    # Services replaced by the HTTP mock of their OpenAPI contract (`accord up --mock NAME`).
    mock: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        defaults = {entry.name: entry.port for entry in self.project.services}
        unknown = set(self.ports) - defaults.keys() - INFRASTRUCTURE_PORTS.keys()
        if unknown:
            raise ValueError(f"no part of the stack is called {', '.join(sorted(unknown))}")
        self.ports = defaults | INFRASTRUCTURE_PORTS | self.ports

    @property
    def parts(self) -> tuple[ServiceEntry, ...]:
        """Every service of the project, in the order they start."""
        return self.project.services

    @property
    def starting(self) -> tuple[str, ...]:
        """The services `start` starts."""
        if self.services is None:
            return tuple(entry.name for entry in self.parts)
        return self.services

    @property
    def state(self) -> Path:
        return self.state_dir or self.project.root / ".accord"

    def url(self, part: str) -> str:
        return f"http://{self.host}:{self.ports[part]}"


FLAGS = {
    "auth": "--auth-port",
    "user": "--user-port",
    "notification": "--notification-port",
    "aws": "--aws-port",
    "smtp": "--smtp-port",
    "mail": "--mail-port",
}
ROLES = {
    "aws": "embedded AWS emulator",
    "smtp": "SMTP sink",
    "mail": "mailbox web page",
}


def flag(part: str) -> str:
    """The option of `accord up` that sets the part's port."""
    return FLAGS.get(part, f"--port {part}=PORT")


def role(part: str) -> str:
    """The part as a message names it: "the user service", "the SMTP sink"."""
    return ROLES.get(part, f"{part} service")


class PortInUseError(RuntimeError):
    """A port `accord up` needs is taken; the message names the flag that changes it."""


def check_ports(config: StackConfig) -> None:
    wanted = {k: v for k, v in config.ports.items() if not (k == "aws" and config.endpoint)}
    seen: dict[int, str] = {}
    for part, port in wanted.items():
        if port in seen:
            raise PortInUseError(
                f"port {port} is given to both the {role(seen[port])} and the {role(part)}"
            )
        seen[port] = part
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As the servers will: connections in TIME_WAIT do not make a port busy.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((config.host, port))
            except OSError:
                raise PortInUseError(
                    f"port {port} ({role(part)}) is already in use on {config.host}; "
                    f"stop what uses it or choose another port with {flag(part)}"
                ) from None


def has_database(name: str) -> bool:
    """Whether the service keeps a database: it has an Alembic history (`migrations/`)."""
    package = importlib.import_module(f"services.{name}")
    return (Path(package.__file__ or "").parent / "migrations").is_dir()


def environment(config: StackConfig, endpoint: str, api_key: str) -> dict[str, str]:
    """The environment the services are configured from (as they would be in production).

    Every service gets, under its prefix (`USER_` for `user`), the way to each other service
    (`USER_AUTH_SERVICE_URL`, ...), what verifies the auth service's tokens (`*_JWKS_URL`,
    `*_ISSUER`), the service credential (`*_AUTH_SERVICE_API_KEY`) and, if it keeps one, its
    database (migrated by the stack before it starts). A setting a service does not declare
    is ignored by it. Then what only the auth and notification services need."""
    state = config.state
    auth = config.url("auth")
    env = {
        # The stack is local mode by design (it says so once, at start-up).
        "ACCORD_ENV": os.environ.get("ACCORD_ENV", "").strip() or "local",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    }
    for part in config.parts:
        prefix = part.env_prefix
        if has_database(part.name):
            default = f"sqlite:///{state / part.name}.db"
            env[f"{prefix}DATABASE_URL"] = config.database_urls.get(part.name, default)
            env[f"{prefix}MIGRATE_ON_START"] = "false"
        for other in config.parts:
            if other.name != part.name:
                env[f"{prefix}{other.env_prefix}SERVICE_URL"] = config.url(other.name)
        if part.name != "auth":
            env[f"{prefix}AUTH_SERVICE_API_KEY"] = api_key
            env[f"{prefix}JWKS_URL"] = f"{auth}/.well-known/jwks.json"
            env[f"{prefix}ISSUER"] = auth
    return (
        env
        | {
            "AUTH_SIGNING_KEY_PATH": str(state / "auth-signing-key.pem"),
            "AUTH_ISSUER": auth,
            "AUTH_SERVICE_API_KEY": api_key,
            "AUTH_OUTBOX_POLL_SECONDS": "1",
            "NOTIFICATION_SMTP_HOST": config.host,
            "NOTIFICATION_SMTP_PORT": str(config.ports["smtp"]),
            "NOTIFICATION_SMTP_TLS": "none",
            # The links in emails open the mailbox's stand-in pages, which call the auth API.
            "NOTIFICATION_LINK_BASE_URL": config.url("mail"),
        }
        | config.extra_env
    )


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def migrate(config: StackConfig, env: dict[str, str]) -> list[str]:
    """Run the Alembic history of each service that keeps a database against it, one after
    the other; the names of the services migrated."""
    from services.kit.migrations import upgrade

    migrated = []
    for part in config.parts:
        if not has_database(part.name):
            continue
        history = Path(importlib.import_module(f"services.{part.name}").__file__ or "").parent
        setting = f"{part.env_prefix}DATABASE_URL"
        database = DatabaseSetting(setting, env[setting])
        try:
            await upgrade(database.url, history / "migrations")
        except Exception as error:
            raise explain(error, service=part.name, database=database) from None
        migrated.append(part.name)
    return migrated


def with_docs(
    app: FastAPI, part: ServiceEntry, root: Path, services: Mapping[str, str] | None = None
) -> FastAPI:
    """`app` with its contracts' pages mounted: Swagger UI at /docs, the events at
    /docs/events (`accord up`, `accord serve`). `services` maps names to docs URLs."""
    from harness.stack.docs import docs_app

    asyncapi = root / part.asyncapi if part.asyncapi is not None else None
    app.mount("/docs", docs_app(root / part.openapi, asyncapi, services=services))
    return app


def service_banner(name: str, url: str, *, docs: bool = True) -> str:
    """The lines that say a service is up, with every URL it serves."""
    lines = [f"✓ {name} service on {url}"]
    if docs:
        lines += [f"    API docs  {url}/docs", f"    events    {url}/docs/events"]
    return "\n".join(lines)


def build_service(part: ServiceEntry, config: StackConfig, spans: SpanStore | None = None) -> Any:
    """The service's app from its own settings loader and app factory, with docs mounted, and
    its spans kept in `spans` (the console's store) as well as wherever OTLP sends them."""
    settings_module = importlib.import_module(f"services.{part.name}.settings")
    app_module = importlib.import_module(f"services.{part.name}.app")
    settings = settings_module.load_settings()
    service = app_module.create_app(settings)
    tracing = getattr(service.state, "tracing", None)
    if spans is not None and isinstance(tracing, Tracing):
        tracing.export_to(spans)
    app = with_docs(
        service,
        part,
        config.project.root,
        services={other.name: f"{config.url(other.name)}/docs" for other in config.parts},
    )
    return RequestLog(app, part.name)


READINESS_PATH = "/health/ready"


def readiness_path(project: Project, part: ServiceEntry) -> str | None:
    """`/health/ready` when the service's contract has it (every service should: a load
    balancer asks it); else None, and any answer means the service is up (a new service
    before its probes are written)."""
    import yaml

    with contextlib.suppress(OSError, yaml.YAMLError):
        contract = yaml.safe_load((project.root / part.openapi).read_text(encoding="utf-8"))
        if READINESS_PATH in (contract.get("paths") or {}):
            return READINESS_PATH
    return None


async def wait_ready(
    url: str, stop: asyncio.Event, timeout: float = 60, *, any_answer: bool = False
) -> bool:
    """Until `url` answers 200 (with `any_answer`, anything at all), `stop` is set or
    `timeout` seconds have passed; whether it answered."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while not stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200 or any_answer:
                    return True
            await asyncio.sleep(0.1)
    return False


def private_state_directory(state: Path) -> None:
    """Create the stack's state directory (databases, keys) with mode 0700; one made by an
    older version, with a looser mode, is tightened."""
    from services.kit.database import create_private_directory

    create_private_directory(state)
    state.chmod(0o700)


def stack_file(config: StackConfig, endpoint: str) -> dict[str, Any]:
    services = {
        part.name: {
            "url": config.url(part.name),
            "docs": f"{config.url(part.name)}/docs",
            "events": f"{config.url(part.name)}/docs/events",
            "ready": f"{config.url(part.name)}/health/ready",
        }
        for part in config.parts
    }
    return {
        "services": services,
        "aws": {"endpoint": endpoint, "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")},
        "smtp": {"host": config.host, "port": config.ports["smtp"]},
        "mail": {"url": config.url("mail"), "api": f"{config.url('mail')}/api/messages"},
        "state": str(config.state),
        "pid": os.getpid(),
    }


class Stack:
    """The running platform: start it, start or stop single parts, stop it all."""

    def __init__(self, config: StackConfig, say: Callable[[str], None]) -> None:
        self.config = config
        self.say = say
        self.env: dict[str, str] = {}
        self.endpoint = ""
        self.sink: SmtpSink | None = None
        # Every service's spans, for the console's event-flow and trace pages.
        self.spans = SpanStore()
        self._moto: Any = None
        self._servers: dict[str, Server] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._failed = asyncio.Event()
        self.recorder: Recorder | None = None
        # The stack.json this stack wrote, the only one its stop removes: a start refused (a
        # port taken by a running stack) must leave the running stack's file alone.
        self._stack_file: Path | None = None

    async def start(self, stop: asyncio.Event | None = None) -> None:
        """Start every part and wait until each service is ready."""
        from harness.stack.smtp import mail_app

        config, say = self.config, self.say
        check_ports(config)
        if config.reset and config.state.exists():
            shutil.rmtree(config.state)
            say(f"reset: removed {config.state}")
        private_state_directory(config.state)
        started = time.perf_counter()
        self.endpoint = config.endpoint or config.url("aws")
        if config.endpoint is None:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            self._moto = ThreadedMotoServer(
                ip_address=config.host, port=config.ports["aws"], verbose=False
            )
            self._moto.start()
            say(f"✓ AWS emulator (moto) on {self.endpoint}")
        else:
            say(f"✓ using the SNS/SQS endpoint {self.endpoint}")
        key_file = config.state / "service-api-key"
        if not key_file.exists():
            key_file.write_text(secrets.token_urlsafe(32))
            key_file.chmod(0o600)
        self.env = environment(config, self.endpoint, key_file.read_text().strip())
        if not os.environ.get("ACCORD_ENV", "").strip():
            # One line for the whole stack instead of one warning per service.
            say(
                f"! local mode (ACCORD_ENV is unset): a generated service key and signing key "
                f"in {config.state}, SQLite, the embedded emulator; not for production"
            )
        with patched_environ(self.env):
            from services.kit.aws import BusLocation

            location = BusLocation.detect()
            topology = topology_from_contracts(config.project)
            changes = await asyncio.to_thread(
                Provisioner(location.sns(), location.sqs()).apply, topology
            )
        created = sum(change.action != "unchanged" for change in changes)
        say(f"✓ provisioned {len(changes)} topics, queues and subscriptions ({created} new)")
        if config.record is not None:
            await self._start_recording(config.record, topology, location)
        migrated = await migrate(config, self.env)
        say(f"✓ migrated the {_and(migrated)} databases")
        self.sink = SmtpSink(config.host, config.ports["smtp"])
        self.sink.start()
        say(f"✓ SMTP sink on {config.host}:{config.ports['smtp']}")
        self._serve("mail", mail_app(self.sink.mailbox, config.url("auth"), spans=self.spans))
        say(
            f"✓ mailbox on {config.url('mail')}\n    as JSON   {config.url('mail')}/api/messages"
            f"\n    events    {config.url('mail')}/events (and traces)"
        )
        for name in config.starting:
            await self.start_service(name, stop)
        self._stack_file = config.state / "stack.json"
        self._stack_file.write_text(json.dumps(stack_file(config, self.endpoint), indent=2))
        say(f"ready in {time.perf_counter() - started:.1f} s; stack: {config.state / 'stack.json'}")

    async def _start_recording(self, path: Path, topology: Topology, location: BusLocation) -> None:
        from harness.replay.recorder import Recorder

        topics = topology.topics
        if len(topics) != 1:
            names = ", ".join(topic.name for topic in topics)
            raise ValueError(f"--record records one topic; the contracts declare: {names}")
        self.recorder = await Recorder.on_topic(location, topics[0].name, path, append=True)
        await self.recorder.start()
        self.say(f"✓ recording every event on {topics[0].name} to {path}")

    def _serve(self, name: str, app: Any, lifespan: Lifespan | None = None) -> None:
        """Serve `app` on the part's port. A service's `lifespan` has started already (so that
        a failure to start is explained, not logged by uvicorn); it ends after the server."""
        listener = listening_socket(self.config.host, self.config.ports[name], setting=flag(name))
        server = Server(server_config(app, lifespan="off" if lifespan else "on"))
        self._servers[name] = server

        async def serving() -> None:
            try:
                await server.serve(sockets=[listener])
            finally:
                listener.close()
                if lifespan is not None:
                    await lifespan.shutdown()

        task = asyncio.create_task(serving(), name=f"serve:{name}")
        self._tasks[name] = task

        def exited(_: asyncio.Task[None]) -> None:
            if self._tasks.get(name) is task:  # not stopped on purpose: the stack is broken
                self._failed.set()

        task.add_done_callback(exited)

    async def start_service(
        self,
        name: str,
        stop: asyncio.Event | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start one service (configured from the stack's environment, with `env` over it for
        this service only: e.g. its AWS endpoint behind a fault proxy) and wait until ready."""
        part = self.config.project.service(name)
        if name in self.config.mock:
            await self._start_mock(part, stop or asyncio.Event())
            return
        environ = {**self.env, **(env or {})}
        with patched_environ(environ):
            app = build_service(part, self.config, self.spans)
        setting = f"{part.env_prefix}DATABASE_URL"
        lifespan = Lifespan(app)
        stop = stop or asyncio.Event()
        starting = asyncio.ensure_future(lifespan.startup())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not starting.done():
            starting.cancel()
            await lifespan.cancel()
            raise StartupError(f"stopped while the {name} service was starting")
        try:
            starting.result()
        except Exception as error:
            database = DatabaseSetting(setting, environ[setting]) if setting in environ else None
            raise explain(error, service=name, database=database) from None
        try:
            self._serve(name, app, lifespan)
        except StartupError:  # its port was taken meanwhile
            await lifespan.shutdown()
            raise
        path = readiness_path(self.config.project, part)
        url = f"{self.config.url(name)}{path or '/'}"
        if not await wait_ready(url, stop, any_answer=path is None):
            raise StartupError(f"the {name} service did not become ready at {url}")
        self.say(service_banner(name, self.config.url(name)))

    async def _start_mock(self, part: ServiceEntry, stop: asyncio.Event) -> None:
        """Serve the HTTP mock of the service's OpenAPI contract (harness/mock/http.py) in its
        place: it answers as the contract says, consumes no events, publishes none."""
        from harness.mock.http import build_app

        contract = self.config.project.root / part.openapi
        self._serve(part.name, RequestLog(build_app(contract), part.name))
        url = self.config.url(part.name)
        if not await wait_ready(f"{url}/health/ready", stop):
            raise StartupError(f"the {part.name} mock did not become ready at {url}/health/ready")
        self.say(
            f"✓ {part.name} service MOCKED on {url}, from "
            f"{self.config.project.relative(contract)} (no events consumed or published)"
        )

    async def wait(self, stop: asyncio.Event) -> None:
        """Until `stop` is set or a part dies."""
        stopping = asyncio.create_task(stop.wait())
        failing = asyncio.create_task(self._failed.wait())
        await asyncio.wait([stopping, failing], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        failing.cancel()

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for server in self._servers.values():
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        self._servers.clear()
        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            with contextlib.suppress(Exception):  # the events recorded so far are on disk
                await recorder.stop()
            self.say(f"recorded {recorder.recorded} events to {recorder.path}")
        if self.sink is not None:
            with contextlib.suppress(Exception):
                self.sink.stop()
        if self._moto is not None:
            self._moto.stop()
        if self._stack_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self._stack_file.unlink()
            self._stack_file = None


async def run(
    config: StackConfig,
    say: Callable[[str], None],
    stop: asyncio.Event | None = None,
) -> None:
    """Start every part, report readiness through `say`, and run until `stop` is set."""
    stop = stop or asyncio.Event()
    stack = Stack(config, say)
    try:
        await stack.start(stop)
        await stack.wait(stop)
    finally:
        await stack.stop()


def _and(names: list[str]) -> str:
    """`auth, user and notification`."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def run_until_interrupted(config: StackConfig, say: Callable[[str], None]) -> None:
    """`run` with Ctrl-C (SIGINT) and SIGTERM stopping it cleanly."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(config, say, stop)
        say("stopped")

    asyncio.run(main())
