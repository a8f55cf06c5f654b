"""What an AsyncAPI application document says about one application's events: the messages
its send operations publish and its receive operations take, with the payload models and
catalog constants of the document that defines them, and the SQS queue and filter policy of
its subscription (the same bindings `harness/bus/provision.py` provisions)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.authoring.contracts import DanglingReferenceError, Resolver, split
from harness.authoring.operations import snake


class EventAppError(Exception):
    """A part of an application document the generator cannot type."""


def constant(message_key: str) -> str:
    """The catalog constant of a message: `EmailVerificationRequested` →
    `EMAIL_VERIFICATION_REQUESTED`."""
    return snake(message_key).rstrip("_").upper()


@dataclass(frozen=True)
class Message:
    """A message an application sends or receives."""

    key: str  # the message's name in the document that defines it: `UserCreated`
    event_type: str  # its `name`: `user.created`
    payload: str  # the payload model: `UserCreatedPayload`
    definitions: Path  # the document that defines it
    operation: str  # the operation that sends or receives it
    summary: str = ""

    @property
    def python(self) -> str:
        return snake(self.key)

    @property
    def constant(self) -> str:
        return constant(self.key)


@dataclass
class EventApp:
    """One AsyncAPI application document."""

    sends: list[Message] = field(default_factory=list)
    receives: list[Message] = field(default_factory=list)
    queue: str | None = None
    filter_policy: dict[str, Any] = field(default_factory=dict)

    @property
    def definitions(self) -> set[Path]:
        return {message.definitions for message in (*self.sends, *self.receives)}


def is_application(data: Any) -> bool:
    """An AsyncAPI document with operations (rather than one that only defines messages)."""
    return isinstance(data, dict) and "asyncapi" in data and bool(data.get("operations"))


def read(path: Path, resolver: Resolver) -> EventApp:
    path = path.resolve()
    data = resolver.document(path).data
    app = EventApp()
    for name, operation in (data.get("operations") or {}).items():
        action = operation.get("action")
        where = f"operations/{name}"
        messages = [
            _message(path, resolver, ref.get("$ref", ""), name, operation, where)
            for ref in operation.get("messages") or []
        ]
        if not messages:
            raise EventAppError(f"{where}: names no message")
        if action == "send":
            app.sends += messages
        elif action == "receive":
            app.receives += messages
            _subscription(app, operation, where)
        else:
            raise EventAppError(f"{where}: action must be send or receive")
    for kind in (app.sends, app.receives):
        keys = [message.key for message in kind]
        if len(set(keys)) != len(keys):
            raise EventAppError("a message is sent or received by two operations")
    if app.receives and app.queue is None:
        raise EventAppError("a receive operation needs an sns consumer binding with an sqs queue")
    return app


def _message(
    path: Path, resolver: Resolver, ref: str, name: str, operation: dict[str, Any], where: str
) -> Message:
    """Follow the operation's message reference to the message's definition."""
    base, value, pointer = path, {"$ref": ref}, ""
    try:
        while isinstance(value, dict) and isinstance(value.get("$ref"), str):
            base, pointer, value = resolver.resolve_ref(base, value["$ref"])
    except DanglingReferenceError as error:
        raise EventAppError(f"{where}: {error}") from None
    tokens = split(pointer)
    if tokens[:2] != ["components", "messages"] or len(tokens) != 3:
        raise EventAppError(f"{where}: a message must be defined in components/messages")
    payload = value.get("payload") if isinstance(value, dict) else None
    payload = payload.get("$ref", "") if isinstance(payload, dict) else ""
    if not re.fullmatch(r"#/components/schemas/\w+", str(payload)) or not value.get("name"):
        raise EventAppError(f"{where}: message {tokens[2]} needs a name and a payload $ref")
    return Message(
        key=tokens[2],
        event_type=str(value["name"]),
        payload=payload.rsplit("/", 1)[1],
        definitions=base,
        operation=name,
        summary=str(operation.get("summary") or "").rstrip("."),
    )


def _subscription(app: EventApp, operation: dict[str, Any], where: str) -> None:
    consumers = [
        consumer
        for consumer in ((operation.get("bindings") or {}).get("sns") or {}).get("consumers") or []
        if consumer.get("protocol") == "sqs"
    ]
    for consumer in consumers:
        queue = (consumer.get("endpoint") or {}).get("name")
        policy = dict(consumer.get("filterPolicy") or {})
        if app.queue is not None and (queue, policy) != (app.queue, app.filter_policy):
            raise EventAppError(f"{where}: an application receives from one queue")
        app.queue, app.filter_policy = queue, policy
