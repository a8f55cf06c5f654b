"""Test doubles and builders for the notification service: a real SMTP server (aiosmtpd) that
can go down and come back, access tokens, events the shared factories lack, and the service
composed around an in-memory bus."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI

from generated.events import models as events
from services.kit.bus import EventConsumer
from services.kit.consumer import Backoff, ConsumerOptions
from services.kit.events import Event, encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from services.kit.tokens import SigningKey, StaticKeySource, TokenIssuer, TokenVerifier, jwks
from services.kit.topology import QueueSpec, SubscriptionSpec, TopicSpec, Topology
from services.notification.app import Adapters, create_app
from services.notification.ports import EmailSender, RoleDirectory
from services.notification.settings import Settings
from services.notification.storage import SqlNotificationDatabase

ISSUER = "http://127.0.0.1:3001"
AUDIENCE = "accord"
LINK_BASE = "https://accounts.accord.test"
FAST = ConsumerOptions(max_in_flight=10, wait_seconds=0.2, backoff=Backoff(base=0))
EVENT_TYPES = (
    "user.email.verification.requested",
    "user.password.reset.requested",
    "user.deactivated",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the SMTP server received it."""

    mail_from: str
    recipients: list[str]
    message: EmailMessage

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        content: str = body.get_content()
        return content


class MailServer:
    """A real SMTP server on 127.0.0.1 that keeps what it receives; it can be stopped (the
    port then refuses connections) and started again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.received.append(
                ReceivedMail(envelope.mail_from or "", list(envelope.rcpt_tos), parsed)
            )
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self.received)


class Tokens:
    """Access tokens from the auth service's point of view: one signing key, its JWKS."""

    def __init__(self) -> None:
        self.key = SigningKey.generate()
        self.issuer = TokenIssuer(
            self.key, issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(minutes=15)
        )
        self.admin_id = str(uuid.uuid4())
        self.user_id = str(uuid.uuid4())

    def verifier(self) -> TokenVerifier:
        return TokenVerifier(StaticKeySource(jwks(self.key)), issuer=ISSUER, audience=AUDIENCE)

    def admin(self) -> str:
        return self.issuer.issue(self.admin_id, ["user", "admin"]).token

    def user(self) -> str:
        return self.issuer.issue(self.user_id, ["user"]).token

    def expired(self) -> str:
        issuer = TokenIssuer(
            self.key,
            issuer=ISSUER,
            audience=AUDIENCE,
            ttl=timedelta(minutes=15),
            clock=lambda: datetime.now(UTC) - timedelta(hours=2),
        )
        return issuer.issue(self.admin_id, ["user", "admin"]).token

    def from_other_issuer(self) -> str:
        issuer = TokenIssuer(
            self.key, issuer="https://elsewhere.test", audience=AUDIENCE, ttl=timedelta(minutes=5)
        )
        return issuer.issue(self.admin_id, ["user", "admin"]).token

    def signed_by_another_key(self) -> str:
        issuer = TokenIssuer(
            SigningKey.generate(), issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(minutes=5)
        )
        return issuer.issue(self.admin_id, ["user", "admin"]).token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- events ---------------------------------------------------------------------------------


def _common(user_id: uuid.UUID | None, sequence: int) -> dict[str, Any]:
    return {
        "eventId": uuid.uuid4(),
        "schemaVersion": "1.0.0",
        "sequence": sequence,
        "userId": user_id or uuid.uuid4(),
        "timestamp": datetime.now(UTC),
        "source": "auth-service",
    }


def verification_requested(
    user_id: uuid.UUID | None = None,
    sequence: int = 2,
    email: str = "ada@example.com",
    token: str | None = None,
    expires_in: timedelta = timedelta(hours=24),
) -> events.EmailVerificationRequestedPayload:
    return events.EmailVerificationRequestedPayload.model_validate(
        {
            **_common(user_id, sequence),
            "eventType": "user.email.verification.requested",
            "email": email,
            "verificationToken": token or "vt_" + uuid.uuid4().hex,
            "expiresAt": datetime.now(UTC) + expires_in,
        }
    )


def reset_requested(
    user_id: uuid.UUID | None = None,
    sequence: int = 3,
    email: str = "ada@example.com",
    token: str | None = None,
    expires_in: timedelta = timedelta(hours=1),
) -> events.PasswordResetRequestedPayload:
    return events.PasswordResetRequestedPayload.model_validate(
        {
            **_common(user_id, sequence),
            "eventType": "user.password.reset.requested",
            "email": email,
            "resetToken": token or "rt_" + uuid.uuid4().hex,
            "expiresAt": datetime.now(UTC) + expires_in,
        }
    )


def deactivated(
    user_id: uuid.UUID | None = None, sequence: int = 5, email: str = "ada@example.com"
) -> events.UserDeactivatedPayload:
    return events.UserDeactivatedPayload.model_validate(
        {**_common(user_id, sequence), "eventType": "user.deactivated", "email": email}
    )


async def eventually(check: Callable[[], bool], seconds: float = 15.0) -> None:
    """Wait for `check` to hold (a bound on waiting, not an assertion about speed)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


# --- the service ------------------------------------------------------------------------------


def settings_for(database_url: str, smtp_port: int = 1025, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "local",
        "database_url": database_url,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_timeout_seconds": 2.0,
        "link_base_url": LINK_BASE,
        "issuer": ISSUER,
        "audience": AUDIENCE,
    }
    return Settings(**(values | overrides))


def memory_topology(prefix: str, max_receives: int = 5) -> Topology:
    """The notification queue of the AsyncAPI bindings, under `prefix`."""
    topic, queue = prefix + "accord-user-events", prefix + "accord-notification-service"
    return Topology(
        topics=(TopicSpec(topic),),
        queues=(
            QueueSpec(queue + "-dlq"),
            QueueSpec(queue, 60, 0, 345_600, queue + "-dlq", max_receives),
        ),
        subscriptions=(SubscriptionSpec(topic, queue, {"eventType": list(EVENT_TYPES)}),),
    )


@dataclass
class Service:
    """The notification service running (lifespan entered), with its bus and HTTP client."""

    app: FastAPI
    client: httpx.AsyncClient
    database: SqlNotificationDatabase
    broker: InMemoryBroker | None
    topic: str
    queue: str

    async def publish(self, event: Event) -> None:
        assert self.broker is not None
        await InMemoryEventPublisher(self.broker, self.topic).publish(event)

    def send_to_queue(self, event: Event) -> None:
        assert self.broker is not None
        self.broker.send(self.queue, encode(event))

    def queue_depth(self) -> int:
        assert self.broker is not None
        return self.broker.depth(self.queue)


@contextlib.asynccontextmanager
async def running_service(
    settings: Settings,
    *,
    sender: EmailSender,
    tokens: Tokens,
    roles: RoleDirectory | None = None,
    broker: InMemoryBroker | None = None,
    prefix: str = "",
    consumer: EventConsumer | None = None,
    options: ConsumerOptions = FAST,
) -> AsyncIterator[Service]:
    """Start the service on `settings`' database with these adapters; stop it afterwards."""
    database = SqlNotificationDatabase(settings.database_url)
    queue = prefix + "accord-notification-service"
    if consumer is None and broker is not None:
        consumer = InMemoryEventConsumer(broker, queue, options)
    adapters = Adapters(
        database=database,
        sender=sender,
        tokens=tokens.verifier(),
        roles=roles,
        consumer=consumer,
    )
    app = create_app(settings, adapters=adapters)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://notification.test"
            ) as client,
        ):
            yield Service(app, client, database, broker, prefix + "accord-user-events", queue)
    finally:
        await database.dispose()
