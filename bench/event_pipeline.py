"""The event pipeline under AWS-like latency: the outbox relay and the SQS consumer, each as a
ratio to a bare boto3 loop with the same latency and concurrency, and the latency from a
registration to its profile.

Not a test: run it with `python -m bench.event_pipeline [--latency MS] [--concurrency C]
[--events N] [--rounds R] [--registrations K] [--database URL] [--only relay|consumer|e2e]`.

A moto server runs in a child process behind the harness's `FaultyProxy` with `latency`, which
holds every request `--latency` ms (20 by default) before moto sees it, as a network to AWS
would. Everything timed goes through the proxy; filling queues and provisioning go to moto
directly, untimed. Each part alternates the bare loop and Accord's code, round by round (the
order swapped every round), in one run, so that a busy machine slows both alike; the report
gives events/s for each and the ratio (goal ≥ 0.8):

- *relay*: N events written to an outbox (a SQLite file, or `--database postgresql://…`),
  untimed, then one `OutboxRelay.publish_pending()` pass with `publish_concurrency` C that
  publishes them all; against C threads calling `PublishBatch` with ten of the same messages
  each, until N are out. The topic has no subscription (`new_topic` says why);
- *consumer*: N events in a queue, drained by `SqsEventConsumer` with C receives under way
  (`max_in_flight` 10·C) from `start()` until `stop()` returns with every message handled and
  deleted; against C threads each receiving ten and deleting them with one
  `DeleteMessageBatch`, until N are gone;
- *e2e*: the auth and user services in this process (`create_app`, over ASGI, SQLite), the
  bus provisioned from the AsyncAPI bindings, the relay and the user service's consumer (its
  defaults: one long poll) on the latent bus: the time from a registration's answer to the
  profile being readable, K registrations one at a time, as percentiles; the same with the
  relay publishing one `Publish` at a time, as it did before it batched. One registration
  writes two events, so batching barely changes this latency: it is throughput that it buys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import events
from services.kit.aws import BusLocation
from services.kit.bus import Delivery
from services.kit.consumer import ConsumerOptions
from services.kit.database import create_engine, sessionmaker
from services.kit.events import Event, Message, encode
from services.kit.outbox import OutboxEventPublisher, OutboxRelay, RelayOptions, outbox_table
from services.kit.sns import SnsEventPublisher
from services.kit.sqs import SqsEventConsumer, sqs_attributes

# --- AWS at a distance: moto behind a latency proxy, in a child process ---------------------


def _receive_without_backlog_cost() -> None:
    """moto's ReceiveMessage checks each message's retention by computing all its queue's
    attributes, backlog counts included: a receive costs time in proportion to the backlog
    (~190 ms for ten from a queue of 200), which measures moto, not a consumer. The check here
    reads the retention period alone, as it means to; AWS's receive does not slow with depth."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    def retained(self: SQSBackend, queue_name: str, message: Any) -> bool:
        period = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
        return bool(period + (message.sent_timestamp or 0) / 1000 > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign]


async def _serve(latency: float) -> None:
    from moto.server import ThreadedMotoServer

    from harness.stack.faults import FaultyProxy

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    _receive_without_backlog_cost()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        async with FaultyProxy(host, port, latency=latency) as proxy:
            print(json.dumps({"direct": f"http://{host}:{port}", "latent": proxy.endpoint}))
            sys.stdout.flush()
            # Serve until the parent closes our standard input.
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        server.stop()


@dataclasses.dataclass
class Aws:
    """Clients on moto: `direct` for set-up, `latent` (through the proxy) for what is timed."""

    direct: BusLocation
    latent: BusLocation


@contextlib.contextmanager
def aws_at_a_distance(latency: float) -> Iterator[Aws]:
    child = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "bench.event_pipeline", "--serve", str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        endpoints = json.loads(child.stdout.readline())
        yield Aws(
            BusLocation("endpoint", endpoints["direct"]),
            BusLocation("endpoint", endpoints["latent"]),
        )
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


def encoded(count: int) -> list[Message]:
    return [encode(events.user_created()) for _ in range(count)]


def in_threads(threads: int, work: Any) -> float:
    """Run `work` in `threads` threads at once; the seconds until the last one ends."""
    started = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


