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
    """Names each test still running after `after` seconds, and again every `after` seconds,
    so that a long test is never minutes of silence in a quiet (`-q`) run. It follows the
    tests through `pytest_runtest_logstart`/`logfinish`, which pytest-xdist also calls in the
    controlling process for the tests its workers run."""

    def __init__(self, reporter: Any, capture: Any, after: float) -> None:
        self._reporter = reporter
        self._capture = capture
        self._after = after
        self._running: dict[str, tuple[float, int]] = {}  # nodeid -> (started, times named)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="slow-tests", daemon=True)
        self._watcher.start()

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        with self._lock:
            self._running[nodeid] = (time.monotonic(), 0)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        with self._lock:
            self._running.pop(nodeid, None)

    def pytest_unconfigure(self) -> None:
        self._done.set()
        self._watcher.join()

    def _watch(self) -> None:
        while not self._done.wait(min(1.0, self._after)):
            now = time.monotonic()
            with self._lock:
                due = [
                    (nodeid, now - started)
                    for nodeid, (started, named) in self._running.items()
                    if now - started >= self._after * (named + 1)
                ]
                for nodeid, _ in due:
                    started, named = self._running[nodeid]
                    self._running[nodeid] = (started, named + 1)
            for nodeid, seconds in due:
                # Past the capture of a test's output, as pytest's own live logging does.
                with self._capture.global_and_fixture_disabled():
                    self._reporter.write_line(f"… still running {nodeid} ({seconds:.0f} s)")


@pytest.hookimpl(trylast=True)  # after the terminal reporter is registered
def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller names tests
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    after = float(os.environ.get(SLOW_TEST_VARIABLE, "20"))
    if reporter is not None and capture is not None and after > 0:
        announcer = SlowTestAnnouncer(reporter, capture, after)
        config.pluginmanager.register(announcer, "accord-slow-tests")
