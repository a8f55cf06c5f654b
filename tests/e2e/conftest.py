"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from harness.project import Project
from harness.stack.up import Stack, StackConfig
from tests.conftest import REPOSITORY
from tests.e2e.support import StartStack, stack_ports


@pytest.fixture
async def start_stack(tmp_path: Path) -> AsyncIterator[StartStack]:
    stacks: list[Stack] = []

    async def start(**options: Any) -> Stack:
        ports = stack_ports()
        config = StackConfig(
            project=Project.load(REPOSITORY),
            ports=ports,
            state_dir=tmp_path / "state",
            extra_env={
                "NOTIFICATION_RETRY_BACKOFF_BASE_SECONDS": "1",
                "NOTIFICATION_CONSUMER_WAIT_SECONDS": "1",
                "USER_CONSUMER_WAIT_SECONDS": "1",
                "ACCORD_ENV": "local",
            },
            **options,
        )
        stack = Stack(config, lambda line: None)
        stacks.append(stack)
        await stack.start()
        return stack

    yield start
    for stack in stacks:
        await stack.stop()
