"""Every example in a contract validates against the schema it illustrates.

OpenAPI 3.1 schemas are JSON Schema 2020-12; AsyncAPI 3.0 payloads (the default schema
format) are a superset of JSON Schema draft-07. Formats (email, uuid, date-time) are checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7, DRAFT202012

from harness.authoring.contracts import DanglingReferenceError, Document, Resolver, join
from harness.authoring.lint.report import Reporter
from harness.authoring.lint.structure import walk

FORMATS = jsonschema.FormatChecker()


def openapi_examples(document: Document) -> Iterator[tuple[str, str, Any]]:
    """(schema pointer, example pointer, example) for media types, parameters and headers."""
    for pointer, value in walk(document.data):
        if not isinstance(value, dict) or not isinstance(value.get("schema"), dict):
            continue
        schema_pointer = join(pointer, "schema")
        if "example" in value:
            yield schema_pointer, join(pointer, "example"), value["example"]
        examples = value.get("examples")
        if isinstance(examples, dict):
            for name, example in examples.items():
                if isinstance(example, dict) and "value" in example:
                    yield schema_pointer, join(pointer, "examples", name, "value"), example["value"]


def asyncapi_examples(document: Document) -> Iterator[tuple[str, str, Any]]:
    """(schema pointer, example pointer, example) for message payloads and headers."""
    for pointer, message in walk(document.data):
        parent = pointer.rsplit("/", 2)[-2] if pointer.count("/") >= 2 else ""
        if parent != "messages" or not isinstance(message, dict) or "$ref" in message:
            continue
        examples = message.get("examples")
        for index, example in enumerate(examples if isinstance(examples, list) else []):
            if not isinstance(example, dict):
                continue
            for part in ("payload", "headers"):
                if part in example and part in message:
                    yield join(pointer, part), join(pointer, "examples", index, part), example[part]


def check_examples(
    document: Document, kind: str | None, resolver: Resolver, report: Reporter
) -> None:
    if kind == "openapi":
        found, specification = openapi_examples(document), DRAFT202012
        validator_class: Any = jsonschema.Draft202012Validator
    elif kind == "asyncapi":
        found, specification = asyncapi_examples(document), DRAFT7
        validator_class = jsonschema.Draft7Validator
    else:
        return
    uri = document.path.as_uri()
    registry: Registry[Any] = Registry().with_resource(
        uri, Resource.from_contents(document.data, default_specification=specification)
    )
    for path, other in resolver.documents.items():
        if other is not document:
            registry = registry.with_resource(
                path.as_uri(),
                Resource.from_contents(other.data, default_specification=specification),
            )
    for schema_pointer, example_pointer, example in found:
        validator = validator_class(
            {"$ref": f"{uri}#{schema_pointer}"}, registry=registry, format_checker=FORMATS
        )
        try:
            error = best_match(validator.iter_errors(example))
        except (DanglingReferenceError, jsonschema.exceptions.SchemaError) as problem:
            report.add(document.path, example_pointer, f"example not checked: {problem}")
            continue
        except Exception:  # noqa: S112 - a malformed schema (a `null` subschema) breaks jsonschema
            # The malformed part is the specification checks' finding; the example waits for it.
            continue
        if error is not None:
            where = join("", *error.absolute_path) or "/"
            report.add(
                document.path,
                example_pointer,
                f"example does not match its schema at {where}: {error.message}",
            )
