"""Event payload schemas as the AsyncAPI documents declare them.

Each message defined in a document (`components/messages` or a channel's `messages`) is an
event: its `name` is the event type, its payload schema carries `x-schema-version`, and its
optional `x-compatibility` extension names the compatibility mode (default FULL_TRANSITIVE,
see `harness.evolution.modes.DEFAULT_MODE`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.authoring.contracts import (
    DanglingReferenceError,
    Resolver,
    join,
    messages_defined,
    split,
)
from harness.evolution.modes import DEFAULT_MODE, Mode, Schema

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class EventSchemaError(Exception):
    """A message whose event schema cannot be read: no name, a bad mode, a dangling $ref."""


@dataclass(frozen=True)
class EventSchema:
    """One event: its type, compatibility mode, declared version and payload schema."""

    event_type: str
    mode: Mode
    version: str | None
    message_pointer: str
    payload: Schema
    path: Path
    headers: Schema | None = None  # the message attributes (SNS), when declared

    def bundled(self, resolver: Resolver) -> dict[str, Any]:
        """The payload schema as one self-contained JSON Schema document."""
        node = bundle(resolver, self.path, self.payload.node)
        document = node if isinstance(node, dict) else {"allOf": [node]}
        return {"$schema": JSON_SCHEMA_DIALECT, **document}


def event_schemas(path: Path, resolver: Resolver | None = None) -> list[EventSchema]:
    """The events defined in the AsyncAPI document at `path`, in document order."""
    resolver = resolver or Resolver()
    document = resolver.document(path)
    events: list[EventSchema] = []
    for pointer, message in messages_defined(document):
        name = message.get("name")
        where = f"{path.name}#{pointer}"
        if not isinstance(name, str) or not name:
            raise EventSchemaError(f"{where}: the message has no name (its event type)")
        try:
            mode = Mode.parse(message.get("x-compatibility", DEFAULT_MODE))
        except ValueError as error:
            raise EventSchemaError(f"{where}/x-compatibility: {error}") from None
        if "payload" not in message:
            raise EventSchemaError(f"{where}: message {name!r} has no payload schema")
        payload_path, location, payload = _follow(
            resolver, document.path, join(pointer, "payload"), message["payload"]
        )
        if isinstance(payload, dict) and "schemaFormat" in payload and "schema" in payload:
            payload_path, location, payload = _follow(
                resolver, payload_path, join(location, "schema"), payload["schema"]
            )
        version = payload.get("x-schema-version") if isinstance(payload, dict) else None
        headers = None
        if "headers" in message:
            headers_path, headers_location, headers_node = _follow(
                resolver, document.path, join(pointer, "headers"), message["headers"]
            )
            headers = Schema(headers_node, resolver.document(headers_path).data, headers_location)
        events.append(
            EventSchema(
                event_type=name,
                mode=mode,
                version=version if isinstance(version, str) else None,
                message_pointer=pointer,
                payload=Schema(payload, resolver.document(payload_path).data, location),
                path=payload_path,
                headers=headers,
            )
        )
    return events


def _follow(resolver: Resolver, base: Path, pointer: str, value: Any) -> tuple[Path, str, Any]:
    """Follow a `$ref` chain: the file, pointer and value at its end."""
    seen: set[tuple[Path, str]] = set()
    while isinstance(value, dict) and isinstance(value.get("$ref"), str):
        try:
            base, pointer, value = resolver.resolve_ref(base, value["$ref"])
        except DanglingReferenceError as error:
            raise EventSchemaError(str(error)) from None
        if (base, pointer) in seen:
            raise EventSchemaError(f"$ref cycle through {base.name}#{pointer}")
        seen.add((base, pointer))
    return base, pointer, value


def bundle(resolver: Resolver, base: Path, value: Any) -> Any:
    """`value` with every `$ref` replaced by its target, so it stands alone.

    A recursive reference cannot be inlined: its target goes to `$defs` under the name of its
    last pointer token, and the reference becomes `#/$defs/<name>`.
    """
    defs: dict[str, Any] = {}
    names: dict[tuple[Path, str], str] = {}

    def walk(base: Path, value: Any, stack: frozenset[tuple[Path, str]]) -> Any:
        if isinstance(value, list):
            return [walk(base, item, stack) for item in value]
        if not isinstance(value, dict):
            return value
        ref = value.get("$ref")
        if not isinstance(ref, str):
            return {key: walk(base, item, stack) for key, item in value.items()}
        try:
            path, pointer, target = resolver.resolve_ref(base, ref)
        except DanglingReferenceError as error:
            raise EventSchemaError(str(error)) from None
        siblings = {key: walk(base, item, stack) for key, item in value.items() if key != "$ref"}
        key = (path, pointer)
        if key in stack:
            if key not in names:
                names[key] = _def_name(pointer, set(names.values()))
                defs[names[key]] = None
                defs[names[key]] = walk(path, target, frozenset({key}))
            inlined: Any = {"$ref": f"#/$defs/{names[key]}"}
        else:
            inlined = walk(path, target, stack | {key})
        if not siblings:
            return inlined
        if isinstance(inlined, dict) and "$ref" not in inlined and not set(siblings) & set(inlined):
            return {**inlined, **siblings}
        return {"allOf": [inlined], **siblings}

    result = walk(base, value, frozenset())
    if defs and isinstance(result, dict):
        result = {**result, "$defs": {**result.get("$defs", {}), **defs}}
    return result


def _def_name(pointer: str, taken: set[str]) -> str:
    tokens = split(pointer) if pointer else ["root"]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", tokens[-1]) or "schema"
    candidate, counter = name, 2
    while candidate in taken:
        candidate, counter = f"{name}{counter}", counter + 1
    return candidate