@dataclasses.dataclass
class Tally:
    name: str
    events: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def report(title: str, bare: Tally, ours: Tally) -> None:
    print(f"\n{title}")
    width = max(len(bare.name), len(ours.name))
    for tally in (bare, ours):
        print(f"  {tally.name:<{width}} : {tally.rate:8.0f} events/s ({tally.events} events)")
    print(f"  {'ratio':<{width}} : {ours.rate / bare.rate:8.2f}  (goal >= 0.80)")


# --- the relay ---------------------------------------------------------------------------


def new_topic(aws: Aws) -> str:
    """A topic with no subscription: on AWS, delivery to the subscribed queues happens after
    `Publish` has answered, while moto delivers within the call, at a cost that grows with each
    queue's backlog; the fan-out is tested (tests/integration/test_relay_batches.py), not timed."""
    return aws.direct.sns().create_topic(Name=f"bench-{uuid.uuid4().hex[:8]}")["TopicArn"]


def bare_publish(sns: Any, arn: str, messages: Sequence[Message], threads: int) -> float:
    """The baseline: `threads` threads, each publishing ten at a time with `PublishBatch`."""
    chunks = iter([messages[i : i + 10] for i in range(0, len(messages), 10)])
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                chunk = next(chunks, None)
            if chunk is None:
                return
            answer = sns.publish_batch(
                TopicArn=arn,
                PublishBatchRequestEntries=[
                    {
                        "Id": str(index),
                        "Message": message.body,
                        "MessageAttributes": {
                            name: {"DataType": "String", "StringValue": value}
                            for name, value in message.attributes.items()
                        },
                    }
                    for index, message in enumerate(chunk)
                ],
            )
            assert not answer.get("Failed"), answer["Failed"]

    return in_threads(threads, work)


async def relay_pass(
    relay: OutboxRelay, writer_sessions: Any, table: Any, messages: Sequence[Message]
) -> float:
    async with writer_sessions() as session, session.begin():
        outbox = OutboxEventPublisher(session, table)
        for message in messages:
            await outbox.publish_message(message)
    started = time.perf_counter()
    published = await relay.publish_pending()
    seconds = time.perf_counter() - started
    assert published == len(messages), f"published {published} of {len(messages)}"
    return seconds


async def bench_relay(aws: Aws, args: argparse.Namespace, database_url: str) -> None:
    from sqlalchemy import MetaData

    latent_sns = aws.latent.sns()
    engine = create_engine(database_url)
    metadata = MetaData()
    table = outbox_table(metadata, f"bench_outbox_{uuid.uuid4().hex[:8]}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    sessions = sessionmaker(engine)
    bare, ours = Tally("bare boto3 PublishBatch loop"), Tally("accord OutboxRelay")
    try:
        arn = new_topic(aws)
        relay = OutboxRelay(
            sessions,
            table,
            SnsEventPublisher(latent_sns, arn),
            RelayOptions(publish_concurrency=args.concurrency),
        )
        for round_ in range(1, args.rounds + 1):
            for side in (bare, ours) if round_ % 2 else (ours, bare):
                if side is bare:
                    side.seconds += await asyncio.to_thread(
                        bare_publish, latent_sns, arn, encoded(args.events), args.concurrency
                    )
                else:
                    side.seconds += await relay_pass(relay, sessions, table, encoded(args.events))
                side.events += args.events
            print(f"  relay round {round_}/{args.rounds}: {bare.rate:.0f} vs {ours.rate:.0f}/s")
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.drop_all)
        await engine.dispose()
    report(
        f"relay: {args.events} events a round, {args.rounds} rounds, "
        f"{args.latency_ms:g} ms per call, concurrency {args.concurrency}",
        bare,
        ours,
    )


# --- the consumer ------------------------------------------------------------------------


def fill(sqs: Any, url: str, count: int) -> None:
    messages = encoded(count)
    for start in range(0, count, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {
                    "Id": str(index),
                    "MessageBody": message.body,
                    "MessageAttributes": sqs_attributes(dict(message.attributes)),
                }
                for index, message in enumerate(messages[start : start + 10])
            ],
        )


def bare_drain(sqs: Any, url: str, count: int, threads: int) -> float:
    """The baseline: `threads` threads, each receiving ten and deleting them in one batch. They
    poll short (a long poll at the end of the backlog would wait out its time)."""
    done = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal done
        while True:
            with lock:
                if done >= count:
                    return
            messages = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if messages:
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )
                with lock:
                    done += len(messages)

    return in_threads(threads, work)


