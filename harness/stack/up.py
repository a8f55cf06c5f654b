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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from harness.project import Project
from harness.provision import Provisioner, topology_from_contracts

log = logging.getLogger("accord.up")


@dataclass(frozen=True)
class ServicePart:
    """One service of the platform: its package, port flag and contracts."""

    name: str
    env_prefix: str
    openapi: str
    asyncapi: str


SERVICES = (
    ServicePart("auth", "AUTH_", "auth-service", "auth-service"),
    ServicePart("user", "USER_", "user-service", "user-service"),
    ServicePart("notification", "NOTIFICATION_", "notification-service", "notification-service"),
)


@dataclass
class StackConfig:
    """What `accord up` starts, where, and with which state."""

    project: Project
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(
        default_factory=lambda: {
            "auth": 3001,
            "user": 3002,
            "notification": 3003,
            "aws": 4566,
            "smtp": 1025,
            "mail": 8025,
        }
    )
    endpoint: str | None = None  # an external SNS/SQS endpoint instead of the embedded moto
    reset: bool = False
    state_dir: Path | None = None

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
    "auth": "auth service",
    "user": "user service",
    "notification": "notification service",
    "aws": "embedded AWS emulator",
    "smtp": "SMTP sink",
    "mail": "mailbox web page",
}


class PortInUseError(RuntimeError):
    """A port `accord up` needs is taken; the message names the flag that changes it."""


def check_ports(config: StackConfig) -> None:
    wanted = {k: v for k, v in config.ports.items() if not (k == "aws" and config.endpoint)}
    seen: dict[int, str] = {}
    for part, port in wanted.items():
        if port in seen:
            raise PortInUseError(
                f"port {port} is given to both the {ROLES[seen[port]]} and the {ROLES[part]}"
            )
        seen[port] = part
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((config.host, port))
            except OSError:
                raise PortInUseError(
                    f"port {port} ({ROLES[part]}) is already in use on {config.host}; "
                    f"stop what uses it or choose another port with {FLAGS[part]}"
                ) from None


def environment(config: StackConfig, endpoint: str, api_key: str) -> dict[str, str]:
    """The environment the services are configured from (as they would be in production)."""
    state = config.state
    auth = config.url("auth")
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        "AUTH_DATABASE_URL": f"sqlite:///{state / 'auth.db'}",
        "AUTH_SIGNING_KEY_PATH": str(state / "auth-signing-key.pem"),
        "AUTH_ISSUER": auth,
        "AUTH_SERVICE_API_KEY": api_key,
        "AUTH_OUTBOX_POLL_SECONDS": "1",
        "USER_DATABASE_URL": f"sqlite:///{state / 'user.db'}",
        "USER_AUTH_SERVICE_URL": auth,
        "USER_AUTH_SERVICE_API_KEY": api_key,
        "USER_JWKS_URL": f"{auth}/.well-known/jwks.json",
        "USER_ISSUER": auth,
        "NOTIFICATION_DATABASE_URL": f"sqlite:///{state / 'notification.db'}",
        "NOTIFICATION_JWKS_URL": f"{auth}/.well-known/jwks.json",
        "NOTIFICATION_ISSUER": auth,
        "NOTIFICATION_SMTP_HOST": config.host,
        "NOTIFICATION_SMTP_PORT": str(config.ports["smtp"]),
        "NOTIFICATION_SMTP_TLS": "none",
        "NOTIFICATION_LINK_BASE_URL": auth,
    }


class RequestLog:
    """One log line per request: `[auth] POST /api/v1/auth/register 201 (12 ms)`."""

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
                self.log.info(
                    "%s %s %d (%.0f ms)",
                    scope["method"],
                    scope["path"],
                    status,
                    (time.perf_counter() - started) * 1000,
                )


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to `accord up`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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


