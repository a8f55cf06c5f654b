"""The kit's metrics (`services.kit.metrics`) on the in-memory bus and an in-process app: what a
consumer counts for each outcome, the lag, the HTTP durations by operation, and metrics that
are off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from services.kit.bus import Delivery
from services.kit.consumer import Backoff, ConsumerOptions
from services.kit.events import Event, Message, encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
from services.kit.metrics import HttpMetrics, Metrics
from services.kit.topology import QueueSpec
from tests import factories

FAST = ConsumerOptions(max_in_flight=10, wait_seconds=0.05, backoff=Backoff(base=0))


async def scraped(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of one scrape: (name, labels) → value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(await metrics.exposition())
        for sample in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


async def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def broker_with(queue: str, max_receives: int = 2) -> InMemoryBroker:
    broker = InMemoryBroker()
    broker.create_queue(QueueSpec(queue + "-dlq"))
    broker.create_queue(
        QueueSpec(queue, dead_letter_queue=queue + "-dlq", max_receives=max_receives)
    )
    return broker


async def test_a_handler_that_keeps_failing_counts_each_failure_then_one_dead_letter() -> None:
    broker = broker_with("orders")
    metrics = Metrics()
    consumer = InMemoryEventConsumer(broker, "orders", FAST)
    metrics.observe_consumer(consumer)

    async def fail(event: Event, delivery: Delivery) -> None:
        raise RuntimeError("the database is down")

    consumer.subscribe("user.created", fail)
    broker.send("orders", encode(factories.user_created()))
    await consumer.start()
    await eventually(lambda: broker.depth("orders-dlq") == 1)
    await consumer.stop()

    samples = await scraped(metrics)
    created = {"queue": "orders", "event_type": "user.created"}
    assert samples[key("accord_consumer_messages_received_total", queue="orders")] == 2
    assert samples[key("accord_consumer_messages_failed_total", **created)] == 2
    assert samples[key("accord_consumer_handling_duration_seconds_count", **created)] == 2
    assert (
        samples[
            key(
                "accord_consumer_messages_dead_lettered_total",
                **created,
                reason="retries_exhausted",
            )
        ]
        == 1
    )
    assert samples[key("accord_dead_letter_queue_visible_messages", queue="orders")] == 1
    assert samples.get(key("accord_consumer_messages_handled_total", **created)) == 0


async def test_an_event_nobody_handles_is_dead_lettered_as_unrouted() -> None:
    broker = broker_with("orders")
    metrics = Metrics()
    consumer = InMemoryEventConsumer(broker, "orders", FAST)
    metrics.observe_consumer(consumer)
    broker.send("orders", encode(factories.user_created()))
    await consumer.start()
    await eventually(lambda: broker.depth("orders-dlq") == 1)
    await consumer.stop()

    samples = await scraped(metrics)
    assert (
        samples[
            key(
                "accord_consumer_messages_dead_lettered_total",
                queue="orders",
                event_type="user.created",
                reason="unrouted",
            )
        ]
        == 1
    )


async def test_a_message_naming_an_invented_event_type_is_labelled_unknown() -> None:
    broker = broker_with("orders")
    metrics = Metrics()
    consumer = InMemoryEventConsumer(broker, "orders", FAST)
    metrics.observe_consumer(consumer)
    broker.send("orders", Message("{}", {"eventType": f"invented.{uuid.uuid4()}"}))
    await consumer.start()
    await eventually(lambda: broker.depth("orders-dlq") == 1)
    await consumer.stop()

    samples = await scraped(metrics)
    labels = {
        dict(labels).get("event_type")
        for name, labels in samples
        if name == "accord_consumer_messages_dead_lettered_total"
    }
    assert labels == {"unknown"}


async def test_the_lag_is_the_events_age_when_the_queue_has_no_sent_timestamp() -> None:
    broker = broker_with("orders")
    metrics = Metrics()
    consumer = InMemoryEventConsumer(broker, "orders", FAST)
    metrics.observe_consumer(consumer)
    handled: list[bool | None] = []

    async def handle(event: Event, delivery: Delivery) -> bool:
        handled.append(True)
        return True

    consumer.subscribe("user.created", handle)
    old = factories.user_created().model_copy(
        update={"timestamp": datetime.now(UTC) - timedelta(minutes=10)}
    )
    broker.send("orders", encode(old))
    await consumer.start()
    await eventually(lambda: bool(handled))
    await consumer.stop()

    samples = await scraped(metrics)
    created = {"queue": "orders", "event_type": "user.created"}
    # Ten minutes old: above the 300 s bucket, within the 900 s one.
    assert samples[key("accord_consumer_message_age_seconds_bucket", **created, le="300.0")] == 0
    assert samples[key("accord_consumer_message_age_seconds_bucket", **created, le="900.0")] == 1
    assert samples[key("accord_consumer_duplicates_absorbed_total", **created)] == 0


async def test_requests_are_timed_by_operation_id_and_status_and_unmatched_ones_so_named() -> None:
    metrics = Metrics()
    app = FastAPI()

    @app.get("/things/{thing}", operation_id="getThing")
    async def get_thing(thing: int) -> dict[str, int]:
        return {"thing": thing}

    app.add_middleware(HttpMetrics, metrics=metrics, service="things")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
        await http.get("/things/1")
        await http.get("/things/2")
        await http.get("/things/not-a-number")
        await http.get("/elsewhere")

    samples = await scraped(metrics)
    count = "accord_http_request_duration_seconds_count"
    assert samples[key(count, service="things", operation="getThing", status="200")] == 2
    assert samples[key(count, service="things", operation="getThing", status="422")] == 1
    assert samples[key(count, service="things", operation="unmatched", status="404")] == 1


async def test_metrics_that_are_off_answer_no_series_and_observe_no_consumer() -> None:
    broker = broker_with("orders")
    metrics = Metrics.disabled()
    consumer = InMemoryEventConsumer(broker, "orders", FAST)
    metrics.observe_consumer(consumer)

    assert await metrics.exposition() == ""
    assert type(consumer.observer).__name__ == "Unobserved"
