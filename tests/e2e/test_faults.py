"""Faults injected into the live stack (`accord up` in the test's process): SNS unreachable for
the publisher, a consumer killed with messages in hand, the user database unreachable. Each
fault is a real network failure made by a `FaultyProxy` (see `harness/stack/faults.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest

from harness.project import Project
from harness.stack.faults import FaultyProxy, ServiceProcess, outage
from harness.stack.up import Stack, StackConfig
from services.kit.aws import BusLocation
from tests.conftest import REPOSITORY
from tests.e2e.support import stack_ports
from tests.e2e.test_stack import PASSWORD

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

USER_QUEUE = "accord-user-service"
USER_CONSUMER = "user-service"
NOTIFICATION_QUEUE = "accord-notification-service"

# Tuned for a test run, not for production: cheap password hashes, no registration limit
# that 50 sign-ups from one address would hit, short long-polls, and an outbox relay whose
# backoff stays short, so that recovery is observed within seconds of the fault ending.
FAST = {
    "ACCORD_ENV": "local",
    "AUTH_ARGON2_TIME_COST": "1",
    "AUTH_ARGON2_MEMORY_COST_KIB": "1024",
    "AUTH_ARGON2_PARALLELISM": "1",
    "AUTH_REGISTRATIONS_PER_ADDRESS": "1000",
    "AUTH_OUTBOX_BACKOFF_CAP_SECONDS": "2",
    "USER_CONSUMER_WAIT_SECONDS": "1",
    "NOTIFICATION_CONSUMER_WAIT_SECONDS": "1",
}


# --- the proxy on its own -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def say(port: int, text: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(text)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(text)), timeout=5)
    finally:
        writer.close()


async def test_the_proxy_forwards_while_up_refuses_while_down_and_forwards_again_when_up() -> None:
    async with echo_server() as target, FaultyProxy("127.0.0.1", target) as proxy:
        assert await say(proxy.port, b"hello") == b"hello"
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)

        await proxy.down()

        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"anyone there?")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        # The open connection was cut: it ends (EOF or reset), it does not hang.
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(), timeout=5) == b""
        writer.close()

        await proxy.up()

        assert await say(proxy.port, b"back") == b"back"
        assert proxy.state == "up"


async def test_a_stalled_proxy_holds_the_bytes_and_delivers_them_when_up() -> None:
    async with echo_server() as target, FaultyProxy("127.0.0.1", target) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"one")
        assert await asyncio.wait_for(reader.readexactly(3), timeout=5) == b"one"

        async with outage(proxy, "stalled"):
            writer.write(b"two")
            await writer.drain()
            answer = asyncio.create_task(reader.readexactly(3))
            # A bound on waiting for an answer that must not come, not a speed claim.
            done, _ = await asyncio.wait([answer], timeout=0.5)
            assert not done, "bytes crossed a stalled proxy"

        assert await asyncio.wait_for(answer, timeout=5) == b"two"
        writer.close()


async def test_a_proxy_with_latency_holds_each_request_before_the_target_sees_it() -> None:
    async with echo_server() as target, FaultyProxy("127.0.0.1", target, latency=1.0) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        for text in (b"first", b"second"):  # every request, not only a connection's first
            writer.write(text)
            await writer.drain()
            answer = asyncio.create_task(reader.readexactly(len(text)))
            # Bounds on waiting, not speed claims: held a while, then delivered.
            done, _ = await asyncio.wait([answer], timeout=0.3)
            assert not done, "a request crossed the proxy without its latency"
            assert await asyncio.wait_for(answer, timeout=10) == text
        writer.close()


def test_a_proxy_routes_a_database_url_through_itself_keeping_credentials_and_path() -> None:
    proxy = FaultyProxy.to("postgresql://postgres:pw@db.example:5433/accord", port=6000)

    assert proxy.target == ("db.example", 5433)
    assert proxy.route("postgresql://postgres:pw@db.example:5433/accord") == (
        "postgresql://postgres:pw@127.0.0.1:6000/accord"
    )
    assert FaultyProxy.to("http://127.0.0.1:4566").target == ("127.0.0.1", 4566)


# --- the live stack -------------------------------------------------------------------------

StartStack = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def start_stack(tmp_path: Path) -> AsyncIterator[StartStack]:
    """Starts the platform on free ports with no service running yet (each test starts the
    ones it needs, some of them through a proxy)."""
    stacks: list[Stack] = []

    async def start(database_urls: dict[str, str] | None = None) -> Stack:
        config = StackConfig(
            project=Project.load(REPOSITORY),
            ports=stack_ports(),
            state_dir=tmp_path / "state",
            services=(),
            database_urls=database_urls or {},
            extra_env=FAST,
        )
        stack = Stack(config, lambda line: None)
        stacks.append(stack)
        await stack.start()
        return stack

    yield start
    for stack in stacks:
        await stack.stop()


async def eventually(probe: Callable[[], Awaitable[Any]], what: str, seconds: float = 30.0) -> Any:
    """Poll until `probe` returns something truthy; fail naming `what` and the last answer."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await probe()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not so within {seconds} s (last probe: {result!r})")
        await asyncio.sleep(0.1)


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)


