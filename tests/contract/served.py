"""The three services over real HTTP, each on a free port of 127.0.0.1 (uvicorn in a thread), as
a client or the `schemathesis` command line meets them: with an admin's credential, and with the
user, address and notifications the contracts' examples name, so that those examples meet real
resources rather than 404s.

`served(service, database_url, directory)` starts one; the examples test and the schemathesis
test with default settings use it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from services.kit.events import encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
from services.kit.topology import QueueSpec
from tests import factories

SERVICES = ("auth", "user", "notification")
PASSWORD = "correct-horse-battery-staple"
# The user the contracts' examples name (`userId`), and the address of `addressId`.
EXAMPLE_USER = uuid.UUID("6f1c1e0e-8f3e-4c1a-9d3e-2b7f4a6c9e10")


@dataclass(frozen=True)
class Served:
    """A running service: where it listens, and the `Authorization` value of an admin."""

    service: str
    url: str
    authorization: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _uvicorn(app: Any) -> Iterator[str]:
    """The app served on a free port until the block ends (its lifespan included)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the service did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def _auth(database_url: str, directory: Path) -> Iterator[Served]:
    from services.auth.app import create_app
    from services.auth.grants import grant_role
    from services.auth.settings import Settings

    settings = Settings(
        environment="local",
        database_url=database_url,
        signing_key_path=directory / "signing-key.pem",
        argon2_time_cost=1,
        argon2_memory_cost_kib=1024,
        argon2_parallelism=1,
        # Every request comes from one address; 429 is documented, but a run that meets only
        # 429 would test nothing else.
        registrations_per_address=100_000,
        login_failures_per_address=100_000,
        login_failures_per_account_address=100_000,
        reset_requests_per_address=100_000,
        reset_requests_per_email=100_000,
        verification_requests_per_account=100_000,
    )
    with _uvicorn(create_app(settings)) as url:
        email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
        credentials = {"email": email, "password": PASSWORD}
        registered = httpx.post(f"{url}/api/v1/auth/register", json=credentials)
        assert registered.status_code == 201, registered.text
        asyncio.run(grant_role(database_url, email, "admin"))
        login = httpx.post(f"{url}/api/v1/auth/login", json=credentials)
        assert login.status_code == 200, login.text
        yield Served("auth", url, f"Bearer {login.json()['accessToken']}")


@contextmanager
def _user(database_url: str) -> Iterator[Served]:
    from services.user.app import Adapters, create_app
    from services.user.roles import InMemoryRolesClient
    from services.user.storage import SqlUserStore
    from tests.user.conftest import ADMIN_ROLES, FAST, HOME, Tokens, user_settings

    tokens, admin = Tokens(), uuid.uuid4()
    broker, queue = InMemoryBroker(), f"served-user-{uuid.uuid4().hex[:8]}"
    broker.create_queue(QueueSpec(queue))
    adapters = Adapters(
        store=SqlUserStore(database_url),
        verifier=tokens.verifier(),
        roles=InMemoryRolesClient({admin: ADMIN_ROLES, EXAMPLE_USER: ["user"]}),
        consumer=InMemoryEventConsumer(broker, queue, FAST),
    )
    with _uvicorn(create_app(user_settings(database_url, queue=queue), adapters=adapters)) as url:
        broker.send(queue, encode(factories.user_created(EXAMPLE_USER, email="ada@example.com")))
        deadline = time.monotonic() + 20
        while broker.depth(queue) and time.monotonic() < deadline:
            time.sleep(0.02)
        authorization = tokens.headers(admin, ADMIN_ROLES)["Authorization"]
        created = httpx.post(
            f"{url}/api/v1/users/{EXAMPLE_USER}/addresses",
            json=dict(HOME),
            headers={"Authorization": authorization},
        )
        assert created.status_code == 201, created.text
        yield Served("user", url, authorization)


async def seed_notifications(database_url: str) -> None:
    """Sent and skipped entries about the example user and others, so that lists and cursors
    have something to show."""
    from services.notification import handlers
    from services.notification.domain import NotificationType, SendNotification
    from services.notification.mail import RecordingEmailSender
    from services.notification.rendering import JinjaEmailComposer
    from services.notification.storage import SqlNotificationDatabase
    from tests.notification.support import LINK_BASE

    database = SqlNotificationDatabase(database_url)
    await database.migrate()
    deps = handlers.Dependencies(
        unit_of_work=database.unit_of_work,
        sender=RecordingEmailSender(),
        composer=JinjaEmailComposer(),
        clock=lambda: datetime.now(UTC),
        link_base_url=LINK_BASE,
        claim_lease=timedelta(seconds=5),
    )
    now = deps.clock()
    try:
        for sequence, kind in enumerate(list(NotificationType) * 3, start=2):
            await handlers.send_notification(
                SendNotification(
                    event_id=uuid.uuid4(),
                    event_type="user.email.verification.requested",
                    user_id=EXAMPLE_USER if sequence % 2 else uuid.uuid4(),
                    sequence=sequence,
                    kind=kind,
                    email="ada@example.com",
                    token="tok_" + uuid.uuid4().hex,
                    expires_at=now + timedelta(hours=1 if sequence % 3 else -1),
                ),
                deps,
            )
    finally:
        await database.dispose()


@contextmanager
def _notification(database_url: str) -> Iterator[Served]:
    from services.notification.app import Adapters, create_app
    from services.notification.mail import RecordingEmailSender
    from services.notification.roles import StaticRoleDirectory
    from services.notification.storage import SqlNotificationDatabase
    from tests.notification.support import Tokens, settings_for

    asyncio.run(seed_notifications(database_url))
    tokens = Tokens()
    app = create_app(
        settings_for(database_url),
        adapters=Adapters(
            database=SqlNotificationDatabase(database_url),
            sender=RecordingEmailSender(),
            tokens=tokens.verifier(),
            roles=StaticRoleDirectory({tokens.admin_id: frozenset({"user", "admin"})}),
            consumer=None,
        ),
    )
    with _uvicorn(app) as url:
        yield Served("notification", url, f"Bearer {tokens.admin()}")


@contextmanager
def served(service: str, database_url: str, directory: Path) -> Iterator[Served]:
    """One of the three services, running over HTTP with an admin and the examples' data."""
    if service == "auth":
        with _auth(database_url, directory) as running:
            yield running
    elif service == "user":
        with _user(database_url) as running:
            yield running
    elif service == "notification":
        with _notification(database_url) as running:
            yield running
    else:
        raise ValueError(f"no such service: {service}")