async def accord_drain(sqs: Any, queue: str, count: int, options: ConsumerOptions) -> float:
    handled = 0
    finished = asyncio.Event()

    async def handle(event: Event, delivery: Delivery) -> None:
        nonlocal handled
        handled += 1
        if handled >= count:
            finished.set()

    consumer = SqsEventConsumer(sqs, queue, options)
    consumer.subscribe("user.created", handle)
    await consumer.queue.max_receives()  # the queue's look-ups, made once in a consumer's life
    started = time.perf_counter()
    await consumer.start()
    await finished.wait()
    await consumer.stop()
    return time.perf_counter() - started


async def bench_consumer(aws: Aws, args: argparse.Namespace) -> None:
    direct, latent = aws.direct.sqs(), aws.latent.sqs()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    url = direct.create_queue(QueueName=queue)["QueueUrl"]
    bare, ours = Tally("bare boto3 receive/delete loop"), Tally("accord SqsEventConsumer")
    options = ConsumerOptions(
        max_in_flight=10 * args.concurrency, wait_seconds=1, receives=args.concurrency
    )
    for round_ in range(1, args.rounds + 1):
        for side in (bare, ours) if round_ % 2 else (ours, bare):
            fill(direct, url, args.events)
            if side is bare:
                side.seconds += await asyncio.to_thread(
                    bare_drain, latent, url, args.events, args.concurrency
                )
            else:
                side.seconds += await accord_drain(latent, queue, args.events, options)
                # The polls that stop left pending end within their 1 s wait: none of them
                # takes (and gives back) the next round's messages.
                await asyncio.sleep(1.2)
            side.events += args.events
        print(f"  consumer round {round_}/{args.rounds}: {bare.rate:.0f} vs {ours.rate:.0f}/s")
    report(
        f"consumer: {args.events} events a round, {args.rounds} rounds, "
        f"{args.latency_ms:g} ms per call, concurrency {args.concurrency}",
        bare,
        ours,
    )


# --- registration to profile -------------------------------------------------------------

SERVICE_KEY = "a-bench-service-key-long-enough-to-pass"
PASSWORD = "correct-horse-battery-staple"  # noqa: S105 (benchmark accounts)


class OneAtATime:
    """The auth service's publisher without `publish_batch`: the relay then publishes one
    message per `Publish` call, as it did before it batched (the e2e part's comparison)."""

    def __init__(self, inner: SnsEventPublisher) -> None:
        self.inner = inner

    async def publish(self, event: Event) -> None:
        await self.inner.publish(event)

    async def publish_message(self, message: Message) -> None:
        await self.inner.publish_message(message)


