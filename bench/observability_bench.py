"""What tracing costs: `GET /api/v1/users/{userId}` and the consumer, tracing off and on, in the
same run.

Not a test: run it with `python -m bench.observability_bench [--seconds S] [--connections C]
[--rounds R] [--events N]`.

- HTTP: three uvicorn servers, one worker each, in their own processes: a bare FastAPI app
  answering the same JSON (`bench.user_bench`), the user service with tracing off, and the user
  service with tracing on (a server span per request, exported in batches from a background
  thread as OTLP is, to an exporter that drops them, so that no collector is measured). Loaded in
  turn, R rounds; the report gives requests/s and each service's ratio to the bare app.
- Consumer: the kit's `QueueConsumer` draining N valid events, off and on (a CONSUMER span per
  message, child of its `traceparent`), alternating, on the in-memory bus (where the consumer's
  own cost is all there is) and on a moto server (as `bench.consumer_throughput`).

Goal: tracing on within 10 % of tracing off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import uvicorn
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from bench import events, user_bench
from services.kit.bus import Delivery, EventConsumer
from services.kit.consumer import ConsumerOptions
from services.kit.events import Event, encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from services.kit.tokens import SigningKey, TokenIssuer
from services.kit.topology import QueueSpec, SubscriptionSpec
from services.kit.tracing import Tracing


class Dropped(SpanExporter):
    """Takes every span and keeps none (the collector is not what is measured)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def traced(tracing: Tracing) -> Tracing:
    tracing.export_to(Dropped(), batched=True)
    return tracing


# --- HTTP ---------------------------------------------------------------------------------


def serve(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    if kind == "bare":
        app = user_bench.bare_app(Path(argv[2]).read_bytes())
    else:
        app = user_bench.user_app(argv[2], Path(argv[3]))
        if kind == "traced":
            traced(app.state.tracing)  # the Tracing its server spans come from
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "bench.observability_bench", "--serve", *args],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"the {args[0]} server exited") from None
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the {args[0]} server did not start")


def http_bench(options: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="observability-bench-") as directory:
        workdir = Path(directory)
        database_url = f"sqlite:///{workdir / 'user.db'}"
        user_id = uuid.uuid4()
        asyncio.run(user_bench.seed(database_url, user_id))
        key = SigningKey.generate()
        key_file = workdir / "key.pem"
        key_file.write_bytes(key.to_pem())
        issuer = TokenIssuer(
            key, issuer=user_bench.ISSUER, audience=user_bench.AUDIENCE, ttl=timedelta(hours=1)
        )
        token = issuer.issue(str(user_id), ["user"]).token
        path = f"/api/v1/users/{user_id}"
        request = user_bench.request_for(path, token)

        ports = {kind: user_bench.free_port() for kind in ("off", "traced", "bare")}
        servers = [
            start([kind, str(ports[kind]), database_url, str(key_file)], ports[kind])
            for kind in ("off", "traced")
        ]
        try:
            body = asyncio.run(user_bench.fetch_body(ports["off"], request))
            body_file = workdir / "profile.json"
            body_file.write_bytes(body)
            servers.append(start(["bare", str(ports["bare"]), str(body_file)], ports["bare"]))
            bare_request = user_bench.request_for(path, None)
            bare_body = asyncio.run(user_bench.fetch_body(ports["bare"], bare_request))
            if json.loads(bare_body) != json.loads(body):
                raise RuntimeError("the servers do not answer the same JSON")
            requests = {"bare": (bare_request, bare_body), "off": (request, body)}
            requests["traced"] = requests["off"]
            for kind, (sent, expected) in requests.items():  # warm up
                asyncio.run(user_bench.load(ports[kind], sent, expected, 1, 4))
            rates: dict[str, list[float]] = {kind: [] for kind in requests}
            print(f"GET {path}  ({options.connections} connections, {options.seconds:g} s each)")
            for round_number in range(1, options.rounds + 1):
                for kind, (sent, expected) in requests.items():
                    rates[kind].append(
                        asyncio.run(
                            user_bench.load(
                                ports[kind], sent, expected, options.seconds, options.connections
                            )
                        )
                    )
                bare, off, on = (rates[kind][-1] for kind in ("bare", "off", "traced"))
                print(
                    f"round {round_number}: bare {bare:7.0f}  tracing off {off:7.0f} "
                    f"({off / bare:.2f})  tracing on {on:7.0f} ({on / bare:.2f}) req/s"
                )
            bare, off, on = (statistics.mean(rates[kind]) for kind in ("bare", "off", "traced"))
            print(
                f"mean:    bare {bare:7.0f}  tracing off {off:7.0f} ({off / bare:.2f})  "
                f"tracing on {on:7.0f} ({on / bare:.2f}) req/s; on/off {on / off:.3f} "
                "(goal ≥ 0.90)"
            )
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                try:
                    server.wait(15)
                except subprocess.TimeoutExpired:
                    server.kill()


