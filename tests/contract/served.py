"""Every registered service (`[[tool.accord.service]]`) over real HTTP, each on a free port of
127.0.0.1 (uvicorn in a thread), as a client or the `schemathesis` command line meets them: with
an admin's credential, and with the user, address and notifications the contracts' examples
name, so that those examples meet real resources rather than 404s.

`served(service, database_url, directory)` starts one; the examples test and the schemathesis
test with default settings use it. The gateway owns no data: it is served in front of the real
auth and user services (`composed_from`), themselves on ports, the user service verifying the
auth service's tokens with its published keys, confirming admins with it, and making profiles
from the `user.created` events its outbox relay publishes (on an in-memory bus)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr

from harness.bus.provision import topology_from_contracts
from harness.project import Project
from services.kit.consumer import Backoff, ConsumerOptions
from services.kit.events import encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from services.kit.topology import QueueSpec
from tests import factories
from tests.conftest import REPOSITORY

SERVICES = tuple(entry.name for entry in Project.load(REPOSITORY).services)
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
def uvicorn_serving(app: Any) -> Iterator[str]:
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
    with uvicorn_serving(create_app(settings)) as url:
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
    with uvicorn_serving(
        create_app(user_settings(database_url, queue=queue), adapters=adapters)
    ) as url:
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
    with uvicorn_serving(app) as url:
        yield Served("notification", url, f"Bearer {tokens.admin()}")


# The gateway's view of the other services: the bus between auth and user, and the service
# credential they share.
USER_EVENTS_TOPIC = "accord-user-events"
USER_QUEUE = "accord-user-service"
SERVICE_API_KEY = "served-service-credential-long-enough"
HOME = {
    "label": "Home",
    "line1": "12 St James's Square",
    "city": "London",
    "postalCode": "SW1Y 4JH",
    "country": "GB",
}


@dataclass(frozen=True)
class Backends:
    """The auth and user services a gateway is composed from, running over HTTP: their URLs,
    the service credential, the auth service's database, and an admin's `Authorization`."""

    auth_url: str
    user_url: str
    api_key: str
    auth_database_url: str
    admin: str

    def register(self) -> dict[str, Any]:
        """A new account (`registerUser`): its tokens, id and email."""
        email = f"gw-{uuid.uuid4().hex[:12]}@example.com"
        answer = httpx.post(
            f"{self.auth_url}/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert answer.status_code == 201, answer.text
        return {**answer.json(), "email": email}

    def with_profile(self, user: dict[str, Any]) -> dict[str, Any]:
        """Once the user service has made the user's profile from `user.created`, an address
        added to it; the user."""
        headers = {"Authorization": f"Bearer {user['accessToken']}"}
        profile = f"{self.user_url}/api/v1/users/{user['userId']}"
        deadline = time.monotonic() + 20
        while httpx.get(profile, headers=headers).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no profile for {user['userId']} within 20 s")
            time.sleep(0.02)
        added = httpx.post(f"{profile}/addresses", json=dict(HOME), headers=headers)
        assert added.status_code == 201, added.text
        return user

    def deactivated(self) -> dict[str, Any]:
        """A user who deactivated their own account (`deactivateUser`), with the tokens they
        had."""
        user = self.register()
        answer = httpx.post(
            f"{self.auth_url}/api/v1/auth/users/{user['userId']}/deactivate",
            headers={"Authorization": f"Bearer {user['accessToken']}"},
        )
        assert answer.status_code == 204, answer.text
        return user

    def gateway_settings(self, **overrides: Any) -> Any:
        """The gateway's settings to reach these services."""
        from services.gateway.settings import Settings

        return Settings(
            environment="local",
            auth_service_url=self.auth_url,
            auth_service_api_key=SecretStr(self.api_key),
            user_service_url=self.user_url,
            **overrides,
        )


async def _add_example_account(database_url: str) -> None:
    """The account the contracts' examples name (`EXAMPLE_USER`), registered as registration
    commits it (its `user.created` in the outbox), with the id the examples give."""
    from argon2 import PasswordHasher

    from services.auth.domain import USER, Account, AccountStatus, UserCreated
    from services.auth.storage import SqlAuthStore

    store = SqlAuthStore(database_url, clock=lambda: datetime.now(UTC))
    try:
        await store.migrate()
        async with store.unit_of_work() as uow:
            await uow.accounts.add(
                Account(
                    id=EXAMPLE_USER,
                    email="ada@example.com",
                    password_hash=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(
                        PASSWORD
                    ),
                    email_verified=True,
                    roles=frozenset({USER}),
                    status=AccountStatus.ACTIVE,
                    created_at=datetime.now(UTC),
                )
            )
            await uow.record(UserCreated(EXAMPLE_USER, "ada@example.com"))
            await uow.commit()
    finally:
        await store.dispose()


