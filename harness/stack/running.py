"""A running `accord up`, found from the `stack.json` it writes in its state directory, and
where the commands that need SNS/SQS (`provision`, `dlq`, `replay`, `schemas publish --registry
glue`) find the bus.

The order is the same for every command: `--endpoint`; then the environment
(`AWS_ENDPOINT_URL` or `LOCALSTACK_ENDPOINT`, or `ACCORD_ENV=production` for real AWS); then
the emulator of the `accord up` running for the project; else `NoBusError`, which says how to
name one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.kit.aws import DEFAULT_REGION, BusLocation

STACK_FILE = "stack.json"


class NoBusError(Exception):
    """No SNS/SQS endpoint was given, configured or found running; the message says how to
    name one."""


@dataclass(frozen=True)
class RunningStack:
    """What a running `accord up` says about itself in its `stack.json`."""

    path: Path
    endpoint: str
    region: str | None
    pid: int | None


def read_stack_file(state: Path) -> RunningStack | None:
    """The stack described in `state`/stack.json, or None when there is no readable one."""
    path = state / STACK_FILE
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    aws = data.get("aws") if isinstance(data, dict) else None
    endpoint = aws.get("endpoint") if isinstance(aws, dict) else None
    if not isinstance(endpoint, str) or not endpoint:
        return None
    region = aws.get("region") if isinstance(aws, dict) else None
    pid = data.get("pid")
    return RunningStack(
        path=path,
        endpoint=endpoint,
        region=region if isinstance(region, str) else None,
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
    )


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def running_stack(state: Path) -> RunningStack | None:
    """The `accord up` running with the state directory `state`: its stack.json, when the
    process that wrote it is still alive (a stack killed with SIGKILL leaves its file)."""
    stack = read_stack_file(state)
    if stack is None or (stack.pid is not None and not is_running(stack.pid)):
        return None
    return stack


def find_bus(
    endpoint: str | None,
    state: Path | None,
    environ: Mapping[str, str] | None = None,
) -> BusLocation:
    """Where the bus is, for a command run with `--endpoint endpoint` in a project whose
    `accord up` keeps its state in `state` (None outside a project). `ValueError` for an
    endpoint that is not an http(s) URL; `NoBusError` when there is no bus to use."""
    if endpoint:
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"--endpoint must be an http(s) URL, got {endpoint!r}")
        env = os.environ if environ is None else environ
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        return BusLocation("endpoint", endpoint, region)
    detected = BusLocation.detect(environ)
    if detected.mode != "memory":
        return detected
    stack = running_stack(state) if state is not None else None
    if stack is not None:
        return BusLocation("endpoint", stack.endpoint, stack.region or detected.region)
    raise NoBusError(
        "no SNS/SQS endpoint: "
        + _why_no_stack(state)
        + "; start it (`accord up`), pass --endpoint URL, set AWS_ENDPOINT_URL, "
        "or set ACCORD_ENV=production for real AWS"
    )


def _why_no_stack(state: Path | None) -> str:
    if state is None:
        return "not inside an Accord project, so no running `accord up` to use"
    stack = read_stack_file(state)
    if stack is not None and stack.pid is not None:
        return f"the `accord up` that wrote {stack.path} (process {stack.pid}) is no longer running"
    return f"no `accord up` is running for this project (no {state / STACK_FILE})"
