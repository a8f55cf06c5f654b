"""The project's own rules, beyond what the specifications require.

OpenAPI:
- every operation has a unique `operationId`;
- every operation that takes input (a body, parameters or a token) documents its errors: at
  least one 4xx; 400, 413 and 422 when it takes a body (every service refuses a body over its
  limit with 413); 422 when it takes parameters; 401 when it needs a token; 403 when it needs
  a role or ownership; and every 4xx response is `application/problem+json` (RFC 9457);
- `x-owner-parameter` names a path parameter; every link names an existing operation.

AsyncAPI:
- every message has a name and a versioned payload schema: `x-schema-version` is a semantic
  version, the payload has a `schemaVersion` property that admits it, and the payload's
  `eventType` is the message name;
- every message a receiver expects is sent by some application;
- a receiver's SNS filter policy on `eventType` lets through exactly the messages it receives;
- a queue's dead-letter queue is declared beside it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.authoring.contracts import (
    DanglingReferenceError,
    Document,
    Resolver,
    join,
    lookup,
    messages_defined,
)
from harness.authoring.lint.report import Reporter

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
PROBLEM_JSON = "application/problem+json"


def _object(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping, else an empty one: a malformed part of a document (a
    `null` where an object belongs) is the specification checks' finding, not a crash here."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# --- OpenAPI ---------------------------------------------------------------------------------


def operations(document: Document) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(pointer, path, method, operation) for every operation in an OpenAPI document."""
    paths = _object(document.data.get("paths"))
    for path, item in paths.items():
        if not isinstance(item, dict):
            continue
        for method in METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                yield join("", "paths", path, method), path, method, operation


def _deref(resolver: Resolver, base: Path, value: Any) -> Any:
    try:
        return resolver.deref(base, value)[1]
    except DanglingReferenceError:
        return None


def _id(operation: dict[str, Any]) -> str | None:
    value = operation.get("operationId")
    return value if isinstance(value, str) else None


def check_openapi_rules(document: Document, resolver: Resolver, report: Reporter) -> None:
    seen_ids: dict[str, str] = {}
    top_security = document.data.get("security", [])
    all_ids = {_id(op) for _, _, _, op in operations(document)}
    for pointer, path, method, operation in operations(document):
        name = f"{method.upper()} {path}"
        operation_id = _id(operation)
        if "operationId" in operation and operation_id is None:
            pass  # not a string: the specification checks say so
        elif not operation_id:
            report.add(document.path, pointer, f"{name} has no operationId")
        elif operation_id in seen_ids:
            report.add(
                document.path,
                join(pointer, "operationId"),
                f"operationId {operation_id!r} is also used by {seen_ids[operation_id]}",
            )
        else:
            seen_ids[operation_id] = name

        responses = _object(operation.get("responses"))
        codes = {str(code) for code in responses}
        parameters = [
            _deref(resolver, document.path, p)
            for p in [
                *_list(_object(document.data["paths"][path]).get("parameters")),
                *_list(operation.get("parameters")),
            ]
        ]
        has_parameters = any(
            isinstance(p, dict) and p.get("in") in ("path", "query") for p in parameters
        )
        security = [_object(r) for r in _list(operation.get("security", top_security))]
        secured = bool(security) and all(requirement for requirement in security)
        restricted = "x-owner-parameter" in operation or any(
            roles for requirement in security for roles in requirement.values()
        )

        required: list[tuple[str, str]] = []
        if "requestBody" in operation:
            required += [
                ("400", "takes a request body"),
                ("413", "takes a request body"),
                ("422", "takes a request body"),
            ]
        if has_parameters:
            required.append(("422", "takes parameters"))
        if secured:
            required.append(("401", "requires a token"))
        if restricted:
            required.append(("403", "requires a role or ownership"))
        takes_input = "requestBody" in operation or has_parameters or secured
        if takes_input and not any(code.startswith("4") for code in codes):
            report.add(
                document.path, join(pointer, "responses"), f"{name} documents no error response"
            )
        for code, why in dict(required).items():
            if code not in codes:
                report.add(
                    document.path,
                    join(pointer, "responses"),
                    f"{name} {why} but does not document a {code} response",
                )

        for code, response in responses.items():
            resolved = _deref(resolver, document.path, response)
            if not isinstance(resolved, dict):
                continue
            where = join(pointer, "responses", str(code))
            if str(code).startswith("4") and PROBLEM_JSON not in _object(resolved.get("content")):
                report.add(
                    document.path, where, f"{name} error response {code} is not {PROBLEM_JSON}"
                )
            for link_name, link in _object(resolved.get("links")).items():
                target = _object(_deref(resolver, document.path, link)).get("operationId")
                if target is not None and target not in all_ids:
                    report.add(
                        document.path,
                        join(where, "links", link_name),
                        f"link {link_name!r} names unknown operation {target!r}",
                    )

        owner = operation.get("x-owner-parameter")
        if owner is not None and f"{{{owner}}}" not in str(path):
            report.add(
                document.path,
                join(pointer, "x-owner-parameter"),
                f"x-owner-parameter {owner!r} is not a path parameter of {path}",
            )


# --- AsyncAPI --------------------------------------------------------------------------------