@contextmanager
def composed_from(database_url: str, directory: Path) -> Iterator[Backends]:
    """The real auth service (on `database_url`) and user service (on a SQLite file in
    `directory`), over HTTP, joined by an in-memory bus provisioned as the AsyncAPI documents
    say; with an admin, and the examples' user with a profile and an address."""
    from services.auth.app import build_adapters as auth_adapters
    from services.auth.app import create_app as create_auth_app
    from services.auth.grants import grant_role
    from services.auth.settings import Settings as AuthSettings
    from services.user.app import build_adapters as user_adapters
    from services.user.app import create_app as create_user_app
    from services.user.settings import Settings as UserSettings

    prefix = f"served-{uuid.uuid4().hex[:8]}-"
    broker = InMemoryBroker()
    broker.apply(topology_from_contracts(Project.load(REPOSITORY)).with_prefix(prefix))
    asyncio.run(_add_example_account(database_url))
    auth_settings = AuthSettings(
        environment="local",
        database_url=database_url,
        signing_key_path=directory / "signing-key.pem",
        service_api_key=SecretStr(SERVICE_API_KEY),
        argon2_time_cost=1,
        argon2_memory_cost_kib=1024,
        argon2_parallelism=1,
        outbox_poll_seconds=0.1,
        registrations_per_address=100_000,
        login_failures_per_address=100_000,
        login_failures_per_account_address=100_000,
    )
    auth = create_auth_app(
        auth_settings,
        adapters=replace(
            auth_adapters(auth_settings),
            publisher=InMemoryEventPublisher(broker, prefix + USER_EVENTS_TOPIC),
        ),
    )
    with uvicorn_serving(auth) as auth_url:
        user_settings = UserSettings(
            environment="local",
            database_url=f"sqlite:///{directory / 'gateway-user.db'}",
            auth_service_url=auth_url,
            auth_service_api_key=SecretStr(SERVICE_API_KEY),
            issuer=auth_settings.issuer,
        )
        consumer = InMemoryEventConsumer(
            broker,
            prefix + USER_QUEUE,
            ConsumerOptions(max_in_flight=10, wait_seconds=0.05, backoff=Backoff(base=0)),
        )
        user = create_user_app(
            user_settings, adapters=replace(user_adapters(user_settings), consumer=consumer)
        )
        with uvicorn_serving(user) as user_url:
            admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
            backends = Backends(auth_url, user_url, SERVICE_API_KEY, database_url, admin="")
            credentials = {"email": admin_email, "password": PASSWORD}
            registered = httpx.post(f"{auth_url}/api/v1/auth/register", json=credentials)
            assert registered.status_code == 201, registered.text
            asyncio.run(grant_role(database_url, admin_email, "admin"))
            login = httpx.post(f"{auth_url}/api/v1/auth/login", json=credentials)
            assert login.status_code == 200, login.text
            admin = replace(backends, admin=f"Bearer {login.json()['accessToken']}")
            example_login = httpx.post(
                f"{auth_url}/api/v1/auth/login",
                json={"email": "ada@example.com", "password": PASSWORD},
            )
            assert example_login.status_code == 200, example_login.text
            admin.with_profile({**example_login.json(), "userId": str(EXAMPLE_USER)})
            yield admin


@contextmanager
def _gateway(database_url: str, directory: Path) -> Iterator[Served]:
    from services.gateway.app import create_app

    with (
        composed_from(database_url, directory) as backends,
        uvicorn_serving(create_app(backends.gateway_settings())) as url,
    ):
        yield Served("gateway", url, backends.admin)


@contextmanager
def served(service: str, database_url: str, directory: Path) -> Iterator[Served]:
    """One of the services, running over HTTP with an admin and the examples' data."""
    if service == "auth":
        with _auth(database_url, directory) as running:
            yield running
    elif service == "user":
        with _user(database_url) as running:
            yield running
    elif service == "notification":
        with _notification(database_url) as running:
            yield running
    elif service == "gateway":
        with _gateway(database_url, directory) as running:
            yield running
    else:
        raise ValueError(f"no such service: {service}")