# --- the consumer -------------------------------------------------------------------------


async def drain(consumer: EventConsumer, count: int) -> float:
    handled = 0
    finished = asyncio.Event()

    async def handle(event: Event, delivery: Delivery) -> None:
        nonlocal handled
        handled += 1
        if handled >= count:
            finished.set()

    consumer.subscribe("user.created", handle)
    started = time.perf_counter()
    await consumer.start()
    await finished.wait()
    await consumer.stop()
    return time.perf_counter() - started


async def in_memory(count: int, tracing: Tracing) -> float:
    broker = InMemoryBroker()
    broker.create_topic("events")
    broker.create_queue(QueueSpec("profiles"))
    broker.subscribe(SubscriptionSpec("events", "profiles"))
    producer = traced(Tracing("auth", environ={}))
    with producer.tracer.start_as_current_span("registerUser"):  # each carries a traceparent
        messages = [encode(events.user_created()) for _ in range(count)]
    await InMemoryEventPublisher(broker, "events").publish_batch(messages)
    options = ConsumerOptions(max_in_flight=40, wait_seconds=0)
    return await drain(InMemoryEventConsumer(broker, "profiles", options, tracing=tracing), count)


def on_moto(chunks: int, chunk: int) -> tuple[float, float]:
    from moto.server import ThreadedMotoServer

    from bench.consumer_throughput import fill
    from services.kit.aws import BusLocation
    from services.kit.sqs import SqsEventConsumer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    sqs = BusLocation("endpoint", f"http://{host}:{port}").sqs()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    producer = traced(Tracing("auth", environ={}))
    seconds = {"off": 0.0, "on": 0.0}
    options = ConsumerOptions(max_in_flight=40, wait_seconds=0)
    try:
        for _ in range(chunks):
            for kind in ("off", "on"):
                with producer.tracer.start_as_current_span("registerUser"):
                    fill(sqs, url, chunk)
                tracing = traced(Tracing("user", environ={})) if kind == "on" else Tracing.off()
                consumer = SqsEventConsumer(sqs, queue, options, tracing=tracing)
                seconds[kind] += asyncio.run(drain(consumer, chunk))
    finally:
        server.stop()
    total = chunks * chunk
    return total / seconds["off"], total / seconds["on"]


def consumer_bench(options: argparse.Namespace) -> None:
    rates: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(options.rounds):
        for kind in ("off", "on"):
            tracing = traced(Tracing("user", environ={})) if kind == "on" else Tracing.off()
            rates[kind].append(options.events / asyncio.run(in_memory(options.events, tracing)))
    off, on = statistics.mean(rates["off"]), statistics.mean(rates["on"])
    # A handler that does nothing, on a bus that costs nothing: the span's own cost, in full.
    print(
        f"consumer, in memory, no-op handler ({options.events} events x {options.rounds}): "
        f"tracing off {off:7.0f}  on {on:7.0f} events/s; on/off {on / off:.3f}; "
        f"{(1 / on - 1 / off) * 1e6:.0f} µs a message"
    )
    off, on = on_moto(max(1, options.events // 100), 100)
    print(
        f"consumer, moto server ({max(1, options.events // 100) * 100} events): tracing off "
        f"{off:7.0f}  on {on:7.0f} events/s; on/off {on / off:.3f} (goal ≥ 0.90)"
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--only", choices=("http", "consumer"), default=None)
    options = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("accord").setLevel(logging.WARNING)
    if options.only != "consumer":
        http_bench(options)
    if options.only != "http":
        consumer_bench(options)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2:])
    else:
        main(sys.argv[1:])