async def registration_to_profile(
    aws: Aws, folder: Path, count: int, *, batching: bool
) -> list[float]:
    """Seconds from each registration's answer to its profile being readable, `count`
    registrations one after the other, through the auth and user services in this process."""
    from dataclasses import replace

    import httpx

    from harness.bus.provision import Provisioner, topology_from_contracts
    from harness.project import Project
    from services.auth.app import build_adapters as build_auth_adapters
    from services.auth.app import create_app as create_auth_app
    from services.auth.settings import Settings as AuthSettings
    from services.kit.auth_client import AuthClient
    from services.kit.tokens import JwksKeySource, TokenVerifier
    from services.user.app import Adapters as UserAdapters
    from services.user.app import create_app as create_user_app
    from services.user.roles import AuthServiceRoles
    from services.user.settings import Settings as UserSettings
    from services.user.storage import SqlUserStore

    prefix = f"e2e{uuid.uuid4().hex[:6]}-"
    topology = topology_from_contracts(Project.find()).with_prefix(prefix)
    Provisioner(aws.direct.sns(), aws.direct.sqs()).apply(topology)
    [topic] = [t.name for t in topology.topics]
    queue = f"{prefix}accord-user-service"
    tag = "batched" if batching else "single"
    auth_settings = AuthSettings(
        environment="local",
        database_url=f"sqlite:///{folder / f'auth-{tag}.db'}",
        signing_key_path=folder / "signing-key.pem",
        service_api_key=SERVICE_KEY,
        argon2_time_cost=1,
        argon2_memory_cost_kib=1024,
        argon2_parallelism=1,
        registrations_per_address=10 * count,
        access_log=False,
        # One call at a time when not batching, as the relay published before it batched.
        outbox_publish_concurrency=4 if batching else 1,
    )
    sns = SnsEventPublisher(aws.latent.sns(), topic)
    auth_app = create_auth_app(
        auth_settings,
        adapters=replace(
            build_auth_adapters(auth_settings), publisher=sns if batching else OneAtATime(sns)
        ),
    )
    latencies: list[float] = []
    async with contextlib.AsyncExitStack() as running:
        await running.enter_async_context(auth_app.router.lifespan_context(auth_app))
        auth = await running.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=auth_app), base_url="http://auth")
        )
        keys = JwksKeySource(AuthClient.over(auth).jwks)
        user_database = f"sqlite:///{folder / f'user-{tag}.db'}"
        user_app = create_user_app(
            UserSettings(environment="local", database_url=user_database, queue=queue),
            adapters=UserAdapters(
                store=SqlUserStore(user_database),
                verifier=TokenVerifier(keys, issuer=auth_settings.issuer, audience="accord"),
                roles=AuthServiceRoles(AuthClient.over(auth, service_api_key=SERVICE_KEY)),
                consumer=SqsEventConsumer(
                    aws.latent.sqs(), queue, ConsumerOptions(max_in_flight=10, wait_seconds=20)
                ),
            ),
        )
        await running.enter_async_context(user_app.router.lifespan_context(user_app))
        user = await running.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=user_app), base_url="http://user")
        )
        for index in range(count):
            answer = await auth.post(
                "/api/v1/auth/register",
                json={"email": f"bench-{tag}-{index}@example.com", "password": PASSWORD},
            )
            answered = time.perf_counter()
            assert answer.status_code == 201, answer.text
            account = answer.json()
            headers = {"Authorization": f"Bearer {account['accessToken']}"}
            while True:
                profile = await user.get(f"/api/v1/users/{account['userId']}", headers=headers)
                if profile.status_code == 200:
                    break
                if time.perf_counter() - answered > 30:
                    raise RuntimeError(f"no profile after 30 s: {profile.text}")
                await asyncio.sleep(0.002)
            latencies.append(time.perf_counter() - answered)
            await asyncio.sleep(0.05)  # one registration at a time: latency, not throughput
    return latencies


async def bench_e2e(aws: Aws, args: argparse.Namespace, folder: Path) -> None:
    results: dict[str, list[float]] = {"batched": [], "single": []}
    for round_ in range(1, args.rounds + 1):
        for batching in (True, False) if round_ % 2 else (False, True):
            tag = "batched" if batching else "single"
            results[tag] += await registration_to_profile(
                aws, folder / f"{round_}-{tag}", args.registrations, batching=batching
            )
        print(f"  e2e round {round_}/{args.rounds}")
    print(
        f"\nregistration answered -> profile readable, {args.latency_ms:g} ms per SNS/SQS call, "
        f"{len(results['batched'])} registrations each (one at a time)"
    )
    for tag, label in (
        ("batched", "relay with PublishBatch"),
        ("single", "relay one Publish at a time"),
    ):
        ms = sorted(1000 * seconds for seconds in results[tag])
        p50, p90 = ms[len(ms) // 2], ms[int(len(ms) * 0.9)]
        print(f"  {label:<28}: p50 {p50:6.1f} ms   p90 {p90:6.1f} ms   max {ms[-1]:6.1f} ms")


# --- main --------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    with aws_at_a_distance(args.latency_ms / 1000) as aws, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        database_url = args.database or f"sqlite:///{folder / 'outbox.db'}"
        if args.only in (None, "relay"):
            await bench_relay(aws, args, database_url)
        if args.only in (None, "consumer"):
            await bench_consumer(aws, args)
        if args.only in (None, "e2e"):
            await bench_e2e(aws, args, folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", dest="latency_ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default=None)
    parser.add_argument("--registrations", type=int, default=12, help="per e2e round and side")
    parser.add_argument("--only", choices=["relay", "consumer", "e2e"], default=None)
    parser.add_argument("--serve", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(_serve(args.serve))
        return
    logging.getLogger("accord").setLevel(logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
