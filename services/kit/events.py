"""The event envelope for `contracts/asyncapi/user-events.yaml`.

An event travels as a JSON body (the payload the AsyncAPI document describes) with SNS message
attributes `eventType`, `source`, `schemaVersion` and, when a trace is active, a W3C
`traceparent`. `encode` turns a typed event into that message, validating it first; `decode`
turns a received message back into a typed event, or says precisely why it cannot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from generated.events.catalog import MESSAGES, MessageSpec
from generated.events.catalog import Event as Event
from services.kit.tracing import current_traceparent

# Attributes the kit adds to a message it dead-letters (SQS allows ten attributes; events use
# at most four).
DEAD_LETTER_REASON = "accordDeadLetterReason"
DEAD_LETTER_SOURCE = "accordSourceQueue"


class InvalidEventError(ValueError):
    """An event or message that does not satisfy its contract; `reason` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Message:
    """An event as it crosses the bus: the JSON body and the string message attributes."""

    body: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def event_type(self) -> str | None:
        return self.attributes.get("eventType")


def spec_for(event_type: object) -> MessageSpec:
    spec = MESSAGES.get(event_type) if isinstance(event_type, str) else None
    if spec is None:
        raise InvalidEventError(f"unknown event type {event_type!r}")
    return spec


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def _summarize(error: ValidationError) -> str:
    problems = [
        f"/{'/'.join(str(part) for part in item['loc'])}: {item['msg']}"
        for item in error.errors(include_url=False)
    ]
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more


def validate_body(spec: MessageSpec, body: str) -> Event:
    """Parse and validate a JSON payload strictly against the message's generated model."""
    try:
        event = spec.payload.model_validate_json(body, strict=True)
    except ValidationError as error:
        raise InvalidEventError(
            f"{spec.event_type} payload does not match its schema: {_summarize(error)}"
        ) from None
    return event  # type: ignore[return-value]


def encode(event: Event) -> Message:
    """The message for `event`, validated against its schema; an invalid event raises."""
    spec = spec_for(getattr(event, "eventType", None))
    if not isinstance(event, spec.payload):
        raise InvalidEventError(f"{type(event).__name__} is not a {spec.event_type} payload")
    if _major(event.schemaVersion) != _major(spec.schema_version):
        raise InvalidEventError(
            f"{spec.event_type} schemaVersion {event.schemaVersion} is not compatible with the "
            f"contract's {spec.schema_version}"
        )
    body = event.model_dump_json(exclude_none=True)
    validate_body(spec, body)  # the model may have been built without validation, or mutated
    attributes = {
        "eventType": spec.event_type,
        "source": event.source,
        "schemaVersion": event.schemaVersion,
    }
    # The current span (the request's, under `services.kit.tracing.ServerSpans`): the events a
    # request causes continue its trace.
    traceparent = current_traceparent()
    if traceparent:
        attributes["traceparent"] = traceparent
    return Message(body=body, attributes=attributes)


def decode(message: Message) -> Event:
    """The typed event in a received message, or `InvalidEventError` saying why not."""
    try:
        payload = json.loads(message.body)
    except json.JSONDecodeError as error:
        raise InvalidEventError(f"the body is not JSON: {error.msg}") from None
    if not isinstance(payload, dict):
        raise InvalidEventError("the body is not a JSON object")
    event_type = payload.get("eventType")
    spec = spec_for(event_type)
    attribute = message.event_type
    if attribute is not None and attribute != event_type:
        raise InvalidEventError(
            f"the eventType attribute {attribute!r} contradicts the payload's {event_type!r}"
        )
    version = payload.get("schemaVersion")
    if isinstance(version, str) and _major(version) != _major(spec.schema_version):
        raise InvalidEventError(
            f"{spec.event_type} schemaVersion {version} is not supported "
            f"(this consumer reads {_major(spec.schema_version)}.x)"
        )
    return validate_body(spec, message.body)
