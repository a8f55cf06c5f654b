"""The version rules for event schemas: a breaking change needs a new major version."""

from __future__ import annotations

from typing import Any

import pytest

from harness.evolution import Mode
from harness.evolution.versions import SemVer, VersionRule, judge

V1 = {"type": "object", "properties": {"id": {"type": "string"}}}
V1_REQUIRED = {**V1, "required": ["id"]}


def history(*schemas: Any) -> list[tuple[SemVer, Any]]:
    return [(SemVer(1, minor, 0), schema) for minor, schema in enumerate(schemas)]


def test_versions_order_numerically_not_alphabetically() -> None:
    assert SemVer.parse("1.10.0") > SemVer.parse("1.9.3")
    assert str(SemVer.parse("2.0.1")) == "2.0.1"
    with pytest.raises(ValueError, match="not a semantic version"):
        SemVer.parse("1.0")


def test_the_first_version_of_an_event_is_new() -> None:
    assert judge("e", Mode.BACKWARD, [], SemVer(1, 0, 0), V1).action == "new"


def test_the_same_version_with_the_same_content_is_unchanged() -> None:
    verdict = judge("e", Mode.BACKWARD, history(V1), SemVer(1, 0, 0), V1, same=True)

    assert verdict.action == "unchanged"


def test_the_same_version_with_other_content_is_refused() -> None:
    verdict = judge("e", Mode.BACKWARD, history(V1), SemVer(1, 0, 0), V1_REQUIRED, same=False)

    assert [p.rule for p in verdict.problems] == [VersionRule.VERSION_ALREADY_PUBLISHED]


def test_a_breaking_minor_version_is_refused_with_the_violations() -> None:
    verdict = judge("e", Mode.BACKWARD, history(V1), SemVer(1, 1, 0), V1_REQUIRED)

    (problem,) = verdict.problems
    assert problem.rule is VersionRule.MAJOR_BUMP_MISSING
    assert "2.0.0" in problem.message
    assert [(v.version, v.violation.rule.value) for v in problem.violations] == [
        ("1.0.0", "required-added")
    ]


def test_a_breaking_major_version_is_new_and_lists_what_broke() -> None:
    verdict = judge("e", Mode.BACKWARD, history(V1), SemVer(2, 0, 0), V1_REQUIRED)

    assert verdict.action == "new"
    assert [v.violation.rule.value for v in verdict.breaking] == ["required-added"]


def test_a_new_major_line_is_checked_against_its_own_versions_only() -> None:
    past = [(SemVer(1, 0, 0), V1), (SemVer(2, 0, 0), V1_REQUIRED)]

    verdict = judge("e", Mode.FORWARD_TRANSITIVE, past, SemVer(2, 1, 0), V1_REQUIRED)

    assert verdict.action == "new"


def test_mode_none_accepts_any_change_within_a_major() -> None:
    assert judge("e", Mode.NONE, history(V1), SemVer(1, 1, 0), {"type": "integer"}).action == "new"


def test_a_version_below_the_latest_is_refused() -> None:
    verdict = judge("e", Mode.BACKWARD, history(V1, V1), SemVer(1, 0, 5), V1)

    assert [p.rule for p in verdict.problems] == [VersionRule.VERSION_NOT_INCREASING]
