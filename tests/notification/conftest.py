"""Fixtures of the notification service's tests: databases, a real SMTP server, tokens, the
in-memory bus provisioned from the AsyncAPI bindings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.bus.provision import topology_from_contracts
from harness.project import Project
from services.kit.memory import InMemoryBroker
from tests.notification.support import MailServer, Tokens


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'notification.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'notification.db'}"


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture
def broker(repository: Project, unique_prefix: str) -> InMemoryBroker:
    """An in-memory bus with the topics and queues the AsyncAPI documents declare."""
    broker = InMemoryBroker()
    broker.apply(topology_from_contracts(repository).with_prefix(unique_prefix))
    return broker
