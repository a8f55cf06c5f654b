"""The AsyncAPI document drives the notification service's consumers: in a copy of the
project, a message added to its receive operation and regenerated makes mypy name the handler
that `services/notification/consumers.py` lacks, before anything runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from generated.events import catalog
from harness.cli import app as cli
from tests.conftest import REPOSITORY, edit

CONTRACT = "contracts/asyncapi/notification-service.yaml"
CONSUMERS = "services/notification/consumers.py"
# What a copy of the project leaves out: environments, history, local state, caches.
NOT_COPIED = shutil.ignore_patterns(
    ".venv",
    ".git",
    ".accord",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "__pycache__",
    "*.egg-info",
)


def copy_of_the_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(REPOSITORY, root, ignore=NOT_COPIED)
    return root


def receive_user_created(root: Path) -> None:
    """Add `UserCreated` to the channel, the receive operation and its filter policy."""
    contract = root / CONTRACT
    edit(
        contract,
        "      UserDeactivated:\n"
        "        $ref: './user-events.yaml#/components/messages/UserDeactivated'\n",
        "      UserDeactivated:\n"
        "        $ref: './user-events.yaml#/components/messages/UserDeactivated'\n"
        "      UserCreated:\n"
        "        $ref: './user-events.yaml#/components/messages/UserCreated'\n",
    )
    edit(
        contract,
        "      - $ref: '#/channels/userEvents/messages/UserDeactivated'\n",
        "      - $ref: '#/channels/userEvents/messages/UserDeactivated'\n"
        "      - $ref: '#/channels/userEvents/messages/UserCreated'\n",
    )
    edit(
        contract,
        f"                - {catalog.USER_DEACTIVATED}\n",
        f"                - {catalog.USER_DEACTIVATED}\n                - {catalog.USER_CREATED}\n",
    )


def mypy(root: Path, module: str) -> tuple[int, str]:
    """mypy strict (the copy's own configuration) on one module of the copy, its imports
    read from the copy too but not reported on."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-incremental",
            "--follow-imports=silent",
            "--cache-dir",
            str(root.parent / "mypy-cache"),
            module,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_a_message_added_to_the_receive_operation_makes_mypy_name_the_missing_handler(
    tmp_path: Path,
) -> None:
    root = copy_of_the_project(tmp_path)
    receive_user_created(root)

    generated = CliRunner().invoke(cli, ["generate", "--root", str(root)])
    status, report = mypy(root, CONSUMERS)

    assert generated.exit_code == 0, generated.output
    assert "async def on_user_created(" in (root / "generated/notification/events.py").read_text()
    assert status == 1, report
    (error,) = [line for line in report.splitlines() if ": error:" in line]
    assert error.startswith(f"{CONSUMERS}:")
    assert 'abstract class "NotificationReceiver"' in error
    assert '"on_user_created"' in error
