"""A second `accord up` refused because a port is taken leaves the running stack alone: its
`.accord/stack.json` (which `accord replay`, `accord dlq` and scripts read) and the rest of its
state, `--reset` or not."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.project import Project
from harness.stack.up import PortInUseError, run
from tests.e2e.support import StartStack, port_flags, stack_ports

runner = CliRunner()


def state_of(state: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(state)): path.read_bytes()
        for path in sorted(state.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("reset", [False, True], ids=["up", "up --reset"])
def test_a_start_refused_for_a_port_in_use_leaves_the_running_stacks_state_alone(
    project_copy: Project, reset: bool
) -> None:
    state = project_copy.root / ".accord"
    state.mkdir()
    (state / "stack.json").write_text('{"aws": {"endpoint": "http://127.0.0.1:4566"}}\n')
    (state / "auth.db").write_bytes(b"the running stack's database")
    before = state_of(state)
    ports = stack_ports()

    with socket.socket() as running:  # the first stack's auth service
        running.bind(("127.0.0.1", ports["auth"]))
        running.listen()
        flags = port_flags(ports)
        result = runner.invoke(
            app, ["up", "--root", str(project_copy.root), *flags, *(["--reset"] * reset)]
        )

    assert result.exit_code == 2, result.output
    assert f"port {ports['auth']} (auth service) is already in use" in result.output
    assert state_of(state) == before


@pytest.mark.emulator
async def test_a_second_stack_refused_for_its_ports_leaves_the_first_stacks_file(
    start_stack: StartStack,
) -> None:
    first = await start_stack(services=())
    stack_file = first.config.state / "stack.json"
    before = stack_file.read_text()

    with pytest.raises(PortInUseError):
        await run(first.config, lambda line: None, asyncio.Event())

    assert stack_file.read_text() == before
