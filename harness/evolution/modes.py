"""Compatibility modes, and checking a new schema against one or more previous versions.

BACKWARD: new readers read old data, so every instance of the old schema must be an instance
of the new one. FORWARD: old readers read new data, so every instance of the new schema must
be an instance of the old one. FULL: both. The TRANSITIVE variants check against every
previous version instead of only the latest; NONE checks nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from harness.evolution.rules import Violation
from harness.evolution.subset import Node, subset_violations


class Mode(StrEnum):
    """How a new version of a schema must relate to the versions before it."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def parse(cls, value: object) -> Mode:
        """A mode from its name, case and `-`/`_` insensitive; ValueError names the choices."""
        text = str(value).strip().upper().replace("-", "_")
        try:
            return cls(text)
        except ValueError:
            choices = ", ".join(mode.value for mode in cls)
            raise ValueError(
                f"unknown compatibility mode {value!r}; use one of {choices}"
            ) from None

    @property
    def backward(self) -> bool:
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.value.startswith(("FORWARD", "FULL"))

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")


# Events travel SNS → SQS: consumers not yet upgraded read new events (producers deploy
# first: FORWARD), and upgraded consumers read old events still queued or redriven from a
# dead-letter queue, up to 14 days later (BACKWARD), against every version still retained
# (TRANSITIVE). docs/compatibility.md#the-default-for-events-full_transitive says more.
DEFAULT_MODE = Mode.FULL_TRANSITIVE


@dataclass(frozen=True)
class Schema:
    """A JSON Schema, with the document its local `$ref`s (`#/...`) resolve in.

    `location` is the pointer of `node` in `document`; violations point into `document`.
    A self-contained schema is its own document.
    """

    node: Any
    document: Any = None
    location: str = ""

    @classmethod
    def standalone(cls, node: Any) -> Schema:
        return cls(node, node, "")

    def as_node(self) -> Node:
        document = self.node if self.document is None else self.document
        return Node(self.node, document, self.location)


def _as_schema(value: Schema | Any) -> Schema:
    return value if isinstance(value, Schema) else Schema.standalone(value)


def backward_violations(
    old: Schema | Any, new: Schema | Any, *, strict: bool = False
) -> list[Violation]:
    """Why new readers may reject old data (old ⊄ new)."""
    return subset_violations(
        _as_schema(old).as_node(), _as_schema(new).as_node(), sup_is_new=True, strict=strict
    )


def forward_violations(
    old: Schema | Any, new: Schema | Any, *, strict: bool = False
) -> list[Violation]:
    """Why old readers may reject new data (new ⊄ old)."""
    return subset_violations(
        _as_schema(new).as_node(), _as_schema(old).as_node(), sup_is_new=False, strict=strict
    )


def check(
    old: Schema | Any, new: Schema | Any, mode: Mode, *, strict: bool = False
) -> list[Violation]:
    """Why `new` is not compatible with `old` under `mode` (empty: compatible).

    For a transitive mode this is the check against one previous version; use
    `check_history` to apply it to all of them.
    """
    found: list[Violation] = []
    if mode.backward:
        found += backward_violations(old, new, strict=strict)
    if mode.forward:
        found += forward_violations(old, new, strict=strict)
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class VersionedViolation:
    """A violation against one previous version of the schema."""

    version: str
    violation: Violation

    def __str__(self) -> str:
        return f"against {self.version}: {self.violation}"


def check_history(
    history: Sequence[tuple[str, Schema | Any]],
    new: Schema | Any,
    mode: Mode,
    *,
    strict: bool = False,
) -> list[VersionedViolation]:
    """`new` against the previous versions (oldest first) as `mode` requires: the latest one,
    or every one for a transitive mode."""
    targets = list(history) if mode.transitive else list(history[-1:])
    return [
        VersionedViolation(version, violation)
        for version, schema in targets
        for violation in check(schema, new, mode, strict=strict)
    ]
