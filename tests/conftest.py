"""Fixtures shared by every test suite."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.project import Project

pytest_plugins = ["harness.conformance.fixtures"]

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repository() -> Project:
    """The Accord project these tests belong to."""
    return Project.load(REPOSITORY)


@pytest.fixture
def project_copy(tmp_path: Path) -> Project:
    """A private copy of the project's contracts and generated models, free to break."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy2(REPOSITORY / "pyproject.toml", root / "pyproject.toml")
    for directory in ("contracts", "generated"):
        shutil.copytree(
            REPOSITORY / directory, root / directory, ignore=shutil.ignore_patterns("__pycache__")
        )
    return Project.load(root)


def edit(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of `old` in a file (line numbers stay where they were)."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")
