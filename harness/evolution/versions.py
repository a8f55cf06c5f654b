"""Semantic versions of event schemas, and whether a version bump matches the change.

Within one major version every schema must be compatible, under the event's mode, with the
versions before it: consumers accept any version of the major they were built for. A change
that breaks that needs a new major version, which starts a new line. So:

- `version-invalid`: `x-schema-version` is missing or not MAJOR.MINOR.PATCH;
- `version-already-published`: the version exists with other content (published versions are
  immutable; bump the version);
- `version-not-increasing`: the version is lower than the latest one;
- `major-bump-missing`: the change is incompatible with an earlier version of the same major.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import total_ordering
from typing import Any

from harness.evolution.modes import Mode, Schema, VersionedViolation, check_history

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


@total_ordering
@dataclass(frozen=True)
class SemVer:
    """A MAJOR.MINOR.PATCH version."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: object) -> SemVer:
        match = SEMVER.match(str(text)) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"{text!r} is not a semantic version such as 1.0.0")
        return cls(*(int(part) for part in match.groups()))

    def _key(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def next_major(self) -> SemVer:
        return SemVer(self.major + 1, 0, 0)


class VersionRule(StrEnum):
    """What can be wrong with a schema's version, given the versions before it."""

    VERSION_INVALID = "version-invalid"
    VERSION_ALREADY_PUBLISHED = "version-already-published"
    VERSION_NOT_INCREASING = "version-not-increasing"
    MAJOR_BUMP_MISSING = "major-bump-missing"


@dataclass(frozen=True)
class VersionProblem:
    """Why a schema cannot be published (or merged) with the version it declares."""

    rule: VersionRule
    message: str
    violations: tuple[VersionedViolation, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The outcome of judging a schema version against the versions before it.

    `action` is `unchanged` (the same version with the same content exists), `new` (it may be
    published) or `refused` (see `problems`). `breaking` lists, for a new major version, the
    changes that made the major bump necessary.
    """

    action: str
    problems: tuple[VersionProblem, ...] = ()
    breaking: tuple[VersionedViolation, ...] = field(default=())


def judge(
    event: str,
    mode: Mode,
    history: Sequence[tuple[SemVer, Schema | Any]],
    version: SemVer,
    schema: Schema | Any,
    *,
    same: bool | None = None,
) -> Verdict:
    """Judge `schema` at `version` against `history` (publication order, oldest first).

    `same` tells whether `schema` equals the published content of `version` when that version
    is in the history (the caller knows how contents compare: checksums, JSON equality).
    """
    published = [v for v, _ in history]
    if version in published:
        if same:
            return Verdict("unchanged")
        return Verdict(
            "refused",
            (
                VersionProblem(
                    VersionRule.VERSION_ALREADY_PUBLISHED,
                    f"{event} {version} is already published with different content; published "
                    "versions never change: bump x-schema-version",
                ),
            ),
        )
    if published and version < max(published):
        return Verdict(
            "refused",
            (
                VersionProblem(
                    VersionRule.VERSION_NOT_INCREASING,
                    f"{event} {version} is lower than the latest published version "
                    f"{max(published)}",
                ),
            ),
        )
    same_major = [(str(v), s) for v, s in history if v.major == version.major]
    if same_major:
        violations = check_history(same_major, schema, mode)
        if violations:
            latest = max(v for v, _ in history if v.major == version.major)
            return Verdict(
                "refused",
                (
                    VersionProblem(
                        VersionRule.MAJOR_BUMP_MISSING,
                        f"{event} {version} is not {mode} compatible with "
                        f"{_versions(violations)}, and a breaking change needs a new major "
                        f"version ({latest.next_major()} or later)",
                        tuple(violations),
                    ),
                ),
            )
        return Verdict("new")
    if not history or mode is Mode.NONE:
        return Verdict("new")
    # A new major version: breaking changes are allowed; say which ones made it necessary.
    latest_version, latest_schema = history[-1]
    return Verdict(
        "new", breaking=tuple(check_history([(str(latest_version), latest_schema)], schema, mode))
    )


def _versions(violations: Sequence[VersionedViolation]) -> str:
    return ", ".join(dict.fromkeys(v.version for v in violations))
