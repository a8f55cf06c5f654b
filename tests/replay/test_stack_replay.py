"""Replaying a recorded stream file into a running stack, as `accord replay` will: the topic and
queues from the AsyncAPI bindings on a moto server, the user and notification services'
consumers taking their events from SQS, and the final state compared through their databases."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.bus.provision import Provisioner, topology_from_contracts
from harness.project import Project
from harness.replay.live import (
    NotificationDatabaseProbe,
    StackBus,
    UserDatabaseProbe,
    replay_file,
    summary_lines,
)
from harness.replay.recorder import Recorder
from harness.replay.runner import Progress
from harness.replay.schedule import Adversity, poison_message
from harness.replay.stream import StreamWriter
from services.kit.aws import BusLocation
from services.kit.consumer import Backoff, ConsumerOptions
from services.kit.events import Event
from services.kit.sns import SnsEventPublisher
from services.kit.sqs import SqsEventConsumer
from services.notification import consumers as notification_consumers
from services.notification import handlers as notification_handlers
from services.notification.mail import RecordingEmailSender
from services.notification.rendering import JinjaEmailComposer
from services.notification.storage import SqlNotificationDatabase
from services.user import consumers as user_consumers
from services.user.storage import SqlUserStore
from tests import factories
from tests.notification.support import reset_requested

pytestmark = pytest.mark.emulator

OPTIONS = ConsumerOptions(max_in_flight=10, wait_seconds=1, backoff=Backoff(base=0))


@dataclass
class Stack:
    """What replay needs of a running stack: its bus, and the services' database URLs."""

    bus: StackBus
    user_database: str
    notification_database: str
    mails: RecordingEmailSender


@contextlib.asynccontextmanager
async def running_stack(
    repository: Project, endpoint: str, prefix: str, state: Path
) -> AsyncIterator[Stack]:
    """The AsyncAPI topology provisioned under `prefix`, and the user and notification
    services' consumers on their queues (as `accord up` runs them, minus HTTP)."""
    location = BusLocation("endpoint", endpoint)
    sqs = location.sqs()
    topology = topology_from_contracts(repository).with_prefix(prefix)
    await asyncio.to_thread(Provisioner(location.sns(), sqs).apply, topology)
    user_url = f"sqlite:///{state / 'user.db'}"
    notification_url = f"sqlite:///{state / 'notification.db'}"
    store = SqlUserStore(user_url)
    await store.migrate()
    database = SqlNotificationDatabase(notification_url)
    await database.migrate()
    sender = RecordingEmailSender()
    user_consumer = SqsEventConsumer(sqs, prefix + "accord-user-service", OPTIONS)
    user_consumers.subscribe(
        user_consumer, user_consumers.event_handlers(store, lambda: datetime.now(UTC))
    )
    notification_consumer = SqsEventConsumer(sqs, prefix + "accord-notification-service", OPTIONS)
    notification_consumers.subscribe(
        notification_consumer,
        notification_handlers.Dependencies(
            unit_of_work=database.unit_of_work,
            sender=sender,
            composer=JinjaEmailComposer(),
            clock=lambda: datetime.now(UTC),
            link_base_url="https://accounts.accord.test",
            claim_lease=timedelta(seconds=10),
        ),
    )
    await user_consumer.start()
    await notification_consumer.start()
    try:
        yield Stack(StackBus.from_topology(topology, location), user_url, notification_url, sender)
    finally:
        await user_consumer.stop()
        await notification_consumer.stop()
        await store.dispose()
        await database.dispose()


def day_of_events() -> list[Event]:
    ada, grace = uuid.uuid4(), uuid.uuid4()
    return [
        factories.user_created(ada, 1, email="ada@example.com"),
        factories.verification_requested(ada, 2, email="ada@example.com"),
        factories.user_created(grace, 1, email="grace@example.com"),
        reset_requested(ada, 3, email="ada@example.com"),
        factories.verification_requested(grace, 2, email="grace@example.com"),
        factories.user_deactivated(ada, 4, email="ada@example.com"),
    ]


async def test_a_recorded_stream_replayed_thrice_shuffled_with_crashes_changes_nothing(
    repository: Project, moto_endpoint: str, unique_prefix: str, tmp_path: Path
) -> None:
    recording = tmp_path / "recorded.jsonl"
    events = day_of_events()
    async with running_stack(repository, moto_endpoint, unique_prefix, tmp_path) as stack:
        # Record the day as it happens (the auth service publishing)...
        recorder = await Recorder.on_topic(moto_endpoint, stack.bus.topic, recording)
        await recorder.start()
        publisher = SnsEventPublisher(stack.bus.location.sns(), stack.bus.topic)
        for event in events:
            await publisher.publish(event)
        await recorder.stop()
        with StreamWriter(recording) as writer:  # and a message no consumer can read
            writer.write(poison_message("not-json", "user.created"))
        # ...then replay it, badly, into the same running stack.
        progress: list[Progress] = []
        summary = await replay_file(
            recording,
            project=repository,
            endpoint=moto_endpoint,
            prefix=unique_prefix,
            adversity=Adversity(duplicates=3, order="shuffled", crash_rate=0.3, seed=4),
            probes=[
                UserDatabaseProbe(stack.user_database),
                NotificationDatabaseProbe(stack.notification_database),
            ],
            on_progress=progress.append,
            timeout=60,
        )

    report = "\n".join(summary_lines(summary))
    assert summary.diffs == (), report
    assert (summary.events, summary.seed) == (7, 4)
    assert summary.sent == 3 * 7 + summary.crashes
    assert summary.crashes > 0
    # Three copies (and crash redeliveries) of 3 events for the user service, 4 for the
    # notification service, and of the poison for the user service's queue.
    assert summary.delivered >= 3 * (3 + 4 + 1) + summary.crashes
    assert summary.duplicates_absorbed == summary.delivered - len(summary.dead_lettered) - 7
    assert len(summary.dead_lettered) >= 3
    for letter in summary.dead_lettered:
        assert letter.message.body == "{this is not JSON"
        assert (letter.reason or "").startswith("invalid message: the body is not JSON")
    assert summary.ok, report
    assert {p.phase for p in progress} >= {"clean pass", "publishing"}
    assert progress[-1].done == progress[-1].total
    # No email went out twice for one event, whatever the duplicates and crashes: the
    # recording run and the clean pass sent Ada's two and Grace's one; the adverse pass as
    # many, but Ada's only if they came before her deactivation (the tolerated race).
    references = [mail.reference for mail in stack.mails.sent]
    assert len(references) == len(set(references))
    assert 3 + 3 + 1 <= len(references) <= 3 + 3 + 3
