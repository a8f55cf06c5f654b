"""Stream files and the recorder: what crosses the bus is written one message a line, read back
exactly, and replayable."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from harness.bus.provision import Provisioner, topology_from_contracts
from harness.project import Project
from harness.replay.recorder import Recorder, RecordingPublisher
from harness.replay.schedule import poison_message
from harness.replay.stream import (
    StreamFormatError,
    StreamWriter,
    read_stream,
    to_messages,
    write_stream,
)
from services.kit.aws import BusLocation
from services.kit.events import Event, Message, decode, encode
from services.kit.memory import InMemoryBroker, InMemoryEventPublisher
from services.kit.sns import SnsEventPublisher
from tests import factories
from tests.notification.support import reset_requested


def every_kind() -> list[Event]:
    return [
        factories.user_created(),
        factories.verification_requested(),
        reset_requested(),
        factories.user_deactivated(),
    ]


def test_a_stream_file_gives_back_every_message_byte_for_byte(tmp_path: Path) -> None:
    messages = [*to_messages(every_kind()), poison_message("not-json")]
    path = tmp_path / "stream.jsonl"

    assert write_stream(path, messages) == 5

    assert read_stream(path) == messages
    assert len(path.read_text(encoding="utf-8").splitlines()) == 5


def test_a_line_may_be_a_bare_payload_and_its_attributes_are_derived(tmp_path: Path) -> None:
    event = factories.user_created(email="ada@example.com")
    path = tmp_path / "hand-written.jsonl"
    path.write_text(event.model_dump_json() + "\n\n", encoding="utf-8")

    [message] = read_stream(path)

    assert decode(message) == event
    assert dict(message.attributes) == dict(encode(event).attributes)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{oops", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"body": {"eventType": "user.created"}}', "`body` must be a string"),
        ('{"body": "{}", "attributes": {"n": 1}}', "`attributes` must map names to strings"),
    ],
)
def test_a_line_that_is_not_a_message_is_refused_with_its_file_and_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = tmp_path / "broken.jsonl"
    good = json.dumps({"body": "{}", "attributes": {}})
    path.write_text(f"{good}\n{line}\n", encoding="utf-8")

    with pytest.raises(StreamFormatError, match=rf"broken.jsonl:2: {problem}"):
        read_stream(path)


async def test_the_recorder_takes_every_event_of_the_topic_while_consumers_get_theirs(
    repository: Project, unique_prefix: str, tmp_path: Path
) -> None:
    broker = InMemoryBroker()
    topology = topology_from_contracts(repository).with_prefix(unique_prefix)
    broker.apply(topology)
    [topic] = topology.topics
    path = tmp_path / "recorded.jsonl"
    published = every_kind()

    async with Recorder.in_memory(broker, topic.name, path):
        for event in published:
            await InMemoryEventPublisher(broker, topic.name).publish(event)
    # Leaving the block stops the recorder, which first records whatever is still queued.

    assert [decode(message) for message in read_stream(path)] == published
    depths = {s.queue: broker.depth(s.queue) for s in topology.subscriptions}
    assert sorted(depths.values()) == [2, 3]  # user: created, deactivated; notification: three


@pytest.mark.emulator
async def test_on_sns_the_recorder_captures_the_topic_and_removes_its_queue_when_stopped(
    repository: Project, moto_endpoint: str, unique_prefix: str, tmp_path: Path
) -> None:
    location = BusLocation("endpoint", moto_endpoint)
    sns, sqs = location.sns(), location.sqs()
    topology = topology_from_contracts(repository).with_prefix(unique_prefix)
    await asyncio.to_thread(Provisioner(sns, sqs).apply, topology)
    [topic] = topology.topics
    path = tmp_path / "recorded.jsonl"
    published = every_kind()
    seen: list[Message] = []

    recorder = await Recorder.on_topic(moto_endpoint, topic.name, path, on_record=seen.append)
    await recorder.start()
    publisher = SnsEventPublisher(sns, topic.name)
    for event in published:
        await publisher.publish(event)
    await recorder.stop()

    recorded = read_stream(path)
    assert sorted(decode(m).eventId for m in recorded) == sorted(e.eventId for e in published)
    assert {m.attributes["eventType"] for m in recorded} == {e.eventType for e in published}
    assert recorded == seen
    queues = sqs.list_queues(QueueNamePrefix=f"{topic.name}-recorder").get("QueueUrls", [])
    assert queues == []


async def test_a_recording_publisher_writes_what_it_publishes(tmp_path: Path) -> None:
    broker = InMemoryBroker()
    broker.create_topic("events")
    path = tmp_path / "published.jsonl"
    events = every_kind()

    with StreamWriter(path) as writer:
        publisher = RecordingPublisher(InMemoryEventPublisher(broker, "events"), writer)
        for event in events:
            await publisher.publish(event)

    assert [decode(m) for m in read_stream(path)] == events
