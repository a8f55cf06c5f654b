"""A service that cannot start says why in a line or two, naming the setting to fix, and exits
with status 2: `accord serve <service>` and `accord up` with their database unreachable or
missing, their migrations failing, or their port taken. Each case is run for real: the
command in its own process (the stack's PostgreSQL cases through `start_stack`), against a
closed port, the PostgreSQL server at 127.0.0.1:5432, a database whose `alembic_version`
names a revision no service has, a listening socket."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from harness.project import Project
from harness.stack.up import has_database
from services.kit.startup import StartupError
from services.kit.tokens import SigningKey
from tests.conftest import REPOSITORY
from tests.e2e.support import SERVICES, StartStack, free_ports, port_flags, stack_ports

# The services that keep a database (the gateway keeps none): the database cases are theirs.
WITH_DATABASE = tuple(name for name in SERVICES if has_database(name))
# Every variable a service or the bus reads, left out of the environment a command inherits.
PREFIXES = (
    *(entry.env_prefix for entry in Project.load(REPOSITORY).services),
    "AWS_",
    "ACCORD_",
)
PASSWORD = "s3cret-pw-4729"  # in every URL given, and never in what is printed
ACCORD = str(Path(sys.executable).with_name("accord"))


@dataclass(frozen=True)
class Run:
    """What a command printed and how it ended."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.strip().splitlines()

    def shown(self) -> str:
        return f"(exit {self.returncode})\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def accord(*args: str, env: dict[str, str], cwd: Path) -> Run:
    """`accord ARGS` in its own process, with `env` over a clean environment."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith(PREFIXES)}
    result = subprocess.run(
        [ACCORD, *args],
        env={**clean, "ACCORD_ENV": "local", "COLUMNS": "300", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr)


def assert_refused(run: Run, *mentions: str) -> None:
    """Exit status 2, at most two lines on stderr mentioning each of `mentions`, no traceback
    and no password."""
    assert run.returncode == 2, run.shown()
    assert 1 <= len(run.error_lines) <= 2, run.shown()
    for mention in mentions:
        assert mention in run.stderr, run.shown()
    assert "Traceback" not in run.stdout + run.stderr, run.shown()
    assert PASSWORD not in run.stdout + run.stderr, run.shown()


@pytest.fixture
def serve_env(tmp_path: Path, moto_endpoint: str) -> Callable[[str, str], dict[str, str]]:
    """The environment of a configured service with `url` as its database: a signing key, the
    bus on a moto server, a service key (so that no local-mode warning adds a line)."""
    key = SigningKey.generate().to_pem().decode()

    def env(service: str, url: str) -> dict[str, str]:
        prefix = service.upper()
        return {
            f"{prefix}_DATABASE_URL": url,
            "AUTH_SIGNING_KEY": key,
            "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            f"{prefix}_AUTH_SERVICE_API_KEY": "k" * 4 + uuid.uuid4().hex,
            f"{prefix}_SMTP_HOST": "127.0.0.1",
        }

    return env


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on (bound, so that nothing else takes it meanwhile)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        yield listening.getsockname()[1]


# Makes a database look migrated by a version of the service that does not exist.
UNKNOWN_REVISION = (
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);"
    "INSERT INTO alembic_version VALUES ('f00dfeed');"
)


def with_password(url: str, database: str | None = None) -> str:
    """`url` with `PASSWORD` (trust authentication ignores it), on `database` if given."""
    parsed = make_url(url).set(password=PASSWORD)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def serve_args(service: str, port: int | None = None) -> list[str]:
    return ["serve", service, "--port", str(port if port is not None else free_ports(1)[0])]


async def _execute(url: str, statements: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statements)
    finally:
        await connection.close()


@pytest.mark.emulator
@pytest.mark.parametrize("service", WITH_DATABASE)
def test_serve_with_the_database_server_unreachable_names_the_setting_and_the_address(
    service: str,
    serve_env: Callable[[str, str], dict[str, str]],
    closed_port: int,
    tmp_path: Path,
) -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port}/accord"

    run = accord(*serve_args(service), env=serve_env(service, url), cwd=tmp_path)

    assert_refused(run, f"{service.upper()}_DATABASE_URL", f"127.0.0.1:{closed_port}")
    assert "cannot reach" in run.stderr


@pytest.mark.emulator
@pytest.mark.postgres
@pytest.mark.parametrize("service", WITH_DATABASE)
def test_serve_with_a_database_that_does_not_exist_names_the_setting_and_the_database(
    service: str,
    serve_env: Callable[[str, str], dict[str, str]],
    postgres_server: str,
    tmp_path: Path,
) -> None:
    name = f"accord_missing_{uuid.uuid4().hex[:10]}"
    url = with_password(postgres_server, name)

    run = accord(*serve_args(service), env=serve_env(service, url), cwd=tmp_path)

    address = make_url(postgres_server)
    assert_refused(
        run,
        f"{service.upper()}_DATABASE_URL",
        f'"{name}" does not exist',
        f"{address.host}:{address.port or 5432}",
    )


@pytest.mark.emulator
@pytest.mark.postgres
@pytest.mark.parametrize("service", WITH_DATABASE)
def test_serve_with_migrations_that_fail_names_the_setting_and_the_reason(
    service: str,
    serve_env: Callable[[str, str], dict[str, str]],
    new_postgres_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    url = new_postgres_database()
    asyncio.run(_execute(url, UNKNOWN_REVISION))

    run = accord(*serve_args(service), env=serve_env(service, with_password(url)), cwd=tmp_path)

    assert_refused(run, f"{service.upper()}_DATABASE_URL", "migrating", "f00dfeed")


@pytest.mark.emulator
@pytest.mark.parametrize("service", SERVICES)
def test_serve_on_a_port_in_use_names_the_port_and_the_option(
    service: str,
    serve_env: Callable[[str, str], dict[str, str]],
    busy_port: int,
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / f'{service}.db'}"

    run = accord(*serve_args(service, busy_port), env=serve_env(service, url), cwd=tmp_path)

    assert_refused(run, f"port {busy_port}", "--port")


def up_args(project: Project, ports: dict[str, int]) -> list[str]:
    return ["up", "--root", str(project.root), *port_flags(ports)]


def test_up_with_migrations_that_fail_names_the_setting_and_exits_2(
    project_copy: Project,
) -> None:
    state = project_copy.root / ".accord"
    state.mkdir(mode=0o700)
    with sqlite3.connect(state / "user.db") as database:
        database.executescript(UNKNOWN_REVISION)

    run = accord(*up_args(project_copy, stack_ports()), env={}, cwd=project_copy.root)

    assert_refused(run, "USER_DATABASE_URL", "migrating", "f00dfeed", str(state / "user.db"))


def test_up_on_a_port_in_use_names_the_port_and_its_flag(
    project_copy: Project, busy_port: int
) -> None:
    ports = stack_ports() | {"notification": busy_port}

    run = accord(*up_args(project_copy, ports), env={}, cwd=project_copy.root)

    assert_refused(run, f"port {busy_port}", "--notification-port")


@pytest.mark.postgres
async def test_the_stack_refuses_a_database_that_does_not_exist_naming_the_setting(
    start_stack: StartStack, postgres_server: str
) -> None:
    name = f"accord_missing_{uuid.uuid4().hex[:10]}"

    with pytest.raises(StartupError) as refused:
        await start_stack(database_urls={"notification": with_password(postgres_server, name)})

    message = str(refused.value)
    assert message.startswith("NOTIFICATION_DATABASE_URL: ")
    assert f'"{name}" does not exist' in message
    assert PASSWORD not in message


async def test_the_stack_refuses_an_unreachable_database_naming_the_setting_and_address(
    start_stack: StartStack, closed_port: int
) -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port}/accord"

    with pytest.raises(StartupError) as refused:
        await start_stack(database_urls={"user": url})

    message = str(refused.value)
    assert message == (
        f"USER_DATABASE_URL: cannot reach the PostgreSQL server at 127.0.0.1:{closed_port} "
        "(connection refused)"
    )