def build_service(part: ServicePart, config: StackConfig) -> Any:
    """The service's app from its own settings loader and app factory, with docs mounted."""
    from harness.stack.docs import docs_app

    settings_module = importlib.import_module(f"services.{part.name}.settings")
    app_module = importlib.import_module(f"services.{part.name}.app")
    settings = settings_module.load_settings()
    app = app_module.create_app(settings)
    contracts = config.project.contracts_dir
    app.mount(
        "/docs",
        docs_app(
            contracts / "openapi" / f"{part.openapi}.yaml",
            contracts / "asyncapi" / f"{part.asyncapi}.yaml",
        ),
    )
    return RequestLog(app, part.name)


async def wait_ready(url: str, stop: asyncio.Event, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while not stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return True
            await asyncio.sleep(0.1)
    return False


def stack_file(config: StackConfig, endpoint: str) -> dict[str, Any]:
    services = {
        part.name: {
            "url": config.url(part.name),
            "docs": f"{config.url(part.name)}/docs",
            "events": f"{config.url(part.name)}/docs/events",
            "ready": f"{config.url(part.name)}/health/ready",
        }
        for part in SERVICES
    }
    return {
        "services": services,
        "aws": {"endpoint": endpoint, "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")},
        "smtp": {"host": config.host, "port": config.ports["smtp"]},
        "mail": {"url": config.url("mail"), "api": f"{config.url('mail')}/api/messages"},
        "state": str(config.state),
        "pid": os.getpid(),
    }


async def run(
    config: StackConfig,
    say: Callable[[str], None],
    stop: asyncio.Event | None = None,
) -> None:
    """Start every part, report readiness through `say`, and run until `stop` is set."""
    from harness.stack.smtp import SmtpSink, mail_app

    stop = stop or asyncio.Event()
    check_ports(config)
    if config.reset and config.state.exists():
        shutil.rmtree(config.state)
        say(f"reset: removed {config.state}")
    config.state.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    moto = None
    endpoint = config.endpoint
    if endpoint is None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        moto = ThreadedMotoServer(ip_address=config.host, port=config.ports["aws"], verbose=False)
        moto.start()
        endpoint = config.url("aws")
        say(f"✓ AWS emulator (moto) on {endpoint}")
    else:
        say(f"✓ using the SNS/SQS endpoint {endpoint}")

    key_file = config.state / "service-api-key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(32))
        key_file.chmod(0o600)
    env = environment(config, endpoint, key_file.read_text().strip())

    sink = SmtpSink(config.host, config.ports["smtp"])
    servers: list[QuietServer] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        with patched_environ(env):
            from services.kit.aws import BusLocation

            location = BusLocation.detect()
            changes = await asyncio.to_thread(
                Provisioner(location.sns(), location.sqs()).apply,
                topology_from_contracts(config.project),
            )
            created = sum(change.action != "unchanged" for change in changes)
            say(f"✓ provisioned {len(changes)} topics, queues and subscriptions ({created} new)")
            sink.start()
            say(f"✓ SMTP sink on {config.host}:{config.ports['smtp']}")
            apps: list[tuple[str, Any]] = [("mail", mail_app(sink.mailbox))]
            for part in SERVICES:
                apps.append((part.name, build_service(part, config)))
            for name, app in apps:
                server = QuietServer(
                    uvicorn.Config(
                        app,
                        host=config.host,
                        port=config.ports[name],
                        log_config=None,
                        access_log=False,
                        lifespan="on",
                    )
                )
                servers.append(server)
                tasks.append(asyncio.create_task(server.serve(), name=f"serve:{name}"))
            say(f"✓ mailbox on {config.url('mail')}")
            for part in SERVICES:
                ready = await wait_ready(f"{config.url(part.name)}/health/ready", stop)
                if not ready:
                    if stop.is_set():
                        return
                    raise RuntimeError(f"the {part.name} service did not become ready")
                say(f"✓ {part.name} service on {config.url(part.name)}  (docs: /docs)")
        (config.state / "stack.json").write_text(json.dumps(stack_file(config, endpoint), indent=2))
        say(f"ready in {time.perf_counter() - started:.1f} s; stack: {config.state / 'stack.json'}")
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    finally:
        for server in servers:
            server.should_exit = True
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            sink.stop()
        if moto is not None:
            moto.stop()
        with contextlib.suppress(FileNotFoundError):
            (config.state / "stack.json").unlink()


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
