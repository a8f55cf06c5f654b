"""Consumer throughput through a moto server, as a ratio to a bare boto3 receive → delete loop.

Not a test: run it with `python -m bench.consumer_throughput [--events N] [--chunk C]`.
Both loops drain the same valid events from a queue on the same moto server, in the same run,
alternating chunk by chunk; the report gives events/s for each and the ratio (goal ≥ 0.8).

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
from services.kit.sqs import SqsEventConsumer, sqs_attributes


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


async def accord_consumer(sqs: Any, queue: str, count: int) -> float:
    """The same drain through `SqsEventConsumer`: decode, validate, dispatch, delete."""
    handled = 0
    finished = asyncio.Event()

    async def handle(event: Event, delivery: Delivery) -> None:
        nonlocal handled
        handled += 1
        if handled >= count:
            finished.set()

    consumer = SqsEventConsumer(sqs, queue, ConsumerOptions(max_in_flight=40, wait_seconds=0))
    consumer.subscribe("user.created", handle)
    started = time.perf_counter()
    await consumer.start()
    await finished.wait()
    await consumer.stop()
    return time.perf_counter() - started


def bare_drain(sqs: Any, url: str, count: int) -> float:
    started = time.perf_counter()
    bare_loop(sqs, url, count)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=100)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("accord").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    sqs = BusLocation("endpoint", f"http://{host}:{port}").sqs()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    bare_seconds = ours_seconds = 0.0
    chunks = max(1, args.events // args.chunk)
    try:
        for chunk in range(1, chunks + 1):
            fill(sqs, url, args.chunk)
            bare_seconds += bare_drain(sqs, url, args.chunk)
            fill(sqs, url, args.chunk)
            ours_seconds += asyncio.run(accord_consumer(sqs, queue, args.chunk))
            if chunk % 5 == 0 or chunk == chunks:
                print(f"  {chunk * args.chunk:>6} / {chunks * args.chunk} events through each")
    finally:
        server.stop()
    total = chunks * args.chunk
    bare_rate, our_rate = total / bare_seconds, total / ours_seconds
    print(f"\n{total} events through moto server, in chunks of {args.chunk}")
    print(f"  bare boto3 receive -> delete loop : {bare_rate:8.0f} events/s")
    print(f"  accord SqsEventConsumer           : {our_rate:8.0f} events/s")
    print(f"  ratio                             : {our_rate / bare_rate:8.2f}  (goal >= 0.80)")


if __name__ == "__main__":
    main()
