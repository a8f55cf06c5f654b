"""`/metrics` of the platform as `accord up` runs it, scraped over HTTP after a registration and
an overview: the auth service's and the gateway's request durations by operation, the auth
outbox drained, and the user service's consumer having handled the `user.created` event."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.support import StartStack

pytestmark = pytest.mark.emulator

PASSWORD = "correct-horse-battery-staple"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: httpx.AsyncClient, url: str) -> Samples:
    answer = await http.get(f"{url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def eventually(probe: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the platform did not get there in time")
        await asyncio.sleep(0.2)


async def test_every_service_answers_metrics_of_the_traffic_it_served(
    start_stack: StartStack,
) -> None:
    stack = await start_stack()
    auth, user, gateway = (stack.config.url(name) for name in ("auth", "user", "gateway"))
    count = "accord_http_request_duration_seconds_count"
    handled = "accord_consumer_messages_handled_total"
    queue = "accord-user-service"

    async with httpx.AsyncClient(timeout=10) as http:
        registered = await http.post(
            f"{auth}/api/v1/auth/register",
            json={"email": f"m{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.text
        bearer = {"authorization": f"Bearer {registered.json()['accessToken']}"}

        async def profile_created() -> bool:
            samples = await scrape(http, user)
            return value(samples, handled, queue=queue, event_type="user.created") == 1

        await eventually(profile_created)  # user.created went through SNS and SQS
        assert (await http.get(f"{gateway}/api/v1/me", headers=bearer)).status_code == 200
        assert (await http.get(f"{gateway}/api/v1/me")).status_code == 401

        async def outbox_drained() -> bool:
            samples = await scrape(http, auth)
            return value(samples, "accord_outbox_pending_rows", service="auth") == 0

        await eventually(outbox_drained)
        at_auth = await scrape(http, auth)
        at_gateway = await scrape(http, gateway)
        at_user = await scrape(http, user)

    assert value(at_auth, count, service="auth", operation="registerUser", status="201") == 1
    assert value(at_auth, "accord_outbox_oldest_pending_age_seconds", service="auth") == 0
    assert value(at_gateway, count, service="gateway", operation="getMyOverview", status="200") >= 1
    assert value(at_gateway, count, service="gateway", operation="getMyOverview", status="401") == 1
    assert value(at_user, handled, queue=queue, event_type="user.created") == 1
    assert value(at_user, "accord_dead_letter_queue_visible_messages", queue=queue) == 0
    # The gateway's calls to the user service are requests there too.
    assert value(at_user, count, service="user", operation="getUserProfile", status="200") == 1
