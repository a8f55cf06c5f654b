"""Running the corpus through the merge gate: one git repository holding a copy of the
project (contracts, catalog, pacts) with its commit tagged `base`; each case edits the working
tree, runs `accord check --base base` in-process (the code the command runs), and puts the
files back.

`python -m tests.compat.corpus.run` prints the confusion matrix, the cases the gate gets wrong
and the time per check.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.evolution.gate import CheckReport, check
from harness.project import Project
from tests.compat.corpus.cases import CASES, Case

REPOSITORY = Path(__file__).resolve().parents[3]
COPIED = ("contracts", "schemas", "pacts")


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-C",
            str(root),
            "-c",
            "user.name=Accord corpus",
            "-c",
            "user.email=corpus@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        check=True,
        capture_output=True,
    )


def corpus_repository(root: Path) -> Project:
    """A copy of the project's contracts, catalog and pacts at `root`, committed, tagged `base`."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPOSITORY / "pyproject.toml", root / "pyproject.toml")
    for directory in COPIED:
        shutil.copytree(REPOSITORY / directory, root / directory)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "base")
    _git(root, "tag", "base")
    return Project.load(root)


def _version_edit(event_type: str, version: str) -> tuple[str, str, str]:
    anchor = f"\n      description: Payload of `{event_type}`."
    return (
        "contracts/asyncapi/user-events.yaml",
        f"x-schema-version: 1.0.0{anchor}",
        f"x-schema-version: {version}{anchor}",
    )


def edits(case: Case) -> list[tuple[str, str, str]]:
    found = list(case.edits)
    if case.bump is not None:
        found.append(_version_edit(*case.bump))
    return found


@dataclass(frozen=True)
class Outcome:
    case: Case
    breaking: bool
    consumers: tuple[str, ...]
    seconds: float  # wall-clock
    report: CheckReport
    cpu_seconds: float = 0.0

    @property
    def right(self) -> bool:
        return self.breaking == self.case.breaking and self.consumers == self.case.consumers


def run_case(project: Project, case: Case) -> Outcome:
    """Apply the case to the working tree, run the gate, restore the files."""
    saved: dict[Path, str] = {}
    try:
        for name, old, new in edits(case):
            path = project.root / name
            text = path.read_text(encoding="utf-8")
            saved.setdefault(path, text)
            if text.count(old) != 1:
                raise AssertionError(
                    f"{case.name}: {old!r} occurs {text.count(old)} times in {name}"
                )
            path.write_text(text.replace(old, new), encoding="utf-8")
        started, cpu_started = time.perf_counter(), _cpu()
        report = check(project, "base")
        seconds, cpu = time.perf_counter() - started, _cpu() - cpu_started
    finally:
        for path, text in saved.items():
            path.write_text(text, encoding="utf-8")
    consumers = sorted({name for conflict in report.conflicts for name in conflict.consumers})
    return Outcome(case, not report.safe, tuple(consumers), seconds, report, cpu)


def _cpu() -> float:
    """CPU seconds of this process and the git processes it waited for: the check's own cost,
    whatever else the machine is running."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass(frozen=True)
class Matrix:
    true_positive: int
    false_negative: int
    false_positive: int
    true_negative: int
    consumers_right: int  # true positives that name exactly the labelled consumers

    @classmethod
    def of(cls, outcomes: Iterable[Outcome]) -> Matrix:
        found = list(outcomes)
        return cls(
            sum(o.case.breaking and o.breaking for o in found),
            sum(o.case.breaking and not o.breaking for o in found),
            sum(not o.case.breaking and o.breaking for o in found),
            sum(not o.case.breaking and not o.breaking for o in found),
            sum(o.case.breaking and o.breaking and o.consumers == o.case.consumers for o in found),
        )

    def __str__(self) -> str:
        positives = self.true_positive + self.false_negative
        predicted = self.true_positive + self.false_positive
        recall = self.true_positive / positives if positives else 1.0
        precision = self.true_positive / predicted if predicted else 1.0
        return (
            "                 gate: breaking  gate: safe\n"
            f"label: breaking   {self.true_positive:>14}  {self.false_negative:>10}\n"
            f"label: safe       {self.false_positive:>14}  {self.true_negative:>10}\n"
            f"recall {recall:.2f}, precision {precision:.2f}; consumers named exactly on "
            f"{self.consumers_right} of {self.true_positive} caught"
        )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="accord-corpus-") as scratch:
        project = corpus_repository(Path(scratch) / "project")
        check(project, "base")  # warm up: imports, caches
        outcomes = [run_case(project, case) for case in CASES]
    print(f"{len(outcomes)} cases ({sum(c.breaking for c in CASES)} labelled breaking)")
    print(Matrix.of(outcomes))
    times = [o.seconds for o in outcomes]
    cpu = [o.cpu_seconds for o in outcomes]
    print(f"per check, wall: median {statistics.median(times):.3f} s, max {max(times):.3f} s")
    print(f"per check, CPU:  median {statistics.median(cpu):.3f} s, max {max(cpu):.3f} s")
    print(f"load average while running: {os.getloadavg()[0]:.1f}")
    for outcome in outcomes:
        if not outcome.right:
            print(
                f"  WRONG {outcome.case.name}: labelled "
                f"{'breaking' if outcome.case.breaking else 'safe'} {list(outcome.case.consumers)}"
                f", gate {'breaking' if outcome.breaking else 'safe'} {list(outcome.consumers)}"
            )
            for conflict in outcome.report.conflicts[:4]:
                print(f"      {conflict.rule} {conflict.subject} {conflict.message[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
