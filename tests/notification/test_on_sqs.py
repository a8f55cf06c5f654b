"""The service as `accord up` and production run it: `create_app(settings)` builds its real
adapters (SQL database, SMTP sender, JWKS verifier, SQS consumer), here against a moto server
provisioned from the AsyncAPI bindings and a real SMTP server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from harness.bus.provision import Provisioner, topology_from_contracts
from harness.project import Project
from services.kit.aws import BusLocation
from services.kit.sns import SnsEventPublisher
from services.notification.app import create_app
from tests.notification.support import (
    MailServer,
    Tokens,
    bearer,
    eventually,
    free_port,
    settings_for,
    verification_requested,
)

pytestmark = pytest.mark.emulator


@pytest.fixture
def location(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, repository: Project, unique_prefix: str
) -> BusLocation:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    location = BusLocation.detect()
    topology = topology_from_contracts(repository).with_prefix(unique_prefix)
    Provisioner(location.sns(), location.sqs()).apply(topology)
    return location


@pytest.fixture
async def app(
    location: BusLocation, sqlite_url: str, mail_server: MailServer, unique_prefix: str
) -> AsyncIterator[FastAPI]:
    settings = settings_for(
        sqlite_url,
        mail_server.port,
        queue=unique_prefix + "accord-notification-service",
        consumer_wait_seconds=1,
        retry_backoff_base_seconds=0,
        # Nothing listens there: verifying a token needs keys that cannot be fetched.
        jwks_url=f"http://127.0.0.1:{free_port()}/.well-known/jwks.json",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_events_from_sns_are_emailed_once_through_the_sqs_consumer(
    app: FastAPI, location: BusLocation, mail_server: MailServer, unique_prefix: str
) -> None:
    publisher = SnsEventPublisher(location.sns(), unique_prefix + "accord-user-events")
    event = verification_requested(email="ada@example.com")

    await publisher.publish(event)
    await publisher.publish(event)  # published twice: one email

    await eventually(lambda: len(mail_server.messages) == 1)
    await asyncio.sleep(1.5)  # time for the copy to be received and absorbed
    assert len(mail_server.messages) == 1
    mail = mail_server.messages[0]
    assert mail.recipients == ["ada@example.com"]
    assert f"/verify-email?token={event.verificationToken}" in mail.part("plain")

    sqs = location.sqs()
    queue_url = sqs.get_queue_url(QueueName=unique_prefix + "accord-notification-service")
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url["QueueUrl"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }


async def test_the_real_adapters_answer_health_and_refuse_tokens_they_cannot_verify(
    app: FastAPI, tokens: Tokens
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://notification.test"
    ) as client:
        ready = await client.get("/health/ready")
        listed = await client.get("/api/v1/notifications", headers=bearer(tokens.admin()))
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "smtp": "ok"}}
    assert listed.status_code == 503
    assert listed.json()["type"] == "https://accord.example/problems/dependency-unavailable"
