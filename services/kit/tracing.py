"""Traces: one per user action, from the HTTP request through the outbox, SNS and SQS to every
consumer (OpenTelemetry, W3C Trace Context).

- `Tracing` is one service's tracer, made per app (`Tracing.for_service`), never installed as
  OpenTelemetry's global provider, so that several services in one process (`accord up`, the
  tests) each keep their own `service.name`. It exports over OTLP/HTTP when the standard
  variables say so (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
  `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`, …) and to any `SpanStore` added to it
  (`export_to`: `accord up`'s console). With neither it records nothing, and only propagates:
  a request's `traceparent` still travels with the events it causes.
- `ServerSpans` (the ASGI middleware of every service) makes a SERVER span per request, named
  by the contract's `operationId`; `TracedTransport` (under every httpx client that calls
  another service) a CLIENT span per call, with the trace context in the request.
- Events: `services.kit.events.encode` stores the current context as the message's
  `traceparent` attribute, so it is kept with the outbox row; the relay publishes each row in
  a PRODUCER span, child of that context, whose own context replaces the attribute
  (`Tracing.publishing`); the consumer's processing span (`Tracing.consuming`) is a CONSUMER
  span, child of the producer's. Duplicates absorbed, retries and dead-letterings are span
  events (`record`).

Attribute names follow the OpenTelemetry semantic conventions for HTTP and messaging; what they
do not name is under `accord.` (`accord.event.type`, `accord.event.id`, `accord.outcome`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TRACEPARENT: Final = "traceparent"
EVENT_TYPE: Final = "accord.event.type"
EVENT_ID: Final = "accord.event.id"
OUTCOME: Final = "accord.outcome"
OPERATION: Final = "accord.operation"
RECEIVE_COUNT: Final = "accord.receive_count"
# The span event that says an event was written to the outbox (the first hop of an event).
OUTBOX_WRITE: Final = "outbox.write"

# What a consumer's processing span ends as (`accord.outcome`) and the span events saying so.
HANDLED: Final = "handled"
DUPLICATE: Final = "duplicate"
RETRIED: Final = "retried"
DEAD_LETTERED: Final = "dead-lettered"

_PROPAGATOR: Final = TraceContextTextMapPropagator()
# Where `ServerSpans` leaves the ids of a request's span in its scope, for the request's log line.
SPAN_IDS: Final = "accord.span_ids"
# Probes, documentation and scrapes: asked every few seconds, part of no user action.
UNTRACED: Final = ("/health", "/docs", "/metrics")


class TracingSettingError(ValueError):
    """A tracing variable this process cannot honour; the message starts with its name."""


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span (or of the remote parent a request brought,
    when nothing is recording); None outside any trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def context_of(traceparent: str | None) -> Context:
    """The context a `traceparent` continues (an empty one for None or a malformed value)."""
    if not traceparent:
        return Context()
    return _PROPAGATOR.extract({TRACEPARENT: traceparent}, context=Context())


@contextlib.contextmanager
def continuing(traceparent: str | None) -> Iterator[None]:
    """Make `traceparent` the current trace for the block (nothing recorded): what a request
    carrying it does when tracing is off, and what tests use to act within a trace."""
    token = otel_context.attach(context_of(traceparent))
    try:
        yield
    finally:
        otel_context.detach(token)


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32 hex digits of a `traceparent`'s trace id; None when it has none."""
    context = trace.get_current_span(context_of(traceparent)).get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def record(outcome: str, **attributes: str | int) -> None:
    """Say on the current span what became of the message it processes (a span event named
    `outcome`, and `accord.outcome`); nothing outside a recording span."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(outcome, {key.replace("_", "."): value for key, value in attributes.items()})
        span.set_attribute(OUTCOME, outcome)


def identify(event_type: str, event_id: str) -> None:
    """Name on the current span the event it processes."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(EVENT_TYPE, event_type)
        span.set_attribute(EVENT_ID, event_id)


