"""What the end-to-end tests share: free ports, and starting the platform as `accord up`
does (the `start_stack` fixture in conftest.py)."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

from harness.project import Project
from harness.stack.up import INFRASTRUCTURE_PORTS, Stack
from tests.conftest import REPOSITORY

# Every part of `accord up` that takes a port: the project's services, then the infrastructure.
SERVICES = tuple(entry.name for entry in Project.load(REPOSITORY).services)
PARTS = SERVICES + tuple(INFRASTRUCTURE_PORTS)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def stack_ports() -> dict[str, int]:
    """A free port for every part of the stack."""
    return dict(zip(PARTS, free_ports(len(PARTS)), strict=True))


def port_flags(ports: dict[str, int]) -> list[str]:
    """`accord up`'s options that give each part its port (`--port user=3102`)."""
    return [argument for name, port in ports.items() for argument in ("--port", f"{name}={port}")]


StartStack = Callable[..., Awaitable[Stack]]
