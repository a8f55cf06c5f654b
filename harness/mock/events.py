"""`accord mock events`: publish the events a service receives, as the real producer would.

What a service receives is read from its AsyncAPI document (`contracts/asyncapi/*.yaml`): the
messages of its `receive` operations, the SNS topic its channel's binding names and the SQS
queue its `sqs` binding declares. The events are the messages' AsyncAPI examples, or events
generated from the payload schemas (`harness/replay/generate.py`), deterministic for a seed;
each gets a fresh `eventId`. Every message is built by `services.kit.events.encode` from the
typed model, so body and message attributes are exactly the real producer's. They go to the
topic (the subscriptions' filter policies then apply) or, with `to_queue`, straight to the
receiving service's queue.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from harness.authoring.contracts import Resolver, iter_contract_files
from harness.project import Project
from services.kit.events import Event, Message, encode, spec_for
from services.kit.sqs import sqs_attributes

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

FAR_AHEAD = datetime(2999, 1, 1, tzinfo=UTC)  # tokens that never expire: the emails are sent


class MockEventsError(ValueError):
    """The contracts do not say what to send, or to whom (an unknown service, no queue)."""


@dataclass(frozen=True)
class Receiver:
    """One service that receives events: the messages of its receive operations, the topic
    they come from and its queue."""

    service: str
    topic: str
    queue: str
    event_types: tuple[str, ...]
    examples: tuple[tuple[str, dict[str, Any]], ...]  # (event type, example payload)


@dataclass(frozen=True)
class Sent:
    """One event sent: its type, id, the message and where it went (`sns:topic`, `sqs:queue`)."""

    event_type: str
    event_id: str
    message: Message
    where: str


def _service_name(path: Path) -> str:
    return path.stem.removesuffix("-service")


def receivers(project: Project) -> list[Receiver]:
    """Every service with a receive operation, in the order of the contract files."""
    resolver = Resolver()
    found: list[Receiver] = []
    for path in iter_contract_files(project.contracts_dir / "asyncapi"):
        data = resolver.document(path).data
        if not isinstance(data, dict) or "asyncapi" not in data:
            continue
        for operation in (data.get("operations") or {}).values():
            if (operation or {}).get("action") != "receive":
                continue
            _, channel = resolver.deref(path, operation.get("channel") or {})
            sns = ((channel or {}).get("bindings") or {}).get("sns") or {}
            topic = sns.get("name") or (channel or {}).get("address")
            queues = ((operation.get("bindings") or {}).get("sqs") or {}).get("queues") or []
            main = [q["name"] for q in queues if q.get("redrivePolicy")] or [
                q["name"] for q in queues
            ]
            if not topic or not main:
                raise MockEventsError(f"{project.relative(path)}: no topic or queue to send to")
            event_types: list[str] = []
            examples: list[tuple[str, dict[str, Any]]] = []
            for ref in operation.get("messages") or []:
                _, message = resolver.deref(path, ref)
                event_type = message["name"]
                event_types.append(event_type)
                for example in message.get("examples") or []:
                    if isinstance(example.get("payload"), dict):
                        examples.append((event_type, dict(example["payload"])))
            found.append(
                Receiver(
                    _service_name(path),
                    topic,
                    main[0],
                    tuple(event_types),
                    tuple(examples),
                )
            )
    return found


def select(project: Project, service: str | None) -> list[Receiver]:
    """The receivers of `service`, or all of them (None); an unknown name raises."""
    every = receivers(project)
    if service is None:
        return every
    chosen = [receiver for receiver in every if receiver.service == service]
    if not chosen:
        names = ", ".join(sorted({r.service for r in every}))
        raise MockEventsError(f"{service!r} receives no events; services that do: {names}")
    return chosen


def _typed(event_type: str, values: dict[str, Any]) -> Event:
    # The catalog's payload models are exactly the members of `Event`.
    return cast("Event", spec_for(event_type).payload.model_validate(values))


def example_events(event_types: Iterable[str], examples: Iterable[tuple[str, dict[str, Any]]]
                   ) -> list[Event]:  # fmt: skip
    """The AsyncAPI examples of `event_types`, each with a fresh `eventId` (their users and
    sequences as the contract writes them: one user's history in order)."""
    wanted = set(event_types)
    events = [
        _typed(event_type, payload | {"eventId": str(uuid.uuid4())})
        for event_type, payload in examples
        if event_type in wanted
    ]
    return sorted(events, key=lambda event: (str(event.userId), event.sequence))


def generated_events(event_types: Sequence[str], count: int, seed: int) -> list[Event]:
    """`count` events of each type, drawn from the payload schemas with a random of `seed`:
    the same seed gives the same events, but for their `eventId`, which is always fresh. The
    schema version is the contract's, the email valid, `expiresAt` far ahead."""
    from hypothesis import strategies as st
    from hypothesis.control import BuildContext
    from hypothesis.internal.conjecture.data import ConjectureData

    from harness.replay.generate import from_schema, payloads

    data = ConjectureData(random=random.Random(seed))  # noqa: S311 - reproducible, not secret
    emails = from_schema({"type": "string", "format": "email"})
    events: list[Event] = []
    with BuildContext(data, wrapped_test=generated_events):
        for event_type in event_types:
            drawn = data.draw(st.lists(payloads(event_type), min_size=count, max_size=count))
            for values in drawn:
                values |= {
                    "eventId": str(uuid.uuid4()),
                    "schemaVersion": spec_for(event_type).schema_version,
                    "email": data.draw(emails),
                }
                if "expiresAt" in values:
                    minutes = data.draw(st.integers(0, 60 * 24 * 365))
                    values["expiresAt"] = (FAR_AHEAD - timedelta(minutes=minutes)).isoformat()
                events.append(_typed(event_type, values))
    return events


def plan(chosen: Sequence[Receiver], count: int | None, seed: int) -> list[tuple[Receiver, Event]]:
    """What to send: each receiver's events (examples, or `count` generated per type). Through
    SNS an event type several receivers take is sent once (the topic fans it out): the caller
    dedupes by `(topic, eventId)`; here the events of a type are shared by the receivers."""
    types: list[str] = []
    examples: list[tuple[str, dict[str, Any]]] = []
    for receiver in chosen:
        types += [t for t in receiver.event_types if t not in types]
        examples += [e for e in receiver.examples if e not in examples]
    events = generated_events(types, count, seed) if count is not None else (
        example_events(types, examples)
    )  # fmt: skip
    return [
        (receiver, event)
        for event in events
        for receiver in chosen
        if event.eventType in receiver.event_types
    ]


def send(
    planned: Sequence[tuple[Receiver, Event]],
    sns: SNSClient,
    sqs: SQSClient,
    *,
    to_queue: bool = False,
    prefix: str = "",
    on_sent: Callable[[Sent], None] | None = None,
) -> list[Sent]:
    """Send the planned events: to their topic once each, or to every receiver's queue."""
    from services.kit.sns import SnsEventPublisher

    publishers: dict[str, SnsEventPublisher] = {}
    queue_urls: dict[str, str] = {}
    done: set[tuple[str, str]] = set()
    sent: list[Sent] = []
    for receiver, event in planned:
        message = encode(event)
        if to_queue:
            name = prefix + receiver.queue
            if name not in queue_urls:
                queue_urls[name] = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            sqs.send_message(
                QueueUrl=queue_urls[name],
                MessageBody=message.body,
                MessageAttributes=sqs_attributes(dict(message.attributes)),
            )
            where = f"sqs:{name}"
        else:
            name = prefix + receiver.topic
            if (name, str(event.eventId)) in done:
                continue
            done.add((name, str(event.eventId)))
            publisher = publishers.setdefault(name, SnsEventPublisher(sns, name))
            sns.publish(
                TopicArn=publisher.topic_arn(),
                Message=message.body,
                MessageAttributes={
                    key: {"DataType": "String", "StringValue": value}
                    for key, value in message.attributes.items()
                },
            )
            where = f"sns:{name}"
        item = Sent(event.eventType, str(event.eventId), message, where)
        sent.append(item)
        if on_sent is not None:
            on_sent(item)
    return sent
