"""Pytest fixtures for Accord's real parts: a moto server over HTTP and PostgreSQL databases.

Loaded by `tests/conftest.py` (`pytest_plugins`). Each test makes its own names (see
`unique_prefix`), so tests can share one emulator and one PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

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


# --- no minutes of silence ----------------------------------------------------------------

SLOW_TEST_VARIABLE = "ACCORD_SLOW_TEST_SECONDS"


class SlowTestAnnouncer:
    """Names the test that is running once it has run for `after` seconds, and again every
    `after` seconds, so that a long test is never minutes of silence in a quiet (`-q`) run."""

    def __init__(self, reporter: Any, capture: Any, after: float) -> None:
        self._reporter = reporter
        self._capture = capture
        self._after = after

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        done = threading.Event()
        started = time.monotonic()

        def announce() -> None:
            while not done.wait(self._after):
                seconds = time.monotonic() - started
                line = f"… still running {item.nodeid} ({seconds:.0f} s)"
                # Past the capture of the test's output, as pytest's own live logging does.
                with self._capture.global_and_fixture_disabled():
                    self._reporter.write_line(line)

        watcher = threading.Thread(target=announce, name="slow-test-announcer", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            done.set()
            watcher.join()


@pytest.hookimpl(trylast=True)  # after the terminal reporter is registered
def pytest_configure(config: pytest.Config) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    after = float(os.environ.get(SLOW_TEST_VARIABLE, "20"))
    if reporter is not None and capture is not None and after > 0:
        announcer = SlowTestAnnouncer(reporter, capture, after)
        config.pluginmanager.register(announcer, "accord-slow-tests")
