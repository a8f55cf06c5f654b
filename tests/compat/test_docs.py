"""docs/compatibility.md and the code agree: every rule id is documented, and every example
gives the verdict the page shows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.evolution import Mode, Rule, check
from harness.evolution.changes import DiffRule
from harness.evolution.versions import VersionRule

DOC = Path(__file__).resolve().parents[2] / "docs" / "compatibility.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCK = re.compile(r"```yaml\n# (old|new)\n(.*?)```", re.S)
ROW = re.compile(r"\| BACKWARD \| FORWARD \| FULL \|\n\|[-|]+\|\n\|(.*)\|")


@dataclass(frozen=True)
class Example:
    """One old → new example of a rule section, with its documented verdicts."""

    section: str
    index: int
    old: Any
    new: Any
    verdicts: dict[Mode, Rule | None]


def _verdict(cell: str) -> Rule | None:
    cell = cell.strip()
    if cell == "✓":
        return None
    match = re.fullmatch(r"✗ `([a-z-]+)`", cell)
    assert match, f"unreadable verdict {cell!r}"
    return Rule(match.group(1))


def examples() -> list[Example]:
    found = []
    sections = re.split(r"^### `([a-z-]+)`\n", TEXT, flags=re.M)
    for name, body in zip(sections[1::2], sections[2::2], strict=True):
        body = body.split("\n## ")[0]
        blocks = BLOCK.findall(body)
        rows = ROW.findall(body)
        assert len(blocks) == 2 * len(rows), f"section {name}: unpaired examples"
        for index, row in enumerate(rows):
            (old_tag, old), (new_tag, new) = blocks[2 * index], blocks[2 * index + 1]
            assert (old_tag, new_tag) == ("old", "new"), f"section {name}: old then new"
            cells = [_verdict(c) for c in row.split("|")]
            modes = (Mode.BACKWARD, Mode.FORWARD, Mode.FULL)
            found.append(
                Example(
                    name,
                    index,
                    yaml.safe_load(old),
                    yaml.safe_load(new),
                    dict(zip(modes, cells, strict=True)),
                )
            )
    return found


EXAMPLES = examples()


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.section}-{e.index}" for e in EXAMPLES])
def test_each_documented_example_gives_the_documented_verdict(example: Example) -> None:
    for mode, expected in example.verdicts.items():
        rules = {v.rule for v in check(example.old, example.new, mode)}
        if expected is None:
            assert rules == set(), f"{mode}: documented ✓, got {rules}"
        else:
            assert expected in rules, f"{mode}: documented {expected}, got {rules}"


def test_every_schema_rule_has_a_section_whose_example_reports_it() -> None:
    reported = {
        example.section
        for example in EXAMPLES
        if Rule(example.section) in example.verdicts.values()
    }

    assert reported == {rule.value for rule in Rule}


@pytest.mark.parametrize(
    "rule",
    [*Rule, *VersionRule, *DiffRule],
    ids=lambda rule: rule.value,
)
def test_every_rule_id_in_the_code_is_documented(rule: Rule | VersionRule | DiffRule) -> None:
    assert f"`{rule.value}`" in TEXT


def test_every_rule_id_in_the_doc_exists_in_the_code() -> None:
    known = {rule.value for rule in [*Rule, *VersionRule, *DiffRule]}
    mentioned = set(re.findall(r"`([a-z]+(?:-[a-z]+)+)`", TEXT))
    not_rules = {name for name in mentioned if name.startswith("x-")} | {"accord-events"}

    assert mentioned - not_rules - known == set()
