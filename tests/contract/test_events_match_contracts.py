"""Contract ↔ code for events: every event a service's code publishes or subscribes to is
declared by a send or receive operation of its AsyncAPI document, and every declared operation
is served by the code; each queue's filter policy lets through exactly what its consumer
handles."""

from __future__ import annotations

import ast
import dataclasses
import shutil
import typing
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from harness.authoring.contracts import Resolver
from services.auth import domain as auth_domain
from services.auth.event_payloads import payload
from services.kit.bus import Handler
from services.notification import consumers as notification_consumers
from services.notification import handlers as notification_handlers
from services.user import consumers as user_consumers
from services.user.storage import SqlUserStore
from tests.conftest import REPOSITORY, edit

ASYNCAPI = REPOSITORY / "contracts" / "asyncapi"
PUBLISHERS = frozenset(
    {"EventPublisher", "SnsEventPublisher", "InMemoryEventPublisher", "OutboxRelay", "publish"}
)


def conformance(service: str) -> pytest.MarkDecorator:
    return pytest.mark.conformance(service, "contract-code")


pytestmark = pytest.mark.contract


def declared(service: str, action: str, directory: Path = ASYNCAPI) -> set[str]:
    """The event types (message names) of the document's operations with `action`."""
    resolver = Resolver()
    path = directory / f"{service}-service.yaml"
    document = resolver.document(path).data
    names: set[str] = set()
    for operation in document.get("operations", {}).values():
        if operation["action"] != action:
            continue
        for reference in operation["messages"]:
            _, message = resolver.deref(path, reference)
            names.add(message["name"])
    return names


def filter_policies(service: str) -> Iterator[tuple[str, set[str]]]:
    """Each SQS subscription of the document: its queue and the event types it admits."""
    document = Resolver().document(ASYNCAPI / f"{service}-service.yaml").data
    for operation in document.get("operations", {}).values():
        sns = operation.get("bindings", {}).get("sns", {})
        for consumer in sns.get("consumers", []):
            yield consumer["endpoint"]["name"], set(consumer["filterPolicy"]["eventType"])


class SubscriptionLog:
    """An `EventConsumer` that only records what is subscribed to it."""

    def __init__(self) -> None:
        self.event_types: set[str] = set()

    def subscribe(self, event_type: str, handler: Handler) -> None:
        assert event_type not in self.event_types, f"{event_type} subscribed twice"
        self.event_types.add(event_type)

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError


def subscribed(service: str, tmp_path: Path) -> set[str]:
    """The event types the service's own wiring subscribes its handlers to."""
    log = SubscriptionLog()
    if service == "user":
        store = SqlUserStore(f"sqlite:///{tmp_path / 'user.db'}")
        handlers = user_consumers.event_handlers(store, lambda: datetime.now(UTC))
        user_consumers.subscribe(log, handlers)
    elif service == "notification":
        # The dependencies are only closed over by the handlers, never called here.
        deps = cast("notification_handlers.Dependencies", object())
        notification_consumers.subscribe(log, deps)
    return log.event_types


def example(kind: type[Any]) -> dict[str, object]:
    """Arguments for one of the auth domain's event dataclasses, by each field's type."""
    values: dict[object, object] = {uuid.UUID: uuid.uuid4(), datetime: datetime.now(UTC)}
    strings = {"email": "ada@example.com", "token": "a-single-use-token-of-32-chars-00"}
    hints = typing.get_type_hints(kind)
    return {
        field.name: strings[field.name] if hints[field.name] is str else values[hints[field.name]]
        for field in dataclasses.fields(kind)
    }


def published_by_auth() -> set[str]:
    """The event type of the payload built for every kind of the auth domain's events."""
    types: set[str] = set()
    for kind in typing.get_args(auth_domain.DomainEvent):
        event = kind(**example(kind))
        types.add(payload(event, sequence=1, at=datetime.now(UTC)).eventType)
    return types


def names_used(package: str) -> set[str]:
    """Every name and attribute referenced in a service package's source."""
    used: set[str] = set()
    for path in (REPOSITORY / "services" / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Name):
                used.add(node.id)
            elif isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.alias):
                used.add(node.name.rsplit(".", 1)[-1])
    return used


@pytest.mark.parametrize("service", [pytest.param("auth", marks=conformance("auth"))])
def test_every_event_the_auth_service_publishes_is_a_declared_send_operation_and_back(
    service: str,
) -> None:
    assert published_by_auth() == declared(service, "send")
    assert declared(service, "receive") == set()


@pytest.mark.parametrize(
    "service",
    [
        pytest.param("user", marks=conformance("user")),
        pytest.param("notification", marks=conformance("notification")),
    ],
)
def test_every_event_a_consumer_subscribes_to_is_a_declared_receive_operation_and_back(
    service: str, tmp_path: Path
) -> None:
    assert subscribed(service, tmp_path) == declared(service, "receive")


@pytest.mark.parametrize(
    "service",
    [
        pytest.param("user", marks=conformance("user")),
        pytest.param("notification", marks=conformance("notification")),
    ],
)
def test_each_queue_filter_policy_admits_exactly_the_events_its_consumer_handles(
    service: str, tmp_path: Path
) -> None:
    policies = dict(filter_policies(service))

    assert policies, f"{service}-service.yaml subscribes no queue"
    for queue, admitted in policies.items():
        assert admitted == subscribed(service, tmp_path), queue


@pytest.mark.parametrize(
    "service",
    [
        pytest.param("user", marks=conformance("user")),
        pytest.param("notification", marks=conformance("notification")),
    ],
)
def test_a_service_without_send_operations_has_no_code_that_publishes(service: str) -> None:
    assert declared(service, "send") == set()
    assert sorted(PUBLISHERS & names_used(service)) == []


@pytest.mark.conformance("notification", "contract-code")
def test_the_event_check_notices_a_receive_operation_the_code_does_not_handle(
    tmp_path: Path,
) -> None:
    contracts = tmp_path / "asyncapi"
    shutil.copytree(ASYNCAPI, contracts)
    edit(
        contracts / "notification-service.yaml",
        "      - $ref: '#/channels/userEvents/messages/UserDeactivated'\n    bindings:",
        "      - $ref: '#/channels/userEvents/messages/UserDeactivated'\n"
        "      - $ref: './user-events.yaml#/components/messages/UserCreated'\n    bindings:",
    )

    unhandled = declared("notification", "receive", contracts) - subscribed(
        "notification", tmp_path
    )
    assert unhandled == {"user.created"}
