"""Traces in the kit (`services/kit/tracing.py`): server spans named by operationId, client spans
that carry the context, and an event's trace from the request through the outbox relay's
publish to the consumer, on the in-memory bus (the same consumer runs on SQS:
tests/e2e/test_traces.py)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from fastapi import FastAPI

from services.kit.bus import Delivery
from services.kit.consumer import Backoff, ConsumerOptions
from services.kit.events import Event, encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from services.kit.topology import QueueSpec, SubscriptionSpec
from services.kit.tracing import (
    ServerSpans,
    SpanStore,
    StoredSpan,
    Tracing,
    TracingSettingError,
    continuing,
    current_traceparent,
    trace_id_of,
)
from tests import factories

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE}-00f067aa0ba902b7-01"


def recording(service: str, store: SpanStore) -> Tracing:
    tracing = Tracing(service, environ={})
    tracing.export_to(store)
    return tracing


async def until(probe: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not probe():
        assert asyncio.get_running_loop().time() < deadline, "not in time"
        await asyncio.sleep(0.01)


def app_with_spans(tracing: Tracing) -> FastAPI:
    app = FastAPI()

    @app.get("/things/{thing}", operation_id="getThing")
    async def get_thing(thing: str) -> dict[str, str | None]:
        return {"thing": thing, "traceparent": current_traceparent()}

    app.add_middleware(ServerSpans, tracing=tracing)
    return app


async def test_a_request_is_a_server_span_named_by_its_operation_id_in_the_callers_trace() -> None:
    store = SpanStore()
    app = app_with_spans(recording("user", store))

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        answer = await http.get("/things/7", headers={"traceparent": CALLER})

    [span] = store.trace(TRACE)
    assert (span.service, span.name, span.kind) == ("user", "getThing", "SERVER")
    assert span.parent_id == "00f067aa0ba902b7"
    assert span.attributes["http.route"] == "/things/{thing}"
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["http.response.status_code"] == 200
    # What the request causes continues its span, not the caller's.
    assert answer.json()["traceparent"] == f"00-{TRACE}-{span.span_id}-01"


async def test_with_tracing_off_a_requests_trace_context_is_passed_on_unchanged() -> None:
    app = app_with_spans(Tracing.off())

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        answer = await http.get("/things/7", headers={"traceparent": CALLER})
        malformed = await http.get("/things/7", headers={"traceparent": "00-zz-zz-01"})

    assert answer.json()["traceparent"] == CALLER
    assert malformed.json()["traceparent"] is None


async def test_a_call_to_another_service_is_a_client_span_whose_context_goes_in_the_request() -> (
    None
):
    store = SpanStore()
    tracing = recording("gateway", store)
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(503)

    transport = tracing.transport("user", httpx.MockTransport(answer))
    async with httpx.AsyncClient(transport=transport, base_url="http://user.internal") as http:
        with continuing(CALLER):
            await http.get("/api/v1/users/1")

    [span] = store.trace(TRACE)
    assert (span.kind, span.name, span.status) == ("CLIENT", "GET", "ERROR")
    assert span.parent_id == "00f067aa0ba902b7"
    assert span.attributes["peer.service"] == "user"
    assert span.attributes["http.response.status_code"] == 503
    assert span.attributes["server.address"] == "user.internal"
    assert sent[0].headers["traceparent"] == f"00-{TRACE}-{span.span_id}-01"


def queue_with_dead_letters(broker: InMemoryBroker, max_receives: int = 2) -> str:
    broker.create_topic("events")
    broker.create_queue(QueueSpec("profiles-dlq"))
    broker.create_queue(
        QueueSpec("profiles", dead_letter_queue="profiles-dlq", max_receives=max_receives)
    )
    broker.subscribe(SubscriptionSpec("events", "profiles"))
    return "profiles"


Handler = Callable[[Event, Delivery], Awaitable[bool | None]]


async def consume(
    broker: InMemoryBroker, tracing: Tracing, handler: Handler, until_done: Callable[[], bool]
) -> None:
    consumer = InMemoryEventConsumer(
        broker,
        "profiles",
        ConsumerOptions(wait_seconds=0.05, backoff=Backoff(base=0.0)),
        tracing=tracing,
    )
    consumer.subscribe("user.created", handler)
    await consumer.start()
    try:
        await until(until_done)
    finally:
        await consumer.stop()


async def publish_in_a_request(
    broker: InMemoryBroker, auth: Tracing, event: Event
) -> tuple[str, str]:
    """Encode `event` in a server span (as the outbox does), publish it as the relay does; the
    server span's and the producer span's ids."""
    with auth.tracer.start_as_current_span("registerUser") as request:
        message = encode(event)
    publishing = auth.publishing([message], destination="events")
    outcomes = await InMemoryEventPublisher(broker, "events").publish_batch(publishing.messages)
    publishing.end(outcomes)
    server = format(request.get_span_context().span_id, "016x")
    [producer_message] = publishing.messages
    return server, producer_message.attributes["traceparent"].split("-")[2]


async def test_an_events_consumer_span_is_a_child_of_the_publish_in_the_requests_trace() -> None:
    store = SpanStore()
    broker = InMemoryBroker()
    queue_with_dead_letters(broker)
    handled: list[str | None] = []

    async def create_profile(event: Event, delivery: Delivery) -> None:
        handled.append(current_traceparent())

    with continuing(CALLER):
        request, producer = await publish_in_a_request(
            broker, recording("auth", store), factories.user_created()
        )
    await consume(broker, recording("user", store), create_profile, lambda: bool(handled))

    spans = {span.span_id: span for span in store.trace(TRACE)}
    [consumer] = [span for span in spans.values() if span.kind == "CONSUMER"]
    assert consumer.service == "user"
    assert consumer.name == "process user.created"
    assert consumer.parent_id == producer
    assert spans[producer].kind == "PRODUCER"
    assert spans[producer].parent_id == request
    assert spans[request].parent_id == "00f067aa0ba902b7"
    assert consumer.attributes["messaging.destination.name"] == "profiles"
    assert consumer.attributes["accord.outcome"] == "handled"
    assert trace_id_of(handled[0]) == TRACE


def events_of(span: StoredSpan) -> list[str]:
    return [name for name, _, _ in span.events]


async def test_a_duplicate_a_retry_and_a_dead_lettering_are_span_events() -> None:
    store = SpanStore()
    broker = InMemoryBroker()
    queue_with_dead_letters(broker, max_receives=2)
    auth, user = recording("auth", store), recording("user", store)
    doomed, duplicate = uuid.uuid4(), uuid.uuid4()
    seen: list[uuid.UUID] = []

    async def handler(event: Event, delivery: Delivery) -> bool:
        seen.append(event.userId)
        if event.userId == doomed:
            raise RuntimeError("the database is gone")
        return False  # applied before: a duplicate, absorbed

    await publish_in_a_request(broker, auth, factories.user_created(user_id=doomed))
    await publish_in_a_request(broker, auth, factories.user_created(user_id=duplicate))
    await consume(broker, user, handler, lambda: len(broker.dead_letters("profiles")) == 1)

    consumers = [span for span in store.spans() if span.kind == "CONSUMER"]
    outcomes = sorted(
        (span.attributes[RECEIVE], span.attributes["accord.outcome"], events_of(span)[0])
        for span in consumers
    )
    assert outcomes == [
        (1, "duplicate", "duplicate"),
        (1, "retried", "retried"),
        (2, "dead-lettered", "dead-lettered"),
    ]
    flows = {event["eventId"]: [hop["hop"] for hop in event["hops"]] for event in store.events()}
    assert sorted(flows.values()) == [
        ["published", "delivered", "duplicate"],
        ["published", "delivered", "retried", "delivered", "dead-lettered"],
    ]


RECEIVE = "accord.receive_count"


def test_two_services_in_one_process_keep_their_own_names() -> None:
    store = SpanStore()
    for service in ("auth", "user"):
        with recording(service, store).tracer.start_as_current_span("work"):
            pass

    assert sorted(span.service for span in store.spans()) == ["auth", "user"]


def test_otlp_is_used_when_its_endpoint_is_configured_and_a_grpc_protocol_is_refused() -> None:
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}

    assert Tracing.for_service("auth", environ=endpoint).enabled
    assert not Tracing.for_service("auth", environ={}).enabled
    assert not Tracing.for_service(
        "auth", environ={**endpoint, "OTEL_SDK_DISABLED": "true"}
    ).enabled
    with pytest.raises(TracingSettingError, match=r"^OTEL_EXPORTER_OTLP_PROTOCOL: "):
        Tracing.for_service("auth", environ={**endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


def test_spans_reach_an_otlp_collector_at_the_configured_endpoint() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["content-length"])
            received.append((self.path, self.rfile.read(length)))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        tracing = Tracing.for_service("user", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
        with continuing(CALLER), tracing.tracer.start_as_current_span("getUserProfile"):
            pass
        tracing.shutdown()  # exports what the batch holds
    finally:
        server.shutdown()

    [(path, body)] = received
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    [span] = resource_spans.scope_spans[0].spans
    assert path == "/v1/traces"
    assert service["service.name"] == "user"
    assert span.name == "getUserProfile"
    assert span.trace_id.hex() == TRACE