def written_to_outbox(event_type: str, event_id: str) -> None:
    """Say on the current span (the request's) that it wrote an event to the outbox."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(OUTBOX_WRITE, {EVENT_TYPE: event_type, EVENT_ID: event_id})


def otlp_configured(environ: Mapping[str, str]) -> bool:
    """Whether the standard variables ask for traces over OTLP."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


def _otlp_exporter(environ: Mapping[str, str]) -> SpanExporter:
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol != "http/protobuf":
        raise TracingSettingError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: Accord exports traces over http/protobuf, not "
            f"{protocol!r} (point it at the collector's OTLP/HTTP port, usually 4318)"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # The endpoint from the variables given; headers, timeout, compression and certificates the
    # exporter reads from the process's environment itself (the standard variables).
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if not endpoint:
        endpoint = environ["OTEL_EXPORTER_OTLP_ENDPOINT"].strip().rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=endpoint)


class Tracing:
    """One service's tracer (`service.name` = the service), its exporters, and the propagation
    of trace context in and out of it. Off (`Tracing.off()`) it records nothing but still
    carries an incoming `traceparent` on to what the request causes."""

    def __init__(self, service: str, *, environ: Mapping[str, str] | None = None) -> None:
        self.service = service
        self._environ = dict(os.environ if environ is None else environ)
        self._provider: TracerProvider | None = None
        self._tracer: trace.Tracer = trace.NoOpTracer()
        self._lock = threading.Lock()

    @classmethod
    def off(cls) -> Tracing:
        """Tracing that records nothing (until a `SpanStore` is added to it)."""
        return cls("accord", environ={})

    @classmethod
    def for_service(cls, service: str, *, environ: Mapping[str, str] | None = None) -> Tracing:
        """The service's tracing from the standard OpenTelemetry variables: recording and
        exporting over OTLP when they configure an endpoint; else off until a store is added.
        A variable it cannot honour raises `TracingSettingError` naming it."""
        tracing = cls(service, environ=environ)
        if otlp_configured(tracing._environ):
            tracing._add(BatchSpanProcessor(_otlp_exporter(tracing._environ)))
        return tracing

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded (some exporter takes them)."""
        return self._provider is not None

    @property
    def tracer(self) -> trace.Tracer:
        return self._tracer

    def export_to(self, store: SpanExporter, *, batched: bool = False) -> None:
        """Record spans and hand each, as it ends, to `store` (`accord up`'s `SpanStore`); or,
        `batched`, in batches from a background thread, as OTLP is."""
        self._add(BatchSpanProcessor(store) if batched else SimpleSpanProcessor(store))

    def _add(self, processor: SimpleSpanProcessor | BatchSpanProcessor) -> None:
        with self._lock:
            if self._provider is None:
                resource = Resource.create(
                    {"service.name": self.service, "service.namespace": "accord"}
                )
                # Not the global provider: each service of a process has its own.
                self._provider = TracerProvider(resource=resource)
                self._tracer = self._provider.get_tracer("accord")
            self._provider.add_span_processor(processor)

    def shutdown(self) -> None:
        """Export what is still buffered (at shutdown)."""
        if self._provider is not None:
            self._provider.shutdown()

    # --- HTTP ---------------------------------------------------------------------------

    def transport(
        self, peer: str, inner: httpx.AsyncBaseTransport | None = None
    ) -> TracedTransport:
        """The transport of an httpx client that calls the `peer` service."""
        return TracedTransport(self, peer, inner or httpx.AsyncHTTPTransport())

    # --- events -------------------------------------------------------------------------

    def publishing(self, messages: Sequence[Any], *, destination: str | None) -> Publishing:
        """PRODUCER spans for `messages` (`services.kit.events.Message`) about to be sent to
        SNS, each a child of the context stored in its `traceparent` attribute; `messages`
        with that attribute replaced by the producer span's. `end(outcomes)` ends them."""
        return Publishing(self, messages, destination)

    @contextlib.contextmanager
    def consuming(
        self, queue: str, attributes: Mapping[str, str], *, message_id: str, receive_count: int
    ) -> Iterator[trace.Span]:
        """The current span while a consumer processes one message: a CONSUMER span, child of
        the producer span its `traceparent` attribute names."""
        parent = context_of(attributes.get(TRACEPARENT))
        event_type = attributes.get("eventType", "message")
        if not self.enabled:
            token = otel_context.attach(parent)
            try:
                yield trace.get_current_span()
            finally:
                otel_context.detach(token)
            return
        with self._tracer.start_as_current_span(
            f"process {event_type}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "aws_sqs",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": queue,
                "messaging.message.id": message_id,
                EVENT_TYPE: event_type,
                RECEIVE_COUNT: receive_count,
            },
        ) as span:
            yield span


