"""Fixtures of the Pact suites: an event loop in a background thread, for the code that the
Pact core calls from its own threads (state callbacks, message producers, message handlers),
and the bus topology the AsyncAPI documents declare."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from harness.bus.provision import topology_from_contracts
from harness.project import Project
from services.kit.topology import Topology

# Set before pact is imported: the Rust core would otherwise report usage over the network,
# which CI does not have and a test run has no business doing.
os.environ.setdefault("PACT_DO_NOT_TRACK", "true")


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    """An event loop in a background thread, for async code called from synchronous code."""
    with start_blocking_portal() as running:
        yield running


@pytest.fixture(scope="session")
def topology(repository: Project) -> Topology:
    """The topics, queues and subscriptions the AsyncAPI documents declare."""
    return topology_from_contracts(repository)
