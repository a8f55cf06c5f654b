"""The corpus (`tests/compat/corpus/cases.py`): each single change, labelled beforehand, through
`accord check` (the gate's own code, in-process, against a git base). The gate must reach
full recall and full precision on it and name exactly the consumers each label names, in
well under 1.5 s per check."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.evolution.gate import check
from harness.project import Project
from tests.compat.corpus.cases import CASES, Case
from tests.compat.corpus.run import Matrix, Outcome, corpus_repository, run_case

SECONDS_PER_CHECK = 1.5
_outcomes: dict[str, Outcome] = {}


@pytest.fixture(scope="module")
def corpus_repo(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = corpus_repository(Path(tmp_path_factory.mktemp("corpus")) / "project")
    check(project, "base")  # imports and caches warm, as in a real run
    return project


def test_the_corpus_is_large_and_mixed() -> None:
    http = [case for case in CASES if all("/openapi/" in f"/{e[0]}" for e in case.edits)]
    assert len(CASES) >= 60
    assert len(http) >= 20
    assert len(CASES) - len(http) >= 20
    assert len({case.name for case in CASES}) == len(CASES)
    assert any(case.breaking for case in CASES)
    assert any(not case.breaking for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_change_gets_its_label(case: Case, corpus_repo: Project) -> None:
    outcome = run_case(corpus_repo, case)
    _outcomes[case.name] = outcome

    shown = [f"{c.kind} {c.rule} {c.subject}: {c.message}" for c in outcome.report.conflicts]
    assert outcome.breaking == case.breaking, shown
    assert outcome.consumers == case.consumers, shown


def test_full_recall_full_precision_and_fast(
    corpus_repo: Project, record_property: Callable[[str, object], None]
) -> None:
    for case in CASES:
        if case.name not in _outcomes:  # run alone, or after a failure
            _outcomes[case.name] = run_case(corpus_repo, case)
    matrix = Matrix.of(_outcomes[case.name] for case in CASES)
    times = [outcome.seconds for outcome in _outcomes.values()]
    cpu = [outcome.cpu_seconds for outcome in _outcomes.values()]
    record_property("confusion", str(matrix))
    record_property("median_seconds", round(statistics.median(times), 3))
    record_property("max_seconds", round(max(times), 3))
    record_property("median_cpu_seconds", round(statistics.median(cpu), 3))
    record_property("max_cpu_seconds", round(max(cpu), 3))

    assert (matrix.false_negative, matrix.false_positive) == (0, 0), str(matrix)
    assert matrix.consumers_right == matrix.true_positive, str(matrix)
    # CPU time (git included), so that a machine busy with other work does not fail it.
    assert statistics.median(cpu) < SECONDS_PER_CHECK
    assert max(cpu) < SECONDS_PER_CHECK
