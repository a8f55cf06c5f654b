"""Consumer throughput through a moto server, as a ratio to a bare boto3 receive → delete loop,
with the kit's metrics on and off.

Not a test: run it with `python -m bench.consumer_throughput [--events N] [--chunk C]
[--in-memory M]`. Three loops drain the same valid events from a queue on the same moto server,
in the same run, alternating chunk by chunk: the bare loop, the Accord consumer with its
metrics off, and with them on (`Metrics.observe_consumer`: counters, the handling time and the
lag of every message). The report gives events/s for each, the ratio to the bare loop (goal
≥ 0.8) and metrics on to off (goal ≥ 0.9). Then, since moto's own time dominates there, the
same on/off comparison on the in-memory bus, where the consumer's cost is all there is (M
events a round, five rounds alternating, timed by this process's CPU time so that the other
processes of a shared machine do not count).

Why chunks: moto's ReceiveMessage costs time in proportion to the queue's backlog (it
deep-copies each message it returns together with its queue), so a 2,000-message backlog
measures moto, not the consumer. Each chunk is filled untimed, then drained timed: the bare
loop until it has deleted the chunk; the Accord consumer from `start()` until `stop()` returns
after handling the chunk (so its start-up look-ups and final deletes are counted against it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from typing import Any

from moto.server import ThreadedMotoServer

from bench import events
from services.kit.aws import BusLocation
from services.kit.bus import Delivery
from services.kit.consumer import ConsumerOptions
from services.kit.events import Event, encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
from services.kit.metrics import Metrics
from services.kit.sqs import SqsEventConsumer, sqs_attributes
from services.kit.topology import QueueSpec


def fill(sqs: Any, url: str, count: int) -> None:
    for start in range(0, count, 10):
        entries = []
        for index in range(start, min(count, start + 10)):
            message = encode(events.user_created())
            entries.append(
                {
                    "Id": str(index),
                    "MessageBody": message.body,
                    "MessageAttributes": sqs_attributes(dict(message.attributes)),
                }
            )
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def bare_loop(sqs: Any, url: str, count: int) -> None:
    """The baseline: receive ten, delete them in one batch, until `count` are gone."""
    done = 0
    while done < count:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if messages:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            done += len(messages)


async def accord_consumer(
    sqs: Any, queue: str, count: int, metrics: Metrics | None = None
) -> float:
    """The same drain through `SqsEventConsumer`: decode, validate, dispatch, delete (and with
    `metrics`, count and time every message)."""
    consumer = SqsEventConsumer(sqs, queue, ConsumerOptions(max_in_flight=40, wait_seconds=0))
    return await drain(consumer, count, metrics)


async def drain(consumer: Any, count: int, metrics: Metrics | None) -> float:
    """The time `consumer` takes from `start()` to `stop()` after handling `count` events."""
    handled = 0
    finished = asyncio.Event()

    async def handle(event: Event, delivery: Delivery) -> None:
        nonlocal handled
        handled += 1
        if handled >= count:
            finished.set()

    if metrics is not None:
        metrics.observe_consumer(consumer)
    consumer.subscribe("user.created", handle)
    started = time.perf_counter()
    await consumer.start()
    await finished.wait()
    await consumer.stop()
    return time.perf_counter() - started


async def in_memory(count: int, metrics: Metrics | None) -> float:
    """Events/s of the consumer draining `count` events already waiting on the in-memory bus,
    by the CPU time of this process (the consumer's own cost, whatever else the machine runs)."""
    broker = InMemoryBroker()
    broker.create_queue(QueueSpec("bench"))
    for _ in range(count):
        broker.send("bench", encode(events.user_created()))
    options = ConsumerOptions(max_in_flight=40, wait_seconds=0.01)
    started = time.process_time()
    await drain(InMemoryEventConsumer(broker, "bench", options), count, metrics)
    return count / (time.process_time() - started)


def bare_drain(sqs: Any, url: str, count: int) -> float:
    started = time.perf_counter()
    bare_loop(sqs, url, count)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--in-memory", type=int, default=5000)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("accord").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    sqs = BusLocation("endpoint", f"http://{host}:{port}").sqs()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    bare_seconds = ours_seconds = observed_seconds = 0.0
    metrics = Metrics()  # one registry across the run, as one process keeps it
    chunks = max(1, args.events // args.chunk)
    try:
        for chunk in range(1, chunks + 1):
            fill(sqs, url, args.chunk)
            bare_seconds += bare_drain(sqs, url, args.chunk)
            fill(sqs, url, args.chunk)
            ours_seconds += asyncio.run(accord_consumer(sqs, queue, args.chunk))
            fill(sqs, url, args.chunk)
            observed_seconds += asyncio.run(accord_consumer(sqs, queue, args.chunk, metrics))
            if chunk % 5 == 0 or chunk == chunks:
                print(f"  {chunk * args.chunk:>6} / {chunks * args.chunk} events through each")
    finally:
        server.stop()
    total = chunks * args.chunk
    bare_rate, our_rate = total / bare_seconds, total / ours_seconds
    observed_rate = total / observed_seconds
    print(f"\n{total} events through moto server, in chunks of {args.chunk}")
    print(f"  bare boto3 receive -> delete loop : {bare_rate:8.0f} events/s")
    print(f"  accord SqsEventConsumer           : {our_rate:8.0f} events/s")
    print(f"  ratio                             : {our_rate / bare_rate:8.2f}  (goal >= 0.80)")
    print(f"  ... with metrics on               : {observed_rate:8.0f} events/s")
    print(f"  ratio to the bare loop            : {observed_rate / bare_rate:8.2f}")
    print(f"  metrics on / off                  : {observed_rate / our_rate:8.2f}  (goal >= 0.90)")
    off_rates, on_rates = [], []
    for _ in range(5):
        off_rates.append(asyncio.run(in_memory(args.in_memory, None)))
        on_rates.append(asyncio.run(in_memory(args.in_memory, Metrics())))
    off, on = sum(off_rates) / len(off_rates), sum(on_rates) / len(on_rates)
    print(
        f"\n{args.in_memory} events on the in-memory bus, five rounds each, alternating (CPU time)"
    )
    print(f"  metrics off                       : {off:8.0f} events/s")
    print(f"  metrics on                        : {on:8.0f} events/s")
    print(f"  metrics on / off                  : {on / off:8.2f}  (goal >= 0.90)")


if __name__ == "__main__":
    main()