async def _status(response: Awaitable[httpx.Response], status: int) -> bool:
    return (await response).status_code == status


async def _true(value: Any) -> bool:
    return bool(value)


def sqs_of(stack: Stack) -> SQSClient:
    return BusLocation("endpoint", stack.endpoint).sqs()


def queue_depth(sqs: SQSClient, name: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue: in flight means received and not deleted."""
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


async def depth(stack: Stack, name: str) -> tuple[int, int]:
    return await asyncio.to_thread(queue_depth, sqs_of(stack), name)


async def register(http: httpx.AsyncClient, stack: Stack, count: int) -> list[str]:
    """Register `count` new users through the auth API; their ids."""
    return [(await sign_up(http, stack))["userId"] for _ in range(count)]


async def sign_up(
    http: httpx.AsyncClient, stack: Stack, email: str | None = None
) -> dict[str, Any]:
    """Register one new user through the auth API; its session tokens and id."""
    response = await http.post(
        f"{stack.config.url('auth')}/api/v1/auth/register",
        json={"email": email or f"u-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def sqlite_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute(query).fetchall()


async def postgres_rows(url: str, query: str) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await connection.fetch(query)]
    finally:
        await connection.close()


# The user service's records of what it did: profiles, and one processed-event row per event
# applied. A duplicate applied twice would be two rows for one event id (it cannot: the key is
# (consumer, event_id)) or, with a broken key, a second profile write; a lost one is missing.
PROFILES = "SELECT id FROM profiles"
PROCESSED = (
    f"SELECT event_id FROM processed_events WHERE consumer = '{USER_CONSUMER}' "
    "AND event_type = 'user.created'"
)


@pytest.fixture
def user_database(new_postgres_database: Callable[[], str]) -> str:
    """A fresh PostgreSQL database for the user service (made outside the test's event loop)."""
    return new_postgres_database()


def ids_of(rows: list[tuple[Any, ...]]) -> list[str]:
    """The uuids in the first column, sorted (SQLite keeps them as bare hex)."""
    return sorted(str(uuid.UUID(str(row[0]))) for row in rows)


@pytest.mark.emulator
async def test_fifty_registrations_while_sns_is_down_become_fifty_profiles_each_once(
    start_stack: StartStack,
) -> None:
    stack = await start_stack()
    state = stack.config.state
    async with FaultyProxy.to(stack.endpoint) as sns, httpx.AsyncClient(timeout=10) as http:
        # Only the auth service (the publisher) goes through the proxy; the user service reads
        # its queue directly, so what fails is publishing, not consuming.
        await stack.start_service("auth", env={"AWS_ENDPOINT_URL": sns.endpoint})
        await stack.start_service("user")

        async with outage(sns):
            users = await register(http, stack, 50)  # each one 201, SNS or not

            # The relay has tried (and failed) at least once: the events wait in the outbox.
            await eventually(
                lambda: asyncio.to_thread(
                    sqlite_rows, state / "auth.db", "SELECT 1 FROM outbox WHERE attempts > 0"
                ),
                "a publish attempt failed while SNS was down",
            )
            outbox = sqlite_rows(
                state / "auth.db",
                "SELECT event_id FROM outbox "
                "WHERE event_type = 'user.created' AND published_at IS NULL",
            )
            assert len(outbox) == 50, "each registration left its event in the outbox"
            assert sqlite_rows(state / "user.db", PROFILES) == []

        async def fifty_profiles() -> list[tuple[Any, ...]] | None:
            rows = await asyncio.to_thread(sqlite_rows, state / "user.db", PROFILES)
            return rows if len(rows) >= 50 else None

        await eventually(fifty_profiles, "50 profiles in the user database")
        # Every delivery settled: nothing is left to land as a late duplicate.
        await eventually(
            lambda: _equals(depth(stack, USER_QUEUE), (0, 0)), "the user queue drained"
        )

        assert ids_of(sqlite_rows(state / "user.db", PROFILES)) == sorted(users)
        assert ids_of(sqlite_rows(state / "user.db", PROCESSED)) == ids_of(outbox)
        assert (
            sqlite_rows(state / "auth.db", "SELECT 1 FROM outbox WHERE published_at IS NULL") == []
        )
        assert await depth(stack, f"{USER_QUEUE}-dlq") == (0, 0)


async def read_profile(
    http: httpx.AsyncClient, stack: Stack, tokens: dict[str, Any]
) -> httpx.Response:
    return await http.get(
        f"{stack.config.url('user')}/api/v1/users/{tokens['userId']}",
        headers={"authorization": f"Bearer {tokens['accessToken']}"},
    )


def args_of(record: logging.LogRecord) -> tuple[Any, ...]:
    """The %-arguments of a log record (the consumer logs positional ones)."""
    assert isinstance(record.args, tuple), record
    return record.args


def failed_receives(caplog: pytest.LogCaptureFixture) -> dict[str, int]:
    """Message id → the highest receive on which a consumer's handler failed, from the
    consumer's warnings (`… handler failed on receive N: …; retrying in S s`)."""
    failures: dict[str, int] = {}
    for record in caplog.records:
        if record.name != "accord.consumer" or "retrying in" not in record.getMessage():
            continue
        _, message_id, reason, _ = args_of(record)
        receive = int(str(reason).split("handler failed on receive ", 1)[1].split(":", 1)[0])
        failures[str(message_id)] = max(receive, failures.get(str(message_id), 0))
    return failures


@pytest.mark.emulator
@pytest.mark.postgres
async def test_events_arriving_while_the_user_database_is_down_are_retried_then_applied_once(
    start_stack: StartStack, user_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = user_database
    async with FaultyProxy.to(database) as link, httpx.AsyncClient(timeout=10) as http:
        stack = await start_stack(database_urls={"user": link.route(database)})
        await stack.start_service("auth")
        await stack.start_service("user")
        before = await sign_up(http, stack)
        await eventually(
            lambda: _status(read_profile(http, stack, before), 200), "a profile before the fault"
        )
        caplog.set_level(logging.WARNING, logger="accord.consumer")

        async with outage(link):
            users = await register(http, stack, 5)

            # Retried with backoff: every event has failed on its first three receives (of
            # the queue's five before the dead-letter queue) before the database comes back.
            async def three_failures_each() -> dict[str, int] | None:
                failures = failed_receives(caplog)
                return failures if sum(n >= 3 for n in failures.values()) >= 5 else None

            await eventually(three_failures_each, "5 events failing their third receive")
            # The contract's answer to a dependency being down: readiness 503, naming it.
            ready = await http.get(f"{stack.config.url('user')}/health/ready")

        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] != "ok"

        async def profiles() -> list[tuple[Any, ...]] | None:
            rows = await postgres_rows(database, PROFILES)
            return rows if len(rows) >= 6 else None

        await eventually(profiles, "6 profiles in the user database")
        await eventually(
            lambda: _equals(depth(stack, USER_QUEUE), (0, 0)), "the user queue drained"
        )
        assert ids_of(await postgres_rows(database, PROFILES)) == sorted([before["userId"], *users])
        assert len(await postgres_rows(database, PROCESSED)) == 6
        assert await depth(stack, f"{USER_QUEUE}-dlq") == (0, 0)


@pytest.mark.emulator
@pytest.mark.postgres
async def test_a_profile_read_while_the_user_database_is_down_is_a_503_problem_not_a_500(
    start_stack: StartStack, user_database: str
) -> None:
    async with FaultyProxy.to(user_database) as link, httpx.AsyncClient(timeout=10) as http:
        stack = await start_stack(database_urls={"user": link.route(user_database)})
        await stack.start_service("auth")
        await stack.start_service("user")
        user = await sign_up(http, stack)
        await eventually(lambda: _status(read_profile(http, stack, user), 200), "a profile")

        async with outage(link):
            profile = await read_profile(http, stack, user)

    assert profile.status_code == 503, profile.text
    assert profile.headers["content-type"] == "application/problem+json"
    assert profile.json()["type"] == "https://accord.example/problems/dependency-unavailable"
    assert int(profile.headers["retry-after"]) > 0


@pytest.fixture
def auth_database(new_postgres_database: Callable[[], str]) -> str:
    """A fresh PostgreSQL database for the auth service (made outside the test's event loop)."""
    return new_postgres_database()


@pytest.mark.emulator
@pytest.mark.postgres
async def test_auth_calls_while_the_auth_database_is_down_are_503_problems_then_work_again(
    start_stack: StartStack, auth_database: str
) -> None:
    async with FaultyProxy.to(auth_database) as link, httpx.AsyncClient(timeout=10) as http:
        stack = await start_stack(database_urls={"auth": link.route(auth_database)})
        await stack.start_service("auth")
        auth = stack.config.url("auth")
        email = f"u-{uuid.uuid4().hex[:10]}@example.com"
        await sign_up(http, stack, email)
        credentials = {"email": email, "password": PASSWORD}

        async with outage(link):
            login = await http.post(f"{auth}/api/v1/auth/login", json=credentials)
            register = await http.post(
                f"{auth}/api/v1/auth/register",
                json={"email": "late@example.com", "password": PASSWORD},
            )

        for answer in (login, register):
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["type"] == "https://accord.example/problems/dependency-unavailable"
            assert int(answer.headers["retry-after"]) > 0
        await eventually(
            lambda: _status(http.post(f"{auth}/api/v1/auth/login", json=credentials), 200),
            "a login once the database is back",
        )


# Long enough that a message in the killed consumer's hands stays invisible until the kill,
# short enough that its redelivery comes soon after (the contract's queue says 30 s).
VISIBILITY_SECONDS = 5


def shorten_visibility(stack: Stack) -> None:
    sqs = sqs_of(stack)
    url = sqs.get_queue_url(QueueName=USER_QUEUE)["QueueUrl"]
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"VisibilityTimeout": str(VISIBILITY_SECONDS)}
    )


