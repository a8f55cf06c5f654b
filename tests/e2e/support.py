"""What the end-to-end tests share: free ports, and starting the platform as `accord up`
does (the `start_stack` fixture in conftest.py)."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

from harness.stack.up import Stack


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


StartStack = Callable[..., Awaitable[Stack]]
