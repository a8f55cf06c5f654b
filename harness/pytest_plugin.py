"""Pytest fixtures for Accord's real parts: a moto server over HTTP and PostgreSQL databases.

Loaded by `tests/conftest.py` (`pytest_plugins`). Each test makes its own names (see
`unique_prefix`), so tests can share one emulator and one PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable, Iterator

import pytest

POSTGRES_ENV = "ACCORD_TEST_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of a moto server on 127.0.0.1 (SNS, SQS, Glue), one per test session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def unique_prefix() -> str:
    """A prefix for the names of the topics, queues and rows a test makes."""
    return f"t{uuid.uuid4().hex[:10]}-"


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of the PostgreSQL maintenance database; the test fails if it is unreachable."""
    url = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES)
    try:
        asyncio.run(_admin(url, "SELECT 1"))
    except Exception as error:  # whatever the failure, the server is not usable
        pytest.fail(
            f"PostgreSQL is not reachable at {url} ({error}); start it or set {POSTGRES_ENV}",
            pytrace=False,
        )
    return url


@pytest.fixture
def new_postgres_database(postgres_server: str) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty PostgreSQL databases (one per call), dropped after the test."""
    made: list[str] = []
    base, _, _ = postgres_server.rpartition("/")

    def make() -> str:
        name = f"accord_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(_admin(postgres_server, f'CREATE DATABASE "{name}"'))
        made.append(name)
        return f"{base}/{name}"

    try:
        yield make
    finally:
        for name in made:
            asyncio.run(_admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url(new_postgres_database: Callable[[], str]) -> str:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    return new_postgres_database()