def check_messages(document: Document, resolver: Resolver, report: Reporter) -> None:
    for pointer, message in messages_defined(document):
        name = message.get("name")
        if not name:
            report.add(document.path, pointer, "message has no name (its event type)")
        if "payload" not in message:
            report.add(document.path, pointer, f"message {name!r} has no payload schema")
            continue
        payload = _deref(resolver, document.path, message["payload"])
        if not isinstance(payload, dict):
            continue
        where = join(pointer, "payload")
        version = payload.get("x-schema-version")
        if not isinstance(version, str) or not SEMVER.match(version):
            report.add(
                document.path,
                where,
                f"message {name!r} has no versioned payload schema: "
                "x-schema-version must be a semantic version such as 1.0.0",
            )
            continue
        properties = _properties(resolver, document.path, payload)
        schema_version = _deref(resolver, document.path, properties.get("schemaVersion"))
        if not isinstance(schema_version, dict):
            report.add(
                document.path,
                where,
                f"message {name!r}: the payload has no schemaVersion property",
            )
        elif not _admits(schema_version, version):
            report.add(
                document.path,
                where,
                f"message {name!r}: schemaVersion does not admit x-schema-version {version}",
            )
        event_type = _object(_deref(resolver, document.path, properties.get("eventType")))
        if name and event_type.get("const") != name:
            report.add(
                document.path,
                where,
                f"message {name!r}: the payload's eventType must be const {name!r}",
            )


def _properties(
    resolver: Resolver, base: Path, schema: dict[str, Any], depth: int = 0
) -> dict[str, Any]:
    """The properties a schema declares, its `allOf` members' included (a payload refactored
    into `allOf` means the same): the first declaration of a name wins."""
    found = dict(_object(schema.get("properties")))
    if depth > 20:
        return found
    for member in _list(schema.get("allOf")):
        resolved = _deref(resolver, base, member)
        if isinstance(resolved, dict):
            for name, value in _properties(resolver, base, resolved, depth + 1).items():
                found.setdefault(name, value)
    return found


def _admits(schema: dict[str, Any], value: str) -> bool:
    if "const" in schema:
        return bool(schema["const"] == value)
    if "enum" in schema:
        return value in _list(schema["enum"])
    pattern = schema.get("pattern")
    if not isinstance(pattern, str):
        return True
    try:
        return re.search(pattern, value) is not None
    except re.error:  # not a regular expression: the specification checks say so
        return True


def operation_messages(
    document: Document, resolver: Resolver
) -> Iterator[tuple[str, str, str, str | None]]:
    """(operation pointer, message pointer, action, message name) for each operation message."""
    for op_name, operation in _object(document.data.get("operations")).items():
        if not isinstance(operation, dict):
            continue
        pointer = join("", "operations", op_name)
        action = operation.get("action", "")
        listed = operation.get("messages")
        if listed is None:  # no list: every message of the channel
            channel = _object(_deref(resolver, document.path, operation.get("channel")))
            listed = list(_object(channel.get("messages")).values())
            where = [join(pointer, "channel")] * len(listed)
        else:
            listed = _list(listed)
            where = [join(pointer, "messages", i) for i in range(len(listed))]
        for message_pointer, reference in zip(where, listed, strict=True):
            message = _deref(resolver, document.path, reference)
            name = message.get("name") if isinstance(message, dict) else None
            yield pointer, message_pointer, action, name if isinstance(name, str) else None


def check_senders_and_receivers(
    documents: list[Document], resolver: Resolver, report: Reporter
) -> None:
    sent = {
        name
        for document in documents
        for _, _, action, name in operation_messages(document, resolver)
        if action == "send"
    }
    for document in documents:
        received: dict[str, set[str]] = {}
        for op_pointer, message_pointer, action, name in operation_messages(document, resolver):
            if action != "receive" or name is None:
                continue
            received.setdefault(op_pointer, set()).add(name)
            if name not in sent:
                report.add(
                    document.path,
                    message_pointer,
                    f"receives {name!r} but no application sends it",
                )
        for op_pointer, names in received.items():
            operation = resolve_pointer(document, op_pointer)
            check_bindings(document, op_pointer, operation, names, report)


def resolve_pointer(document: Document, pointer: str) -> dict[str, Any]:
    value = lookup(document.data, pointer)
    return value if isinstance(value, dict) else {}


def check_bindings(
    document: Document,
    pointer: str,
    operation: dict[str, Any],
    names: set[str],
    report: Reporter,
) -> None:
    bindings = _object(operation.get("bindings"))
    consumers = _list(_object(bindings.get("sns")).get("consumers"))
    for index, consumer in enumerate(consumers):
        policy = _object(_object(consumer).get("filterPolicy")).get("eventType")
        where = join(pointer, "bindings", "sns", "consumers", index, "filterPolicy")
        if policy is None:
            report.add(document.path, where, "the subscription has no filter policy on eventType")
            continue
        allowed = (
            {policy}
            if isinstance(policy, str)
            else {p for p in _list(policy) if isinstance(p, str)}
        )
        for missing in sorted(names - allowed):
            report.add(
                document.path, where, f"the filter policy keeps out {missing!r}, which it receives"
            )
        for extra in sorted(allowed - names):
            report.add(
                document.path,
                where,
                f"the filter policy lets in {extra!r}, which it does not receive",
            )
    queues = _list(_object(bindings.get("sqs")).get("queues"))
    declared = {queue.get("name") for queue in queues if isinstance(queue, dict)}
    for index, queue in enumerate(queues):
        redrive = _object(_object(queue).get("redrivePolicy"))
        dead_letter = _object(redrive.get("deadLetterQueue")).get("name")
        if dead_letter is not None and dead_letter not in declared:
            report.add(
                document.path,
                join(pointer, "bindings", "sqs", "queues", index, "redrivePolicy"),
                f"dead-letter queue {dead_letter!r} is not declared among the queues",
            )
