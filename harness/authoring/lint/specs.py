"""Validation against the official specifications: OpenAPI 3.x and AsyncAPI 3.0."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator
from referencing.exceptions import Unresolvable

from harness.authoring.contracts import Document, join
from harness.authoring.lint.report import Reporter

# The official AsyncAPI 3.0.0 JSON Schema, bundled with its binding schemas, as published in
# the `@asyncapi/specs` package (version 6.11.1, Apache-2.0). Vendored so that `accord lint`
# works offline and gives the same answer everywhere.
ASYNCAPI_SCHEMA = "asyncapi-3.0.0.schema.json"


@cache
def asyncapi_validator() -> jsonschema.Draft7Validator:
    text = (
        resources.files("harness.authoring.lint")
        .joinpath(ASYNCAPI_SCHEMA)
        .read_text(encoding="utf-8")
    )
    return jsonschema.Draft7Validator(json.loads(text))


def pointer_of(error: ValidationError) -> str:
    return join("", *error.absolute_path)


def most_relevant(error: ValidationError) -> ValidationError:
    """The deepest sub-error of a `oneOf`/`anyOf` failure: the one a person can act on."""
    return best_match([error]) if error.context else error


def check_asyncapi(document: Document, report: Reporter) -> None:
    version = document.data.get("asyncapi")
    if version != "3.0.0":
        report.add(document.path, "/asyncapi", f"AsyncAPI {version!r} is not supported; use 3.0.0")
        return
    for error in asyncapi_validator().iter_errors(document.data):
        leaf = most_relevant(error)
        report.add(document.path, pointer_of(leaf), f"AsyncAPI 3.0 schema: {leaf.message}")


def check_openapi(document: Document, resolvable: bool, report: Reporter) -> None:
    data: dict[str, Any] = document.data
    version = str(data.get("openapi", ""))
    validator_class = (
        OpenAPIV31SpecValidator
        if version.startswith("3.1")
        else OpenAPIV30SpecValidator
        if version.startswith("3.0")
        else None
    )
    if validator_class is None:
        report.add(document.path, "/openapi", f"OpenAPI {version!r} is not supported")
        return
    validator = validator_class(data, base_uri=document.path.as_uri())
    reported = 0
    try:
        for error in validator.iter_errors():
            leaf = most_relevant(error)
            # The first paragraph; the rest repeats the schema path and the instance.
            message = leaf.message.split("\n\n", 1)[0]
            report.add(document.path, pointer_of(leaf), f"OpenAPI {version}: {message}")
            reported += 1
    except Unresolvable as error:
        # Dangling references are already reported with their location; the validator
        # stops at the first one it meets, so only say so when that is news.
        if resolvable:
            report.add(document.path, "", f"OpenAPI validation stopped: {error}")
    except Exception as error:
        # The validator's checks beyond the JSON Schema assume a well-formed document (a
        # parameter that is `null` raises KeyError); the schema errors reported first say
        # what is malformed, so only speak when they said nothing.
        if not reported:
            report.add(
                document.path, "", f"OpenAPI validation stopped: {type(error).__name__}: {error}"
            )
