"""`/metrics` of the user service as `accord up` runs it (real adapters, SQS on a moto server
over HTTP), scraped after real traffic: requests, an event consumed from SNS, a duplicate
delivery absorbed and a message that is not an event dead-lettered."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.bus.provision import Provisioner, topology_from_contracts
from harness.project import Project
from services.kit.aws import BusLocation
from services.kit.metrics import Metrics
from services.kit.sns import SnsEventPublisher
from services.user.app import build_adapters
from tests import factories
from tests.user.conftest import running, user_settings

pytestmark = pytest.mark.emulator

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(exposition: str) -> Samples:
    """Every sample of a scrape: (name, labels) → value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(scraped: Samples, name: str, **labels: str) -> float | None:
    return scraped.get((name, frozenset(labels.items())))


async def eventually(probe: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the service did not get there in time")
        await asyncio.sleep(0.2)


async def test_metrics_count_requests_events_duplicates_dead_letters_and_queue_depths(
    moto_endpoint: str,
    repository: Project,
    unique_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    location = BusLocation.detect()
    sqs = location.sqs()
    Provisioner(location.sns(), sqs).apply(
        topology_from_contracts(repository).with_prefix(unique_prefix)
    )
    queue = unique_prefix + "accord-user-service"
    settings = user_settings(
        f"sqlite:///{tmp_path / 'user.db'}", queue=queue, consumer_wait_seconds=1
    )
    # Sampled on every scrape here (every 15 s by default), so that the depths are current.
    adapters = dataclasses.replace(
        build_adapters(settings), metrics=Metrics(queue_sample_seconds=0)
    )
    publisher = SnsEventPublisher(location.sns(), unique_prefix + "accord-user-events")
    event = factories.user_created(uuid.uuid4())

    async with running(settings, adapters) as http:
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get(f"/api/v1/users/{uuid.uuid4()}")).status_code == 401
        await publisher.publish(event)
        await publisher.publish(event)  # delivered twice: one profile, one duplicate absorbed
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="not an event")

        async def settled() -> bool:
            scraped = samples((await http.get("/metrics")).text)
            return (
                value(scraped, "accord_consumer_messages_received_total", queue=queue) == 3
                and value(
                    scraped,
                    "accord_dead_letter_queue_visible_messages",
                    queue=queue,
                )
                == 1
            )

        await eventually(settled)
        answer = await http.get("/metrics")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    scraped = samples(answer.text)
    created = {"queue": queue, "event_type": "user.created"}
    assert value(scraped, "accord_consumer_messages_handled_total", **created) == 2
    assert value(scraped, "accord_consumer_duplicates_absorbed_total", **created) == 1
    assert value(scraped, "accord_consumer_handling_duration_seconds_count", **created) == 2
    assert value(scraped, "accord_consumer_message_age_seconds_count", **created) == 2
    assert (
        value(
            scraped,
            "accord_consumer_messages_dead_lettered_total",
            queue=queue,
            event_type="unknown",
            reason="invalid",
        )
        == 1
    )
    assert value(scraped, "accord_queue_visible_messages", queue=queue) == 0
    assert value(scraped, "accord_dead_letter_queue_visible_messages", queue=queue) == 1
    assert (
        value(
            scraped,
            "accord_http_request_duration_seconds_count",
            service="user",
            operation="getLiveness",
            status="200",
        )
        == 1
    )
    assert (
        value(
            scraped,
            "accord_http_request_duration_seconds_count",
            service="user",
            operation="getUserProfile",
            status="401",
        )
        == 1
    )
    # The scrapes themselves are requests too, named by the contract's operation.
    assert (
        value(
            scraped,
            "accord_http_request_duration_seconds_count",
            service="user",
            operation="getMetrics",
            status="200",
        )
        or 0
    ) >= 1
