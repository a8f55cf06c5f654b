"""What every `accord` command shares: `--root` (one option, on every command) and a `--help`
that lists flags without a value type and says each default once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner

from harness.cli import app
from harness.project import Project
from tests.conftest import REPOSITORY

runner = CliRunner()


def commands(
    group: Any = None, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command of the `accord` application and the words that call it."""
    group = group if group is not None else typer.main.get_group(app)
    for name, command in sorted(group.commands.items()):
        if isinstance(command, TyperGroup):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


def options(command: Any, flag: str) -> list[Any]:
    return [param for param in command.params if flag in getattr(param, "opts", [])]


def option_rows(help_text: str) -> list[str]:
    """The help's option rows, each with its continuation lines."""
    rows: list[str] = []
    for line in help_text.splitlines():
        if re.match(r"^│\s+(\*\s+)?-", line):
            rows.append(line)
        elif rows and line.startswith("│"):
            rows[-1] += "\n" + line
    return rows


def test_every_command_takes_the_one_shared_root_option() -> None:
    found = {" ".join(words): options(command, "--root") for words, command in commands()}

    assert [words for words, roots in found.items() if len(roots) != 1] == []
    helps = {getattr(roots[0], "help", None) for roots in found.values()}
    assert len(helps) == 1, helps
    assert len(found) >= 17


@pytest.mark.parametrize("words", [words for words, _ in commands()] + [(), ("dlq",)], ids=" ".join)
def test_help_lists_flags_without_a_type_and_each_default_once(words: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "120"})

    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    # A default the help text states is not stated again by typer ("[default: ...]").
    for row in option_rows(result.output):
        assert not ("(default" in row and "[default:" in row), row


def test_roles_grant_with_root_uses_the_projects_database_from_any_directory(
    project_copy: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("AUTH_DATABASE_URL", raising=False)
    monkeypatch.setenv("ACCORD_ENV", "local")

    result = runner.invoke(
        app, ["roles", "grant", "nobody@example.com", "admin", "--root", str(project_copy.root)]
    )

    assert result.exit_code == 1, result.output
    assert "no account has the email 'nobody@example.com'" in result.output
    assert (project_copy.root / ".accord" / "auth.db").is_file()
    assert not (elsewhere / ".accord").exists()
    assert Path.cwd() == elsewhere


def test_keys_rotate_with_root_adds_to_the_projects_key_ring(
    project_copy: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("AUTH_SIGNING_KEY", "AUTH_SIGNING_KEY_DIR", "AUTH_SIGNING_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCORD_ENV", "local")

    result = runner.invoke(app, ["keys", "rotate", "--root", str(project_copy.root)])

    assert result.exit_code == 0, result.output
    ring = project_copy.root / ".accord" / "auth-keys"
    assert f"in {ring}" in result.output
    assert any(ring.iterdir())


def test_serve_with_root_runs_the_service_from_the_project(
    project_copy: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # restored after the test: serve stays in the project
    monkeypatch.setenv("AUTH_DATABASE_URL", "mysql://nope")

    result = runner.invoke(app, ["serve", "auth", "--port", "1", "--root", str(project_copy.root)])

    assert result.exit_code != 0
    assert "AUTH_DATABASE_URL" in result.output
    assert Path.cwd() == project_copy.root


def test_a_root_that_is_not_a_project_is_refused_by_a_settings_command(tmp_path: Path) -> None:
    result = runner.invoke(app, ["prune", "--root", str(tmp_path)])

    assert result.exit_code == 2
    assert "pyproject.toml does not exist" in result.output


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_files_the_readme_tells_you_to_create_are_ignored_by_git() -> None:
    readme = (REPOSITORY / "README.md").read_text()
    created = set(re.findall(r"accord up --record (\S+)", readme))
    if not (REPOSITORY / ".git").exists():
        pytest.skip("not a git checkout")

    ignored = subprocess.run(
        ["git", "check-ignore", *sorted(created)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
    )

    assert created == {"run.jsonl"}
    assert set(ignored.stdout.split()) == created
