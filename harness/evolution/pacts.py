"""Consumers' pacts against the provider contracts as they are now: a pact interaction that the
contract no longer admits is a conflict with the consumer that holds it.

A pact (V4, `pacts/<consumer>-<provider>.json`) is matched to its provider's contracts by
name: provider `auth-service` is `contracts/openapi/auth-service.yaml` for its HTTP
interactions and the messages of `contracts/asyncapi/auth-service.yaml` for its message
interactions.

An HTTP interaction is admitted when the contract has an operation for its method and path;
the request carries every required parameter and satisfies one of the operation's security
requirements (a bearer token or the API key header); its body fits the request schema; the
response status is documented; and the response body fits the response schema *and uses only
properties the schema declares* (a property the consumer reads but the contract no longer
promises is a conflict, even where the schema leaves extra properties open).

A message interaction is admitted when the provider still sends a message of its `eventType`
(from the metadata, else the contents), the contents fit the payload schema and use only
declared properties, and every metadata entry is a declared message header that fits it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from harness.authoring.contracts import Resolver, join
from harness.evolution.events import bundle

PACTS_DIRECTORY = "pacts"
HTTP = "Synchronous/HTTP"
MESSAGE = "Asynchronous/Messages"
UNDECLARED = "the consumer reads it; the contract does not declare it"
_PARAMETER = re.compile(r"\{[^}]*\}")


class PactError(Exception):
    """A pact file that cannot be read."""


@dataclass(frozen=True)
class Interaction:
    consumer: str
    provider: str
    description: str
    kind: str
    data: dict[str, Any]
    file: str


@dataclass(frozen=True)
class PactConflict:
    """A pact interaction that the provider's contract no longer admits."""

    consumer: str
    provider: str
    interaction: str
    document: str
    subject: str
    pointer: str
    message: str
    file: str

    def as_json(self) -> dict[str, str]:
        return dict(self.__dict__)