def handled(caplog: pytest.LogCaptureFixture) -> dict[str, int]:
    """Event id → the receive on which the user service handled it, from the consumer's
    `handled <type> <eventId> from <queue> (receive N)` lines."""
    return {
        str(args_of(record)[1]): int(args_of(record)[3])
        for record in caplog.records
        if record.name == "accord.consumer" and record.getMessage().startswith("handled ")
    }


def absorbed(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Event ids the user service acknowledged as duplicates, with no second effect."""
    return [
        str(args_of(record)[2])
        for record in caplog.records
        if record.name == "accord.consumer" and "absorbed duplicate" in record.getMessage()
    ]


def killable_user_service(stack: Stack, env: dict[str, str] | None = None) -> ServiceProcess:
    """The stack's user service in a process of its own (use it with `async with`)."""
    return ServiceProcess("user", {**stack.env, **(env or {})}, stack.config.ports["user"])


@pytest.mark.emulator
@pytest.mark.postgres
async def test_a_consumer_killed_mid_transaction_loses_none_of_the_messages_in_its_hands(
    start_stack: StartStack, user_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with FaultyProxy.to(user_database) as link, httpx.AsyncClient(timeout=10) as http:
        stack = await start_stack(database_urls={"user": link.route(user_database)})
        await stack.start_service("auth")
        await asyncio.to_thread(shorten_visibility, stack)
        # The handlers hang inside their transactions: the database no longer answers.
        async with killable_user_service(stack) as consumer, outage(link, "stalled"):
            users = await register(http, stack, 5)
            await eventually(
                lambda: _equals(depth(stack, USER_QUEUE), (0, 5)),
                "5 messages received by the consumer and not deleted",
            )
            assert await consumer.kill() == -9
            await link.down()  # the dead process's connections go with it

        assert await postgres_rows(user_database, PROCESSED) == []  # nothing committed
        assert sum(await depth(stack, USER_QUEUE)) == 5  # nothing acknowledged either

        caplog.set_level(logging.INFO, logger="accord.consumer")
        await stack.start_service("user")  # the consumer restarted

        async def five_profiles() -> list[tuple[Any, ...]] | None:
            rows = await postgres_rows(user_database, PROFILES)
            return rows if len(rows) >= 5 else None

        await eventually(five_profiles, "5 profiles after the restart")
        await eventually(
            lambda: _equals(depth(stack, USER_QUEUE), (0, 0)), "the user queue drained"
        )
        assert ids_of(await postgres_rows(user_database, PROFILES)) == sorted(users)
        processed = ids_of(await postgres_rows(user_database, PROCESSED))
        assert len(processed) == 5
        redelivered = handled(caplog)
        assert sorted(redelivered) == processed
        assert all(receive >= 2 for receive in redelivered.values()), redelivered
        assert await depth(stack, f"{USER_QUEUE}-dlq") == (0, 0)


@pytest.mark.emulator
@pytest.mark.postgres
async def test_a_consumer_killed_after_committing_but_before_deleting_applies_each_message_once(
    start_stack: StartStack, user_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with FaultyProxy.to(user_database) as link, httpx.AsyncClient(timeout=10) as http:
        stack = await start_stack(database_urls={"user": link.route(user_database)})
        await stack.start_service("auth")
        await asyncio.to_thread(shorten_visibility, stack)
        async with (
            FaultyProxy.to(stack.endpoint) as sqs,
            killable_user_service(stack, {"AWS_ENDPOINT_URL": sqs.endpoint}) as consumer,
        ):
            async with outage(link, "stalled"):
                users = await register(http, stack, 5)
                await eventually(
                    lambda: _equals(depth(stack, USER_QUEUE), (0, 5)),
                    "5 messages received by the consumer and not deleted",
                )
                await sqs.stall()  # from now on its deletes hang
            # The database is back: the handlers commit, then wait on their deletes.

            async def five_committed() -> list[tuple[Any, ...]] | None:
                rows = await postgres_rows(user_database, PROCESSED)
                return rows if len(rows) >= 5 else None

            await eventually(five_committed, "5 events committed by the consumer")
            assert await consumer.kill() == -9
            await sqs.down()  # the deletes it had sent die with it
            await sqs.up()

        assert sum(await depth(stack, USER_QUEUE)) == 5  # applied, and not acknowledged

        caplog.set_level(logging.INFO, logger="accord.consumer")
        await stack.start_service("user")  # the consumer restarted

        await eventually(
            lambda: _equals(depth(stack, USER_QUEUE), (0, 0)), "the user queue drained"
        )
        assert ids_of(await postgres_rows(user_database, PROFILES)) == sorted(users)
        processed = ids_of(await postgres_rows(user_database, PROCESSED))
        assert len(processed) == 5
        assert sorted(absorbed(caplog)) == processed  # each redelivered once, no second effect
        assert await depth(stack, f"{USER_QUEUE}-dlq") == (0, 0)


@pytest.mark.emulator
async def test_an_email_for_a_hung_smtp_server_times_out_is_retried_and_arrives_once(
    start_stack: StartStack, caplog: pytest.LogCaptureFixture
) -> None:
    # Unlike the SMTP sink stopped (tests/e2e/test_stack.py), a hung server accepts the
    # connection and never answers: only the sender's timeout gets the consumer out.
    stack = await start_stack()
    assert stack.sink is not None
    mailbox = stack.sink.mailbox
    email = f"hung-{uuid.uuid4().hex[:6]}@example.com"
    async with (
        FaultyProxy(stack.config.host, stack.config.ports["smtp"]) as smtp,
        httpx.AsyncClient(timeout=10) as http,
    ):
        await stack.start_service("auth")
        await stack.start_service(
            "notification",
            env={
                "NOTIFICATION_SMTP_PORT": str(smtp.port),
                "NOTIFICATION_SMTP_TIMEOUT_SECONDS": "1",
                "NOTIFICATION_RETRY_BACKOFF_BASE_SECONDS": "1",
            },
        )
        await sign_up(http, stack, email)
        caplog.set_level(logging.WARNING, logger="accord.consumer")

        async with outage(smtp, "stalled"):
            reset = await http.post(
                f"{stack.config.url('auth')}/api/v1/auth/password-reset", json={"email": email}
            )
            assert reset.status_code == 202
            await eventually(
                lambda: _true(any(failed_receives(caplog).values())),
                "a send to the hung SMTP server failing (timed out) rather than hanging",
            )
            assert smtp.open_connections > 0  # the server was reached: it hung, not refused

        def delivered() -> list[Any]:
            return [mail for mail in mailbox.all() if email in mail.recipients]

        await eventually(lambda: _true(delivered()), "the reset email in the mailbox")
        await eventually(
            lambda: _equals(depth(stack, NOTIFICATION_QUEUE), (0, 0)),
            "the notification queue drained",
        )
        assert len(delivered()) == 1
        assert await depth(stack, f"{NOTIFICATION_QUEUE}-dlq") == (0, 0)
