"""Event streams, and the JSONL file they are kept in.

A stream is a sequence of `services.kit.events.Message`s: encoded events exactly as they cross
the bus (JSON body and string message attributes), so that a recorded stream can hold what the
bus really carried, including a message that is not a valid event. One line of a stream file
is one message:

    {"attributes": {"eventType": "user.created", "source": "auth-service", ...}, "body": "{...}"}

`body` is the payload as a JSON *string*, byte for byte as it was sent. A line may also be a
bare payload object (`{"eventId": ..., "eventType": "user.created", ...}`), for streams written
by hand; its attributes are then derived from the payload the way `encode` derives them.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from services.kit.events import Event, InvalidEventError, Message, decode, encode

ATTRIBUTES_FROM_PAYLOAD = ("eventType", "source", "schemaVersion")


class StreamFormatError(ValueError):
    """A stream file line that is not a message; the text names the file and line."""


def to_messages(items: Iterable[Event | Message]) -> tuple[Message, ...]:
    """The stream as messages: events are encoded (validated), messages are kept as they are."""
    return tuple(item if isinstance(item, Message) else encode(item) for item in items)


def payload(message: Message) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one (a poison message)."""
    try:
        value = json.loads(message.body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _uuid_field(message: Message, name: str) -> uuid.UUID | None:
    value = (payload(message) or {}).get(name)
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def event_id(message: Message) -> uuid.UUID | None:
    """The message's `eventId`, if its body has a well-formed one."""
    return _uuid_field(message, "eventId")


def user_id(message: Message) -> uuid.UUID | None:
    """The message's `userId`, if its body has a well-formed one."""
    return _uuid_field(message, "userId")


def try_decode(message: Message) -> Event | None:
    """The typed event, or None for a message that is not a valid event."""
    try:
        return decode(message)
    except InvalidEventError:
        return None


def describe(message: Message) -> str:
    """One line about a message, for reports: type, user, sequence and event id."""
    body = payload(message)
    if body is None:
        shown = message.body if len(message.body) <= 40 else message.body[:37] + "..."
        return f"(not a JSON object: {shown!r}, eventType attribute {message.event_type!r})"
    parts = [str(body.get("eventType", "?"))]
    if "userId" in body:
        parts.append(f"user {str(body['userId'])[:8]}")
    if "sequence" in body:
        parts.append(f"seq {body['sequence']}")
    if "eventId" in body:
        parts.append(f"event {str(body['eventId'])[:8]}")
    return " ".join(parts)


def message_line(message: Message) -> str:
    """The JSONL line (without the newline) for one message."""
    return json.dumps(
        {"attributes": dict(message.attributes), "body": message.body},
        ensure_ascii=False,
        sort_keys=True,
    )


def parse_line(line: str, where: str = "<line>") -> Message:
    """The message on one JSONL line (see the module docstring for the two accepted forms)."""
    try:
        value = json.loads(line)
    except ValueError as error:
        raise StreamFormatError(f"{where}: not JSON ({error})") from None
    if not isinstance(value, dict):
        raise StreamFormatError(f"{where}: not a JSON object")
    if "body" in value:
        body, attributes = value["body"], value.get("attributes", {})
        if not isinstance(body, str):
            raise StreamFormatError(f"{where}: `body` must be a string (the payload as sent)")
        if not isinstance(attributes, Mapping) or not all(
            isinstance(v, str) for v in attributes.values()
        ):
            raise StreamFormatError(f"{where}: `attributes` must map names to strings")
        return Message(body, {str(k): v for k, v in attributes.items()})
    derived = {k: value[k] for k in ATTRIBUTES_FROM_PAYLOAD if isinstance(value.get(k), str)}
    return Message(json.dumps(value, separators=(",", ":")), derived)


def read_stream(path: Path) -> list[Message]:
    """Every message in a stream file, in file order; blank lines are skipped."""
    messages = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                messages.append(parse_line(line, f"{path}:{number}"))
    return messages


def write_stream(path: Path, items: Iterable[Event | Message]) -> int:
    """Write a stream file (replacing it); the number of messages written."""
    with StreamWriter(path, append=False) as writer:
        for message in to_messages(items):
            writer.write(message)
        return writer.written


class StreamWriter:
    """Appends messages to a stream file, one line each, flushed line by line (thread-safe)."""

    def __init__(self, path: Path, *, append: bool = True) -> None:
        self.path = path
        self.append = append
        self.written = 0
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a" if self.append else "w", encoding="utf-8")

    def write(self, message: Message) -> None:
        line = message_line(message) + "\n"
        with self._lock:
            self.open()
            assert self._file is not None
            self._file.write(line)
            self._file.flush()
            self.written += 1

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
