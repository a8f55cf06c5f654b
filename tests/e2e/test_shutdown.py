"""Stopping a service the way an orchestrator does, with SIGTERM: it stops receiving, finishes
the messages in its hands (handled, committed, deleted), stops its relay, and exits 0."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from harness.project import Project
from harness.stack.faults import FaultyProxy, ServiceProcess, outage
from harness.stack.up import Stack, StackConfig
from tests.conftest import REPOSITORY
from tests.e2e.support import stack_ports
from tests.e2e.test_faults import (
    FAST,
    PROCESSED,
    PROFILES,
    USER_QUEUE,
    StartStack,
    _equals,
    depth,
    eventually,
    ids_of,
    postgres_rows,
    read_profile,
    sign_up,
)

pytestmark = [pytest.mark.emulator, pytest.mark.postgres]


@pytest.fixture
async def start_stack(tmp_path: Path) -> AsyncIterator[StartStack]:
    """The platform on free ports with no service running (each test starts its own)."""
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


async def total(counts: Awaitable[tuple[int, int]]) -> int:
    return sum(await counts)


@pytest.fixture
def user_database(new_postgres_database: Callable[[], str]) -> str:
    return new_postgres_database()


async def test_on_sigterm_a_service_stops_receiving_finishes_what_it_holds_and_exits_0(
    start_stack: StartStack, user_database: str
) -> None:
    async with FaultyProxy.to(user_database) as link, httpx.AsyncClient(timeout=30) as http:
        stack = await start_stack(database_urls={"user": link.route(user_database)})
        await stack.start_service("auth")
        consumer = ServiceProcess("user", stack.env, stack.config.ports["user"])
        async with consumer:
            async with outage(link, "stalled"):
                # The handler hangs inside its transaction, and so does a profile read: a
                # message and a request are in the service's hands when SIGTERM arrives.
                first = await sign_up(http, stack)
                await eventually(
                    lambda: _equals(depth(stack, USER_QUEUE), (0, 1)),
                    "the message received by the consumer and not deleted",
                )
                reading = asyncio.create_task(read_profile(http, stack, first))
                await asyncio.sleep(0.5)  # the request has reached the service
                consumer.terminate()
                # Longer than a long poll (1 s here): a receive the stop cut short has ended.
                await asyncio.sleep(1.5)
                # Published while the service is stopping (and still answering its request):
                # it must stay in the queue for another replica, not be taken by a consumer
                # that is going away.
                second = await sign_up(http, stack)
                await eventually(
                    lambda: _equals(total(depth(stack, USER_QUEUE)), 2),
                    "the second message in the queue",
                )
                await asyncio.sleep(1.5)  # a consumer still receiving would take it now
                assert await depth(stack, USER_QUEUE) == (1, 1), "(visible, in flight)"
                assert consumer.running, "the process ended with a message in its hands"
                assert not reading.done()
            # The database answers again: the handler commits, the message is deleted, the
            # request is answered.
            status = await asyncio.wait_for(consumer.wait(), timeout=30)
            output = consumer.output(last=20_000)
            answered = await reading

        assert status == 0, output
        assert answered.status_code in (200, 404), answered.text  # an answer, not a reset
        assert ids_of(await postgres_rows(user_database, PROFILES)) == [first["userId"]]
        assert len(await postgres_rows(user_database, PROCESSED)) == 1
        assert "(receive 1)" in output  # handled on its first delivery, not redelivered
        assert await depth(stack, USER_QUEUE) == (1, 0)  # the first deleted, the second left
        assert second["userId"] not in ids_of(await postgres_rows(user_database, PROFILES))
