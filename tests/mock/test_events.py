"""`accord mock events`: the events a service receives, sent as the real producer sends them,
through SNS (the filter policies apply) or straight to the service's queue, and handled by the
real consumers of the user and notification services on a moto server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from harness.bus.provision import Provisioner, topology_from_contracts
from harness.cli import app as cli
from harness.mock.events import Sent, generated_events, plan, select, send
from harness.project import Project
from services.kit.aws import BusLocation
from services.kit.events import encode
from services.notification.app import create_app as notification_app
from services.user.app import create_app as user_app
from tests.notification.support import MailServer, eventually, free_port, settings_for
from tests.user.conftest import user_settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.emulator

USER_QUEUE = "accord-user-service"
NOTIFICATION_QUEUE = "accord-notification-service"
REQUESTS = {"user.email.verification.requested", "user.password.reset.requested"}


@pytest.fixture
def location(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, repository: Project, unique_prefix: str
) -> BusLocation:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    location = BusLocation.detect()
    topology = topology_from_contracts(repository).with_prefix(unique_prefix)
    Provisioner(location.sns(), location.sqs()).apply(topology)
    return location


def depth(sqs: SQSClient, queue: str) -> int:
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def take_all(sqs: SQSClient, queue: str) -> list[tuple[str, dict[str, str]]]:
    """Every message on `queue`, body and string attributes, deleted as read."""
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    taken: list[tuple[str, dict[str, str]]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return taken
        for message in messages:
            attributes = {
                name: value["StringValue"]
                for name, value in message.get("MessageAttributes", {}).items()
                if "StringValue" in value
            }
            taken.append((message["Body"], attributes))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def expected(sent: list[Sent], event_types: set[str]) -> list[tuple[str, dict[str, str]]]:
    return sorted(
        (item.message.body, dict(item.message.attributes))
        for item in sent
        if item.event_type in event_types
    )


def test_through_sns_each_queue_gets_exactly_its_filtered_events_with_the_producers_attributes(
    location: BusLocation, repository: Project, unique_prefix: str
) -> None:
    sqs = location.sqs()

    sent = send(plan(select(repository, None), None, 0), location.sns(), sqs, prefix=unique_prefix)

    assert sorted(item.event_type for item in sent) == sorted(
        ["user.created", *REQUESTS, "user.deactivated"]
    )  # every example once: the topic fans an event out to every queue that takes it
    assert all(item.where == f"sns:{unique_prefix}accord-user-events" for item in sent)
    user = sorted(take_all(sqs, unique_prefix + USER_QUEUE))
    notification = sorted(take_all(sqs, unique_prefix + NOTIFICATION_QUEUE))
    assert user == expected(sent, {"user.created", "user.deactivated"})
    assert notification == expected(sent, REQUESTS | {"user.deactivated"})


def test_the_messages_sent_are_exactly_what_encode_makes_of_the_typed_events(
    location: BusLocation, repository: Project, unique_prefix: str
) -> None:
    planned = plan(select(repository, "notification"), 2, 11)

    sent = send(planned, location.sns(), location.sqs(), to_queue=True, prefix=unique_prefix)

    assert [item.message for item in sent] == [encode(event) for _, event in planned]
    assert {item.where for item in sent} == {f"sqs:{unique_prefix}{NOTIFICATION_QUEUE}"}
    received = sorted(take_all(location.sqs(), unique_prefix + NOTIFICATION_QUEUE))
    assert received == expected(sent, REQUESTS | {"user.deactivated"})
    for _, attributes in received:
        assert set(attributes) == {"eventType", "source", "schemaVersion"}


def test_the_same_seed_generates_the_same_events_but_for_fresh_event_ids() -> None:
    types = ["user.created", "user.email.verification.requested", "user.deactivated"]

    first = generated_events(types, 3, seed=42)
    again = generated_events(types, 3, seed=42)
    other = generated_events(types, 3, seed=43)

    def content(events: list[Any]) -> list[dict[str, Any]]:
        return [event.model_dump(mode="json", exclude={"eventId"}) for event in events]

    assert [event.eventType for event in first] == [t for t in types for _ in range(3)]
    assert content(first) == content(again)
    assert content(first) != content(other)
    assert len({event.eventId for event in first + again}) == 18


@asynccontextmanager
async def consumers(tmp_path: Path, unique_prefix: str, mail: MailServer) -> AsyncIterator[None]:
    """The user and notification services with their real adapters (SQS consumers included)."""
    user = user_app(
        user_settings(
            f"sqlite:///{tmp_path / 'user.db'}",
            queue=unique_prefix + USER_QUEUE,
            consumer_wait_seconds=1,
        )
    )
    notification = notification_app(
        settings_for(
            f"sqlite:///{tmp_path / 'notification.db'}",
            mail.port,
            queue=unique_prefix + NOTIFICATION_QUEUE,
            consumer_wait_seconds=1,
            retry_backoff_base_seconds=0,
            jwks_url=f"http://127.0.0.1:{free_port()}/.well-known/jwks.json",
        )
    )
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(user.router.lifespan_context(user))
        await stack.enter_async_context(notification.router.lifespan_context(notification))
        yield


@pytest.mark.parametrize(
    ("to_queue", "count"), [(False, None), (True, None), (False, 2), (True, 2)],
    ids=["examples-sns", "examples-queue", "generated-sns", "generated-queue"],
)  # fmt: skip
async def test_the_real_consumers_handle_every_event_sent_and_dead_letter_none(
    location: BusLocation,
    repository: Project,
    unique_prefix: str,
    tmp_path: Path,
    to_queue: bool,
    count: int | None,
) -> None:
    sqs = location.sqs()
    queues = [unique_prefix + name for name in (USER_QUEUE, NOTIFICATION_QUEUE)]
    mail = MailServer()
    mail.start()
    try:
        async with consumers(tmp_path, unique_prefix, mail):
            sent = await asyncio.to_thread(
                send,
                plan(select(repository, None), count, 5),
                location.sns(),
                sqs,
                to_queue=to_queue,
                prefix=unique_prefix,
            )
            await eventually(lambda: all(depth(sqs, queue) == 0 for queue in queues), seconds=60)
            # Generated tokens expire far ahead: one email per request. The examples' have
            # expired, and expired requests send none.
            emails = sum(item.event_type in REQUESTS for item in sent) if count else 0
            await eventually(lambda: len(mail.messages) == emails, seconds=60)
    finally:
        mail.stop()

    assert len(sent) == (4 * (count or 1) if not to_queue else 5 * (count or 1))
    for queue in queues:
        assert depth(sqs, queue + "-dlq") == 0, json.dumps(take_all(sqs, queue + "-dlq"))


def test_accord_mock_events_prints_a_line_per_event_sent(
    location: BusLocation, moto_endpoint: str, unique_prefix: str
) -> None:
    arguments = ["mock", "events", "--endpoint", moto_endpoint, "--prefix", unique_prefix]

    result = CliRunner().invoke(
        cli, [*arguments, "--service", "user", "--to-queue", "--count", "2", "--seed", "9"]
    )

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == "4 events sent"
    assert (
        sorted(line.split()[0] for line in lines[:-1])
        == ["user.created"] * 2 + ["user.deactivated"] * 2
    )
    assert all(line.endswith(f"sqs:{unique_prefix}{USER_QUEUE}") for line in lines[:-1])
    assert depth(location.sqs(), unique_prefix + USER_QUEUE) == 4


def test_accord_mock_events_refuses_a_service_that_receives_nothing(moto_endpoint: str) -> None:
    result = CliRunner().invoke(
        cli, ["mock", "events", "--endpoint", moto_endpoint, "--service", "auth"]
    )

    assert result.exit_code == 2
    assert "'auth' receives no events" in result.output
