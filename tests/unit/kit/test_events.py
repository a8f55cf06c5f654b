"""The event envelope: what goes on the wire, and what is refused before it gets there."""

from __future__ import annotations

import asyncio
import json

import pytest

from services.kit.aws import BusLocation
from services.kit.events import InvalidEventError, Message, decode, encode
from services.kit.memory import InMemoryBroker, InMemoryEventPublisher
from services.kit.topology import QueueSpec, SubscriptionSpec, TopicSpec, Topology
from services.kit.tracing import continuing
from tests import factories


def test_an_event_is_encoded_as_its_json_payload_with_the_three_attributes() -> None:
    event = factories.user_created(email="ada@example.com")

    message = encode(event)

    assert json.loads(message.body)["email"] == "ada@example.com"
    assert dict(message.attributes) == {
        "eventType": "user.created",
        "source": "auth-service",
        "schemaVersion": "1.0.0",
    }
    assert decode(message) == event


def test_an_active_trace_is_carried_as_a_traceparent_attribute() -> None:
    with continuing("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"):
        message = encode(factories.user_created())

    assert message.attributes["traceparent"].startswith("00-0af7651916cd43dd")


def test_an_invalid_event_raises_and_is_never_published() -> None:
    broker = InMemoryBroker()
    broker.apply(
        Topology(
            (TopicSpec("events"),),
            (QueueSpec("all"),),
            (SubscriptionSpec("events", "all"),),
        )
    )
    event = factories.user_created()
    event.email = "a" * 255 + "@example.com"  # generated models do not validate assignment

    with pytest.raises(InvalidEventError, match="/email"):
        encode(event)
    with pytest.raises(InvalidEventError):
        asyncio.run(InMemoryEventPublisher(broker, "events").publish(event))
    assert broker.depth("all") == 0


def test_an_event_with_another_major_schema_version_is_refused() -> None:
    event = factories.user_created()
    event.schemaVersion = "2.0.0"

    with pytest.raises(InvalidEventError, match="not compatible"):
        encode(event)


@pytest.mark.parametrize(
    ("body", "attributes", "reason"),
    [
        ("{oops", {}, "the body is not JSON"),
        ("[1, 2]", {}, "the body is not a JSON object"),
        ('{"eventType": "user.renamed"}', {}, "unknown event type 'user.renamed'"),
        ("{}", {}, "unknown event type None"),
    ],
)
def test_a_message_that_is_not_a_known_event_is_refused_with_its_reason(
    body: str, attributes: dict[str, str], reason: str
) -> None:
    with pytest.raises(InvalidEventError) as refused:
        decode(Message(body, attributes))

    assert refused.value.reason.startswith(reason)


def test_a_payload_with_a_lax_type_is_refused_as_the_json_schema_would() -> None:
    payload = json.loads(encode(factories.user_created()).body) | {"sequence": "3"}

    with pytest.raises(InvalidEventError, match="/sequence"):
        decode(Message(json.dumps(payload)))


def test_an_attribute_contradicting_the_payload_is_refused() -> None:
    message = encode(factories.user_created())

    with pytest.raises(InvalidEventError, match="contradicts"):
        decode(Message(message.body, {**message.attributes, "eventType": "user.deactivated"}))


def test_a_newer_minor_version_is_read_and_a_newer_major_is_refused() -> None:
    payload = json.loads(encode(factories.user_created()).body)

    assert (
        decode(Message(json.dumps(payload | {"schemaVersion": "1.4.0"}))).schemaVersion == "1.4.0"
    )
    with pytest.raises(InvalidEventError, match="not supported"):
        decode(Message(json.dumps(payload | {"schemaVersion": "2.0.0"})))


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, BusLocation("memory")),
        (
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"},
            BusLocation("endpoint", "http://127.0.0.1:4566"),
        ),
        (
            {"LOCALSTACK_ENDPOINT": "http://localstack:4566"},
            BusLocation("endpoint", "http://localstack:4566"),
        ),
        (
            {"ACCORD_ENV": "production", "AWS_REGION": "eu-west-1"},
            BusLocation("aws", None, "eu-west-1"),
        ),
        (
            {"ACCORD_ENV": "production", "AWS_ENDPOINT_URL": "http://127.0.0.1:4566"},
            BusLocation("endpoint", "http://127.0.0.1:4566"),
        ),
    ],
)
def test_the_bus_mode_is_detected_from_the_environment(
    environ: dict[str, str], expected: BusLocation
) -> None:
    assert BusLocation.detect(environ) == expected


def test_an_endpoint_that_is_not_a_url_fails_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="AWS_ENDPOINT_URL"):
        BusLocation.detect({"AWS_ENDPOINT_URL": "localhost:4566"})
