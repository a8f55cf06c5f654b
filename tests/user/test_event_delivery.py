"""At-least-once delivery end to end: 1,000 `user.created` events, each delivered twice, in
random order, leave exactly 1,000 profiles, through the in-memory bus and through SQS on a
moto server, consumed by the running service."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from harness.bus.provision import Provisioner, topology_from_contracts
from harness.project import Project
from services.kit.aws import BusLocation
from services.kit.events import Event, encode
from services.kit.sqs import sqs_attributes
from services.user.app import build_adapters
from services.user.storage import SqlUserStore, profiles
from tests import factories
from tests.user.conftest import UserService, running, user_settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

USERS = 1000
CHUNK = 30


def twice_shuffled(rng: random.Random) -> tuple[list[uuid.UUID], list[Event]]:
    users = [uuid.uuid4() for _ in range(USERS)]
    events: list[Event] = [
        factories.user_created(user_id, email=f"u{index}@example.com")
        for index, user_id in enumerate(users)
    ]
    deliveries = events * 2
    rng.shuffle(deliveries)
    return users, deliveries


async def count_profiles(store: SqlUserStore, users: Sequence[uuid.UUID]) -> int:
    async with store.engine.connect() as connection:
        result = await connection.execute(
            select(func.count()).select_from(profiles).where(profiles.c.id.in_(users))
        )
        return int(result.scalar_one())


# On SQLite, the embedded default; the handlers' atomicity on PostgreSQL is shown, with
# concurrent deliveries, in test_consumers.py.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@given(rng=st.randoms(use_true_random=False))
@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_a_thousand_user_created_delivered_twice_in_any_order_make_a_thousand_profiles(
    service: UserService, rng: random.Random
) -> None:
    users, deliveries = twice_shuffled(rng)

    await service.deliver(*deliveries, seconds=120)

    assert await count_profiles(service.store, users) == USERS


@pytest.mark.emulator
async def test_a_thousand_user_created_delivered_twice_through_sqs_make_a_thousand_profiles(
    moto_endpoint: str,
    repository: Project,
    unique_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    location = BusLocation.detect()
    topology = topology_from_contracts(repository).with_prefix(unique_prefix)
    sqs = location.sqs()
    Provisioner(location.sns(), sqs).apply(topology)
    queue = unique_prefix + "accord-user-service"
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    users, deliveries = twice_shuffled(random.Random(20261125))
    settings = user_settings(
        f"sqlite:///{tmp_path / 'user.db'}", queue=queue, consumer_wait_seconds=1
    )
    adapters = build_adapters(settings)  # SQS at the endpoint, as in `accord up`

    async with running(settings, adapters):
        # Fed as the service drains the queue: moto's receive slows down with the backlog, and
        # what is measured here is the consumer, not moto. The order stays the shuffled one.
        for start in range(0, len(deliveries), CHUNK):
            while await _queue_depth(sqs, url) > CHUNK // 3:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(_send, sqs, url, deliveries[start : start + CHUNK])
        made = await _wait_for(adapters.store, users, seconds=180)
        await asyncio.sleep(1.5)  # anything still in flight would be a third profile attempt

    assert made == USERS
    assert await _queue_depth(sqs, url) == 0
    assert _dead_letters(sqs, unique_prefix) == 0


def _send(sqs: SQSClient, url: str, events: Sequence[Event]) -> None:
    for start in range(0, len(events), 10):
        entries: list[SendMessageBatchRequestEntryTypeDef] = []
        for index, event in enumerate(events[start : start + 10]):
            message = encode(event)
            entries.append(
                {
                    "Id": str(index),
                    "MessageBody": message.body,
                    "MessageAttributes": sqs_attributes(dict(message.attributes)),
                }
            )
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


async def _wait_for(store: SqlUserStore, users: Sequence[uuid.UUID], seconds: float) -> int:
    deadline = asyncio.get_running_loop().time() + seconds
    while (made := await count_profiles(store, users)) < len(users):
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    return made


async def _queue_depth(sqs: SQSClient, url: str) -> int:
    attributes = await asyncio.to_thread(
        sqs.get_queue_attributes,
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    values = attributes["Attributes"]
    return int(values["ApproximateNumberOfMessages"]) + int(
        values["ApproximateNumberOfMessagesNotVisible"]
    )


def _dead_letters(sqs: SQSClient, prefix: str) -> int:
    url = sqs.get_queue_url(QueueName=prefix + "accord-user-service-dlq")["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


@pytest.mark.emulator
async def test_a_queue_that_does_not_exist_stops_the_service_at_start_naming_user_queue(
    moto_endpoint: str, unique_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    settings = user_settings(
        f"sqlite:///{tmp_path / 'user.db'}",
        queue=unique_prefix + "missing",
        consumer_wait_seconds=1,
    )

    with pytest.raises(RuntimeError, match="USER_QUEUE"):
        async with running(settings, build_adapters(settings)):
            pass