class Publishing:
    """The PRODUCER spans of one publish call (`Tracing.publishing`)."""

    def __init__(self, tracing: Tracing, messages: Sequence[Any], destination: str | None) -> None:
        self._spans: list[trace.Span] = []
        self.messages: list[Any] = []
        for message in messages:
            if not tracing.enabled:
                self.messages.append(message)
                continue
            attributes = dict(message.attributes)
            event_id = _event_id(message.body)
            span = tracing.tracer.start_span(
                f"publish {attributes.get('eventType', 'message')}",
                context=context_of(attributes.get(TRACEPARENT)),
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "aws.sns",
                    "messaging.operation.type": "send",
                    "messaging.operation.name": "publish",
                    "messaging.destination.name": destination or "",
                    EVENT_TYPE: attributes.get("eventType", ""),
                    **({EVENT_ID: event_id} if event_id else {}),
                },
            )
            self._spans.append(span)
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span, Context()))
            attributes[TRACEPARENT] = carrier[TRACEPARENT]
            self.messages.append(type(message)(message.body, attributes))

    def end(self, outcomes: Sequence[BaseException | None]) -> None:
        """End each span: OK for a message the bus accepted, ERROR with why for the others."""
        for span, outcome in zip(self._spans, outcomes, strict=False):
            if outcome is None:
                span.set_status(Status(StatusCode.OK))
            else:
                span.set_attribute("error.type", type(outcome).__name__)
                span.set_status(Status(StatusCode.ERROR, str(outcome)[:200]))
            span.end()


def _event_id(body: str) -> str | None:
    import json

    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    value = decoded.get("eventId") if isinstance(decoded, dict) else None
    return str(value) if value is not None else None


class TracedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that makes a CLIENT span for each request to another service and
    sends the trace context with it (`traceparent`), also when nothing is recorded."""

    def __init__(self, tracing: Tracing, peer: str, inner: httpx.AsyncBaseTransport) -> None:
        self.tracing = tracing
        self.peer = peer
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.tracing.enabled:
            traceparent = current_traceparent()
            if traceparent is not None:
                request.headers[TRACEPARENT] = traceparent
            return await self.inner.handle_async_request(request)
        url = request.url
        with self.tracing.tracer.start_as_current_span(
            request.method,
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": request.method,
                "url.full": str(url.copy_with(query=None)),
                "url.path": url.path,
                "server.address": url.host,
                "server.port": url.port or (443 if url.scheme == "https" else 80),
                "peer.service": self.peer,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            request.headers[TRACEPARENT] = carrier[TRACEPARENT]
            try:
                response = await self.inner.handle_async_request(request)
            except BaseException as error:
                span.set_attribute("error.type", type(error).__name__)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                span.set_attribute("error.type", str(response.status_code))
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class ServerSpans:
    """ASGI middleware: a SERVER span per request, named by the contract's `operationId` (the
    route's), child of the request's `traceparent` when it has a valid one. Off, the request's
    trace is only made current, so that the events it causes continue it."""

    def __init__(self, app: ASGIApp, tracing: Tracing | None = None) -> None:
        self.app = app
        self.tracing = tracing or Tracing.off()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parent = context_of(_header(scope, b"traceparent"))
        if not self.tracing.enabled or str(scope.get("path", "")).startswith(UNTRACED):
            token = otel_context.attach(parent)
            try:
                await self.app(scope, receive, send)
            finally:
                otel_context.detach(token)
            return
        method = str(scope.get("method", "GET"))
        server = scope.get("server") or ("", None)
        client = scope.get("client") or ("", None)
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "url.path": str(scope.get("path", "")),
            "url.scheme": str(scope.get("scheme", "http")),
            "network.protocol.version": str(scope.get("http_version", "1.1")),
        }
        if server[0]:
            attributes["server.address"] = str(server[0])
        if server[1]:
            attributes["server.port"] = int(server[1])
        if client[0]:
            attributes["client.address"] = str(client[0])
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        # Started and made current by hand rather than with `start_as_current_span`: this runs
        # on every request (bench/observability_bench.py).
        span = self.tracing.tracer.start_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        context = span.get_span_context()
        scope[SPAN_IDS] = {
            "trace_id": format(context.trace_id, "032x"),
            "span_id": format(context.span_id, "016x"),
        }
        try:
            await self.app(scope, receive, capture)
        finally:
            otel_context.detach(token)
            route = scope.get("route")
            operation = getattr(route, "operation_id", None)
            template = getattr(route, "path", None)
            ending: dict[str, str | int] = {"http.response.status_code": status}
            if template:
                ending["http.route"] = str(template)
            if operation:
                ending[OPERATION] = str(operation)
                span.update_name(str(operation))
            elif template:
                span.update_name(f"{method} {template}")
            if status >= 500:
                ending["error.type"] = str(status)
                span.set_status(Status(StatusCode.ERROR))
            span.set_attributes(ending)
            span.end()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            try:
                return bytes(value).decode("ascii").strip().lower()
            except UnicodeDecodeError:
                return None
    return None


# --- the in-process store (`accord up`'s console) -------------------------------------------


@dataclass(frozen=True)
class StoredSpan:
    """A finished span as the console shows it."""

    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    attributes: Mapping[str, Any]
    events: tuple[tuple[str, int, Mapping[str, Any]], ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "traceId": self.trace_id,
            "spanId": self.span_id,
            "parentId": self.parent_id,
            "service": self.service,
            "name": self.name,
            "kind": self.kind,
            "start": _iso(self.start_ns),
            "startUnixNano": self.start_ns,
            "durationMs": round((self.end_ns - self.start_ns) / 1e6, 3),
            "status": self.status,
            "attributes": dict(self.attributes),
            "events": [
                {"name": name, "time": _iso(at), "attributes": dict(values)}
                for name, at, values in self.events
            ],
        }


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="microseconds")


class SpanStore(SpanExporter):
    """The last `capacity` finished spans of every service of the process, in memory: what
    `accord up`'s console reads (`/api/traces/{traceId}`, `/api/events`). Thread-safe."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._spans: deque[StoredSpan] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.changed = 0  # a counter the console polls cheaply

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        stored = [_stored(span) for span in spans if span.context is not None]
        with self._lock:
            self._spans.extend(stored)
            self.changed += 1
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release: the store lives as long as the stack."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def spans(self) -> list[StoredSpan]:
        with self._lock:
            return list(self._spans)

    def trace(self, trace_id: str) -> list[StoredSpan]:
        """The spans of one trace, the earliest first."""
        wanted = trace_id.lower()
        return sorted(
            (span for span in self.spans() if span.trace_id == wanted),
            key=lambda span: span.start_ns,
        )

    def traces(self, limit: int = 50) -> list[dict[str, Any]]:
        """The most recent traces: the root's service and name, start, duration, span count."""
        by_trace: dict[str, list[StoredSpan]] = {}
        for span in self.spans():
            by_trace.setdefault(span.trace_id, []).append(span)
        summaries: list[dict[str, Any]] = []
        for trace_id, spans in by_trace.items():
            ids = {span.span_id for span in spans}
            root = min(
                spans, key=lambda span: (span.parent_id in ids, span.start_ns)
            )  # a span whose parent is not here, the earliest
            start = min(span.start_ns for span in spans)
            end = max(span.end_ns for span in spans)
            summaries.append(
                {
                    "traceId": trace_id,
                    "service": root.service,
                    "name": root.name,
                    "start": _iso(start),
                    "startUnixNano": start,
                    "durationMs": round((end - start) / 1e6, 3),
                    "spans": len(spans),
                    "services": sorted({span.service for span in spans}),
                }
            )
        summaries.sort(key=lambda summary: summary["startUnixNano"], reverse=True)
        return summaries[:limit]

    def events(self, limit: int = 200) -> list[dict[str, Any]]:
        """Every event the spans tell of, the newest first, each with its hops: written to the
        outbox, published to SNS, then per queue delivered and what became of each delivery
        (handled, absorbed as a duplicate, retried, dead-lettered), with the time of each."""
        events: dict[str, dict[str, Any]] = {}

        def entry(event_id: str, event_type: str, trace_id: str) -> dict[str, Any]:
            found = events.setdefault(
                event_id,
                {"eventId": event_id, "eventType": event_type, "traceId": trace_id, "hops": []},
            )
            if found["eventType"] in ("", "message"):
                found["eventType"] = event_type
            return found

        for span in self.spans():
            for name, at, values in span.events:
                if name == OUTBOX_WRITE and values.get(EVENT_ID):
                    found = entry(
                        str(values[EVENT_ID]), str(values.get(EVENT_TYPE, "")), span.trace_id
                    )
                    found["hops"].append(_hop("written", span, at, "written to the outbox"))
            event_id = span.attributes.get(EVENT_ID)
            if not event_id:
                continue
            found = entry(str(event_id), str(span.attributes.get(EVENT_TYPE, "")), span.trace_id)
            destination = str(span.attributes.get("messaging.destination.name", ""))
            if span.kind == "PRODUCER":
                hop = "published" if span.status != "ERROR" else "publish-failed"
                # When it was sent: SNS may deliver it before the relay hears it was accepted.
                found["hops"].append(_hop(hop, span, span.start_ns, f"to SNS {destination}"))
            elif span.kind == "CONSUMER":
                receive = span.attributes.get(RECEIVE_COUNT, 1)
                found["hops"].append(
                    _hop("delivered", span, span.start_ns, f"to {destination} (receive {receive})")
                )
                outcome = str(span.attributes.get(OUTCOME, "unknown"))
                found["hops"].append(_hop(outcome, span, span.end_ns, f"by {span.service}"))
        ordered = []
        for found in events.values():
            found["hops"].sort(key=lambda hop: hop["unixNano"])
            found["first"] = found["hops"][0]["at"] if found["hops"] else None
            found["services"] = sorted(
                {hop["service"] for hop in found["hops"] if hop["hop"] == HANDLED}
            )
            ordered.append(found)
        ordered.sort(key=lambda found: found["hops"][0]["unixNano"] if found["hops"] else 0)
        return list(reversed(ordered))[:limit]


def _hop(hop: str, span: StoredSpan, at: int, detail: str) -> dict[str, Any]:
    return {
        "hop": hop,
        "service": span.service,
        "at": _iso(at),
        "unixNano": at,
        "detail": detail,
        "spanId": span.span_id,
        "queue": span.attributes.get("messaging.destination.name")
        if span.kind == "CONSUMER"
        else None,
    }


def _stored(span: ReadableSpan) -> StoredSpan:
    context = span.context
    assert context is not None
    parent = span.parent
    resource = span.resource.attributes if span.resource is not None else {}
    start = span.start_time or time.time_ns()
    return StoredSpan(
        trace_id=format(context.trace_id, "032x"),
        span_id=format(context.span_id, "016x"),
        parent_id=format(parent.span_id, "016x") if parent is not None else None,
        service=str(resource.get("service.name", "")),
        name=span.name,
        kind=span.kind.name,
        start_ns=start,
        end_ns=span.end_time or start,
        status=span.status.status_code.name,
        attributes=dict(span.attributes or {}),
        events=tuple(
            (event.name, event.timestamp, dict(event.attributes or {})) for event in span.events
        ),
    )
