"""Where the commands that need SNS/SQS find the bus (harness/stack/running.py): `--endpoint`,
then the environment, then the project's running `accord up`, else an error that says how to
name one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.stack.running import NoBusError, find_bus, running_stack
from services.kit.aws import BusLocation

STACK = "http://127.0.0.1:45660"


def write_stack_file(state: Path, endpoint: str = STACK, pid: int | None = None) -> Path:
    state.mkdir(parents=True, exist_ok=True)
    path = state / "stack.json"
    aws = {"endpoint": endpoint, "region": "eu-west-1"}
    path.write_text(json.dumps({"aws": aws, "pid": os.getpid() if pid is None else pid}))
    return path


def finished_process_id() -> int:
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(process.stdout)


def test_the_running_stack_is_found_from_its_stack_file(tmp_path: Path) -> None:
    write_stack_file(tmp_path)

    assert find_bus(None, tmp_path, environ={}) == BusLocation("endpoint", STACK, "eu-west-1")


def test_the_endpoint_option_wins_over_the_environment_and_the_running_stack(
    tmp_path: Path,
) -> None:
    write_stack_file(tmp_path)
    environ = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_REGION": "ap-south-1"}

    location = find_bus("http://127.0.0.1:2", tmp_path, environ=environ)

    assert location == BusLocation("endpoint", "http://127.0.0.1:2", "ap-south-1")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, BusLocation("endpoint", "http://127.0.0.1:1")),
        (
            {"LOCALSTACK_ENDPOINT": "http://127.0.0.1:1"},
            BusLocation("endpoint", "http://127.0.0.1:1"),
        ),
        ({"ACCORD_ENV": "production"}, BusLocation("aws")),
    ],
)
def test_the_environment_wins_over_the_running_stack(
    tmp_path: Path, environ: dict[str, str], expected: BusLocation
) -> None:
    write_stack_file(tmp_path)

    assert find_bus(None, tmp_path, environ=environ) == expected


def test_a_stack_file_left_by_a_process_that_has_ended_is_no_running_stack(
    tmp_path: Path,
) -> None:
    pid = finished_process_id()
    path = write_stack_file(tmp_path, pid=pid)

    assert running_stack(tmp_path) is None
    with pytest.raises(NoBusError) as refused:
        find_bus(None, tmp_path, environ={})
    assert f"the `accord up` that wrote {path} (process {pid}) is no longer running" in str(
        refused.value
    )


@pytest.mark.parametrize(
    ("state", "why"),
    [
        (None, "not inside an Accord project"),
        (Path("nowhere"), "no `accord up` is running for this project (no nowhere/stack.json)"),
    ],
)
def test_without_a_bus_the_error_says_how_to_name_one(state: Path | None, why: str) -> None:
    with pytest.raises(NoBusError) as refused:
        find_bus(None, state, environ={})

    message = str(refused.value)
    assert message.startswith("no SNS/SQS endpoint: ")
    assert why in message
    for way in ("`accord up`", "--endpoint URL", "AWS_ENDPOINT_URL", "ACCORD_ENV=production"):
        assert way in message


def test_an_endpoint_that_is_not_a_url_is_refused() -> None:
    with pytest.raises(ValueError, match="--endpoint must be an http"):
        find_bus("127.0.0.1:4566", None, environ={})