def load_interactions(directory: Path) -> list[Interaction]:
    """Every interaction of every pact file in `directory`, in file order."""
    found: list[Interaction] = []
    for path in sorted(directory.glob("*.json")):
        try:
            pact = json.loads(path.read_text(encoding="utf-8"))
            consumer, provider = pact["consumer"]["name"], pact["provider"]["name"]
            interactions = pact["interactions"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise PactError(f"{path.name}: not a readable pact ({error})") from None
        for interaction in interactions:
            found.append(
                Interaction(
                    consumer=consumer,
                    provider=provider,
                    description=str(interaction.get("description", "")),
                    kind=str(interaction.get("type", HTTP)),
                    data=interaction,
                    file=path.name,
                )
            )
    return found


def _content(body: Any) -> Any:
    """A V4 body's content (`{"content": ..., "contentType": ...}`), or a V3 body as it is."""
    if isinstance(body, dict) and "content" in body and "contentType" in body:
        content = body["content"]
        if body.get("encoded") not in (None, False) and isinstance(content, str):
            return json.loads(content)
        return content
    return body


def _header_names(headers: Any) -> set[str]:
    return {str(name).lower() for name in (headers or {})}


class _Schemas:
    """Validation and property look-up for schemas inside one contract document."""

    def __init__(self, resolver: Resolver, path: Path) -> None:
        self.resolver = resolver
        self.path = path

    def bundled(self, schema: Any) -> Any:
        return bundle(self.resolver, self.path, schema)

    def problems(self, schema: Any, instance: Any) -> list[str]:
        validator = jsonschema.Draft202012Validator(self.bundled(schema))
        return [
            f"{_path(error.absolute_path)}: {error.message}"
            for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
        ]

    def undeclared(self, schema: Any, instance: Any, where: str = "$") -> list[str]:
        """Properties of `instance` that `schema` does not declare, as JSON paths."""
        return list(_undeclared(self.bundled(schema), instance, where))


def _path(parts: Any) -> str:
    text = "$"
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _branches(schema: Any) -> list[Any]:
    """The schema and the subschemas a value must or may also meet (allOf, oneOf, anyOf)."""
    if not isinstance(schema, dict):
        return []
    found = [schema]
    for key in ("allOf", "oneOf", "anyOf"):
        for branch in schema.get(key) or []:
            found.extend(_branches(branch))
    return found


def _undeclared(schema: Any, instance: Any, where: str) -> Iterator[str]:
    branches = _branches(schema)
    if isinstance(instance, dict):
        declared: dict[str, list[Any]] = {}
        open_values: list[Any] = []
        for branch in branches:
            for name, sub in (branch.get("properties") or {}).items():
                declared.setdefault(name, []).append(sub)
            additional = branch.get("additionalProperties")
            if isinstance(additional, dict):
                open_values.append(additional)
        for name, value in instance.items():
            subschemas = declared.get(name) or open_values
            if not subschemas:
                yield f"{where}.{name}"
                continue
            # Declared by any branch is enough; report what is undeclared in all of them.
            reports = [list(_undeclared(sub, value, f"{where}.{name}")) for sub in subschemas]
            yield from min(reports, key=len)
    elif isinstance(instance, list):
        items = [branch["items"] for branch in branches if isinstance(branch.get("items"), dict)]
        for index, value in enumerate(instance):
            if items:
                reports = [list(_undeclared(sub, value, f"{where}[{index}]")) for sub in items]
                yield from min(reports, key=len)


def path_pattern(template: str) -> re.Pattern[str]:
    """A pattern for the concrete paths an OpenAPI path template matches."""
    return re.compile("^" + "[^/]+".join(map(re.escape, _PARAMETER.split(template))) + "$")


def _match_operation(document: Any, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The contract path template and operation that serve `method path`, if any; a template
    with fewer parameters wins, as OpenAPI says a concrete path does."""
    templates = sorted(
        (document.get("paths") or {}).items(), key=lambda entry: len(_PARAMETER.findall(entry[0]))
    )
    for template, item in templates:
        if path_pattern(template).match(path) and isinstance((item or {}).get(method), dict):
            return template, item
    return None


def http_conflicts(
    interaction: Interaction, document_path: Path, shown: str, resolver: Resolver | None = None
) -> list[PactConflict]:
    """What in an HTTP interaction the OpenAPI document at `document_path` does not admit."""
    resolver = resolver or Resolver()
    document = resolver.document(document_path).data
    schemas = _Schemas(resolver, document_path)
    request = interaction.data.get("request") or {}
    response = interaction.data.get("response") or {}
    method = str(request.get("method", "GET")).lower()
    path = str(request.get("path", "/"))
    conflicts: list[tuple[str, str]] = []

    def conflict(message: str, at: str) -> None:
        conflicts.append((message, at))

    matched = _match_operation(document, method, path)
    subject = f"{method.upper()} {path}"
    if matched is None:
        return [
            _conflict(interaction, shown, subject, "/paths", "the contract has no operation for it")
        ]
    template, item = matched
    subject = f"{method.upper()} {template}"
    operation = item[method]
    here = join("", "paths", template, method)
    headers = _header_names(request.get("headers"))
    query = request.get("query") or {}
    for raw in [*(item.get("parameters") or []), *(operation.get("parameters") or [])]:
        _, parameter = resolver.deref(document_path, raw)
        if not parameter.get("required"):
            continue
        name, location = str(parameter.get("name")), parameter.get("in")
        if (location == "query" and name not in query) or (
            location == "header" and name.lower() not in headers
        ):
            conflict(f"the request lacks the required {location} parameter {name!r}", here)
    security = operation.get("security", document.get("security", []))
    if security and not any(
        _satisfied(requirement, document, headers, query) for requirement in security
    ):
        conflict(
            "the request meets none of the operation's security requirements",
            join(here, "security"),
        )
    body = _content(request.get("body"))
    request_body = operation.get("requestBody") or {}
    request_schema = (request_body.get("content") or {}).get("application/json", {}).get("schema")
    if body is None and request_body.get("required"):
        conflict("the request has no body; the contract requires one", join(here, "requestBody"))
    if body is not None and request_schema is not None:
        for problem in schemas.problems(request_schema, body):
            conflict(f"request body {problem}", join(here, "requestBody"))
    status = str(response.get("status", 200))
    responses = operation.get("responses") or {}
    documented = (
        responses.get(status) or responses.get(f"{status[0]}XX") or responses.get("default")
    )
    if documented is None:
        conflict(f"response status {status} is not documented", join(here, "responses"))
    else:
        _, documented = resolver.deref(document_path, documented)
        response_body = _content(response.get("body"))
        media = documented.get("content") or {}
        schema = next((value.get("schema") for key, value in media.items() if "json" in key), None)
        where = join(here, "responses", status)
        if response_body is not None and schema is None:
            conflict(f"response {status} no longer has a JSON body", where)
        elif response_body is not None:
            for problem in schemas.problems(schema, response_body):
                conflict(f"response {status} body {problem}", where)
            for missing in schemas.undeclared(schema, response_body):
                conflict(
                    f"response {status} body {missing}: {UNDECLARED}",
                    where,
                )
    return [_conflict(interaction, shown, subject, at, message) for message, at in conflicts]


def _satisfied(requirement: Any, document: Any, headers: set[str], query: Any) -> bool:
    schemes = (document.get("components") or {}).get("securitySchemes") or {}
    for name in requirement or {}:
        scheme = schemes.get(name) or {}
        if scheme.get("type") == "http" or scheme.get("type") == "oauth2":
            if "authorization" not in headers:
                return False
        elif scheme.get("type") == "apiKey":
            key = str(scheme.get("name", ""))
            present = key.lower() in headers if scheme.get("in") == "header" else key in query
            if not present:
                return False
    return True


def event_type(interaction: Interaction) -> str | None:
    """The event a message interaction is about: its `eventType` metadata, else its contents'."""
    metadata = interaction.data.get("metadata") or {}
    contents = _content(interaction.data.get("contents"))
    found = metadata.get("eventType") or (
        contents.get("eventType") if isinstance(contents, dict) else None
    )
    return str(found) if found else None


def message_conflicts(
    interaction: Interaction, asyncapi_path: Path, shown: str, resolver: Resolver | None = None
) -> list[PactConflict]:
    """What in a message interaction the provider's AsyncAPI document does not admit."""
    resolver = resolver or Resolver()
    document = resolver.document(asyncapi_path).data
    contents = _content(interaction.data.get("contents"))
    metadata = dict(interaction.data.get("metadata") or {})
    event = event_type(interaction)
    subject = str(event)
    sent: dict[str, tuple[Path, dict[str, Any]]] = {}
    for operation in (document.get("operations") or {}).values():
        if (operation or {}).get("action") != "send":
            continue
        for reference in operation.get("messages") or []:
            base, message = resolver.deref(asyncapi_path, reference)
            sent[str(message.get("name"))] = (base, message)
    if event not in sent:
        return [
            _conflict(
                interaction,
                shown,
                subject,
                "/operations",
                f"the provider no longer sends {event!r}",
            )
        ]
    base, message = sent[event]
    schemas = _Schemas(resolver, base)
    conflicts: list[str] = _version_conflicts(interaction, resolver, base, message)
    payload = message.get("payload")
    if contents is not None and payload is not None:
        conflicts += [f"payload {problem}" for problem in schemas.problems(payload, contents)]
        conflicts += [
            f"payload {missing}: {UNDECLARED}" for missing in schemas.undeclared(payload, contents)
        ]
    headers = message.get("headers")
    if metadata and headers is not None:
        meta = {key: value for key, value in metadata.items() if key != "contentType"}
        conflicts += [f"metadata {problem}" for problem in schemas.problems(headers, meta)]
        conflicts += [
            f"metadata {missing}: not a message attribute the contract declares"
            for missing in schemas.undeclared(headers, meta)
        ]
    return [_conflict(interaction, shown, subject, "", message) for message in conflicts]


def _version_conflicts(
    interaction: Interaction, resolver: Resolver, base: Path, message: dict[str, Any]
) -> list[str]:
    """The payload's `x-schema-version` against the pact's regex matchers on `schemaVersion`
    (body and metadata): a consumer built for one major refuses every other."""
    try:
        _, payload = resolver.deref(base, message.get("payload"))
    except Exception:
        return []
    version = payload.get("x-schema-version") if isinstance(payload, dict) else None
    if not isinstance(version, str):
        return []
    rules = interaction.data.get("matchingRules") or {}
    found: list[str] = []
    for where, key in (("body", "$.schemaVersion"), ("metadata", "schemaVersion")):
        entry = (rules.get(where) or {}).get(key) or {}
        for matcher in entry.get("matchers") or []:
            if matcher.get("match") != "regex" or not isinstance(matcher.get("regex"), str):
                continue
            if re.search(matcher["regex"], version) is None:
                found.append(
                    f"{'payload' if where == 'body' else 'metadata'} schemaVersion: the "
                    f"contract's x-schema-version {version} does not match the consumer's "
                    f"matcher {matcher['regex']!r}; it refuses events of this version"
                )
    return found


def _conflict(
    interaction: Interaction, document: str, subject: str, pointer: str, message: str
) -> PactConflict:
    return PactConflict(
        consumer=interaction.consumer,
        provider=interaction.provider,
        interaction=interaction.description,
        document=document,
        subject=subject,
        pointer=pointer,
        message=message,
        file=interaction.file,
    )
