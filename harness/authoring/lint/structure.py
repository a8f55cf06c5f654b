"""Checks of a document's structure, before its meaning: every `$ref` leads somewhere, and no
key is left `null` where a value belongs (most often a block indented too little)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.authoring.contracts import (
    DanglingReferenceError,
    Document,
    Resolver,
    join,
    lookup,
    split,
)
from harness.authoring.lint.report import Reporter


def walk(value: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """Every (pointer, value) pair in a document, depth first, the root included."""
    yield pointer, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from walk(child, join(pointer, str(key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from walk(child, join(pointer, index))


def check_references(document: Document, resolver: Resolver, report: Reporter) -> bool:
    """Report every `$ref` in `document` that leads nowhere; true when all resolve."""
    ok = True
    for pointer, value in walk(document.data):
        if isinstance(value, dict) and isinstance(value.get("$ref"), str):
            try:
                resolver.resolve_ref(document.path, value["$ref"])
            except DanglingReferenceError as error:
                report.add(document.path, join(pointer, "$ref"), f"dangling {error}")
                ok = False
    return ok


# Keys whose values are data, where `null` is a value like any other: examples, defaults,
# constants and enumerations (specification extensions, `x-...`, are skipped too).
DATA_KEYS = frozenset({"example", "examples", "default", "const", "enum"})


def misplaced_nulls(value: Any, pointer: str = "") -> Iterator[str]:
    """The pointer of every `null` outside data: a key left empty, most often because what
    belongs under it (a `$ref`, a block) is indented too little and became its sibling."""
    if isinstance(value, dict):
        for key, child in value.items():
            key = str(key)
            if key in DATA_KEYS or key.startswith("x-"):
                continue
            if child is None:
                yield join(pointer, key)
            else:
                yield from misplaced_nulls(child, join(pointer, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            if child is None:
                yield join(pointer, index)
            else:
                yield from misplaced_nulls(child, join(pointer, index))


def check_nulls(document: Document, report: Reporter) -> None:
    for pointer in misplaced_nulls(document.data):
        *parents, last = split(pointer)
        if isinstance(lookup(document.data, join("", *parents)), list):
            what = f"item {last} of {parents[-1]!r}" if parents else f"item {last}"
            hint = "is the `$ref` or block meant to be there indented too little?"
        else:
            what = repr(last)
            hint = "is the `$ref` or block meant to be under it indented too little?"
        report.add(document.path, pointer, f"{what} is null where a value belongs: {hint}")
