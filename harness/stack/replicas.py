"""Several replicas of each service on one machine, as a deployment runs them, and a load of
registrations over them: the multi-replica proof (`tests/e2e/test_replicas.py`) and its
benchmark (`bench/replicas.py`) are one `run_replicas`.

What runs: a moto server in a process of its own (SNS/SQS over HTTP), provisioned from the
AsyncAPI bindings; PostgreSQL databases the caller made, migrated as `accord migrate` does; an
SMTP sink; and `ReplicaPlan.auths` auth processes (each with its outbox relay) and
`ReplicaPlan.consumers` user and notification processes, each a `ServiceProcess` configured from
the stack's environment. The load registers users and asks for their verification emails,
spreading requests over the auth replicas and moving to another replica when one does not
answer. With `ReplicaPlan.kill`, one replica of each service is killed (SIGKILL) half way and
restarted a little later.

What is observed, from outside the services: every message the topic delivers, through a
queue of its own subscribed to it (`EventTally`: the publishes of each event id, with the time
SNS accepted each), the mailbox, and the databases and queues once the run has settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx

from harness.bus.provision import Provisioner, topology_from_contracts
from harness.project import Project
from harness.stack.faults import ServiceProcess
from harness.stack.smtp import ReceivedMail
from harness.stack.up import INFRASTRUCTURE_PORTS, Stack, StackConfig
from services.kit.aws import BusLocation
from services.kit.bus import MessageQueue, ReceivedMessage
from services.kit.sqs import SqsQueue
from services.kit.topology import QueueSpec, SubscriptionSpec, TopicSpec, Topology

PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - the load's users' password
SERVICES = ("auth", "user", "notification")
CONSUMERS = ("user", "notification")
VERIFICATION = "user.email.verification.requested"


@dataclass(frozen=True)
class ReplicaPlan:
    """What `run_replicas` runs: how many registrations, replicas and faults."""

    registrations: int = 500
    auths: int = 2
    consumers: int = 2  # processes of the user service, and of the notification service
    kill: bool = True  # one replica of each service killed half way, restarted later
    # Start the consumers only once every event is on the queues, and time them alone.
    backlog: bool = False
    in_flight: int = 16  # registrations under way at once
    # Short enough that what a killed process held comes back within seconds: the relay's
    # claim on its rows, and the visibility of the messages in a consumer's hands.
    lease_seconds: float = 15.0
    visibility_seconds: int = 5
    # The most the effects may take once the load has ended: a bound on waiting, not a claim
    # about speed (a CI worker beside the heaviest other tests has needed more than 120 s).
    settle_seconds: float = 360.0


@dataclass(frozen=True)
class Copy:
    """One publish of an event, as SNS told the tally's queue: when SNS accepted it (its own
    `Timestamp`, not when the tally got round to reading it), the SNS message id (one per
    publish), and which receive of the SQS message this was (above 1: the tally's queue gave
    it again, not a second publish)."""

    published_at: float
    sns_id: str
    receive: int


@dataclass
class EventTally:
    """Every message published to the topic, drained from a queue of its own subscribed to it
    without raw delivery, so that each message keeps SNS's envelope: event id → its copies,
    its type, and the token of each verification event."""

    copies: dict[str, list[Copy]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # verification token → event id

    def record(self, received: ReceivedMessage) -> None:
        envelope = json.loads(received.message.body)
        body = json.loads(envelope["Message"])
        event_id = str(body["eventId"])
        published_at = datetime.fromisoformat(envelope["Timestamp"].replace("Z", "+00:00"))
        copy = Copy(published_at.timestamp(), str(envelope["MessageId"]), received.receive_count)
        self.copies.setdefault(event_id, []).append(copy)
        self.types[event_id] = str(body["eventType"])
        if body["eventType"] == VERIFICATION:
            self.tokens[str(body["verificationToken"])] = event_id

    async def drain(self, queue: MessageQueue, stop: asyncio.Event) -> None:
        """Receive, record and delete until `stop` is set and the queue is empty."""
        while True:
            batch = await queue.receive(10, 0 if stop.is_set() else 1)
            for received in batch:
                self.record(received)
            if batch:
                await queue.delete([received.receipt for received in batch])
            elif stop.is_set():
                return

    def of_type(self, event_type: str) -> list[str]:
        return [event for event, kind in self.types.items() if kind == event_type]

    def published(self, event_id: str) -> list[float]:
        """When SNS accepted each publish of the event, in order."""
        first: dict[str, float] = {}
        for copy in self.copies[event_id]:
            first.setdefault(copy.sns_id, copy.published_at)
        return sorted(first.values())

    def republished(self) -> dict[str, list[float]]:
        """The events published more than once, with when each publish was accepted."""
        return {event: times for event in self.copies if len(times := self.published(event)) > 1}


@dataclass
class ReplicaRun:
    """What a run did and what was observed once it had settled."""

    plan: ReplicaPlan
    emails: list[str]  # one per user registered
    registering_seconds: float  # from the first request to the last answer
    seconds: float  # from the first request to the last effect (profiles and emails)
    # With `backlog`: from the consumers being ready to the last effect.
    consuming_seconds: float | None
    tally: EventTally
    mails: list[ReceivedMail]
    profiles: set[str]
    accounts: set[str]
    dead_letters: dict[str, int]  # dead-letter queue → messages in it
    started_at: float  # when the first request went (time.time(), as the times below)
    killed_at: float | None  # when the replicas were killed
    exit_statuses: dict[str, list[int]]  # what each replica exited with when stopped
    retried: int  # requests moved to another replica because one did not answer

    @property
    def throughput(self) -> float:
        """Registrations per second, end to end (each one a profile and an email)."""
        return len(self.emails) / self.seconds

    def mail_tokens(self) -> list[str]:
        """The verification token of every email the sink received."""
        tokens = []
        for mail in self.mails:
            for link in mail.links:
                token = parse_qs(urlsplit(link).query).get("token")
                if "/verify-email" in link and token:
                    tokens.append(token[0])
                    break
        return tokens

    def report(self) -> str:
        plan = self.plan
        return (
            f"{len(self.emails)} registrations over {plan.auths} auth replicas, "
            f"{plan.consumers} user and {plan.consumers} notification consumer(s)"
            f"{', one of each killed and restarted' if plan.kill else ''}: "
            f"{self.seconds:.1f} s to the last profile and email "
            f"({self.throughput:.1f} registrations/s end to end; the HTTP calls took "
            f"{self.registering_seconds:.1f} s); {len(self.tally.republished())} events "
            f"published twice, {len(self.mails) - len(set(self.mail_tokens()))} emails sent "
            f"twice, {self.retried} requests retried on another auth replica"
            + (
                ""
                if self.consuming_seconds is None
                else f"; consumers started on the full queues drained them in "
                f"{self.consuming_seconds:.1f} s ({self.consumer_throughput:.1f} "
                "registrations/s: a profile and an email each)"
            )
        )

    @property
    def consumer_throughput(self) -> float:
        """With `backlog`: registrations whose profile and email the consumers made per
        second, from the consumers being ready."""
        return len(self.emails) / (self.consuming_seconds or float("nan"))


# --- the parts --------------------------------------------------------------------------------


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextlib.asynccontextmanager
async def moto_process(host: str = "127.0.0.1") -> AsyncIterator[str]:
    """A moto server in a process of its own (several service processes load it: in this
    process it would share one interpreter lock with the load); its endpoint."""
    (port,) = free_ports(1, host)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from moto.server import main; main(sys.argv[1:])",
        "-H",
        host,
        "-p",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    endpoint = f"http://{host}:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    await http.get(f"{endpoint}/moto-api/")
                    break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"the moto server did not answer on {endpoint}")
        yield endpoint
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


class Fleet:
    """Replicas of the services, each a `ServiceProcess` configured from one environment.
    Replica 0 of each service listens on the stack's port for it, which the others' settings
    name (the JWKS URL, the auth service URL)."""

    def __init__(
        self, env: Mapping[str, str], ports: Mapping[str, Sequence[int]], logs: Path
    ) -> None:
        self.env = dict(env)
        self.logs = logs  # each process's output is kept there: `<service>-<index>-<pid>.log`
        self.ports = {name: list(numbers) for name, numbers in ports.items()}
        self.replicas = {
            name: [ServiceProcess(name, self.env, port) for port in numbers]
            for name, numbers in self.ports.items()
        }
        self.exit_statuses: dict[str, list[int]] = {name: [] for name in self.ports}

    def urls(self, name: str) -> list[str]:
        """The replicas of `name` that are running."""
        return [replica.url for replica in self.replicas[name] if replica.running]

    async def start(self, names: Sequence[str] | None = None) -> None:
        """The replicas of `names` (default: every service): the auth replicas first (the
        others fetch its keys), then the rest, at once."""
        names = list(self.replicas) if names is None else names
        if "auth" in names:
            await asyncio.gather(*(replica.start() for replica in self.replicas["auth"]))
        await asyncio.gather(
            *(
                replica.start()
                for name in names
                if name != "auth"
                for replica in self.replicas[name]
            )
        )

    async def kill(self, name: str, index: int) -> None:
        await self.replicas[name][index].kill()
        self._keep_output(name, index)

    async def restart(self, name: str, index: int) -> None:
        """A killed replica started again, on its port."""
        replica = ServiceProcess(name, self.env, self.ports[name][index])
        self.replicas[name][index] = replica
        await replica.start()

    async def stop(self) -> None:
        """SIGTERM to every replica at once (SIGKILL after 15 s); their statuses are kept."""

        async def stop(name: str, index: int, replica: ServiceProcess) -> None:
            if replica.running:
                self.exit_statuses[name].append(await replica.stop())
            self._keep_output(name, index)
            await replica.__aexit__(None, None, None)  # closes its output file

        await asyncio.gather(
            *(
                stop(name, index, replica)
                for name, group in self.replicas.items()
                for index, replica in enumerate(group)
            )
        )

    def _keep_output(self, name: str, index: int) -> None:
        replica = self.replicas[name][index]
        self.logs.mkdir(parents=True, exist_ok=True)
        path = self.logs / f"{name}-{index}-{replica.pid}.log"
        path.write_text(replica.output(last=10_000_000))


class Load:
    """Registers users and asks for their verification emails over the live auth replicas: a
    request that gets no answer (the replica died) goes to the next one. A registration that
    the dead replica committed before dying is answered 409 there, and its user logs in."""

    def __init__(self, fleet: Fleet, http: httpx.AsyncClient) -> None:
        self.fleet = fleet
        self.http = http
        self.retried = 0
        self.done = 0

    async def call(self, turn: int, path: str, **request: Any) -> httpx.Response:
        for attempt in range(200):
            urls = self.fleet.urls("auth")
            if urls:
                url = urls[(turn + attempt) % len(urls)]
                try:
                    return await self.http.post(f"{url}{path}", **request)
                except httpx.TransportError:
                    pass
            self.retried += 1
            await asyncio.sleep(0.05)
        raise RuntimeError(f"no auth replica answered POST {path}")

    async def user(self, turn: int, email: str) -> None:
        credentials = {"email": email, "password": PASSWORD}
        answer = await self.call(turn, "/api/v1/auth/register", json=credentials)
        if answer.status_code == 409:  # committed by a replica that died before answering
            answer = await self.call(turn, "/api/v1/auth/login", json=credentials)
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"registering {email}: {answer.status_code} {answer.text}")
        token = answer.json()["accessToken"]
        asked = await self.call(
            turn + 1,
            "/api/v1/auth/email-verification",
            headers={"authorization": f"Bearer {token}"},
        )
        if asked.status_code != 202:
            raise RuntimeError(f"verifying {email}: {asked.status_code} {asked.text}")
        self.done += 1

    async def run(self, emails: Sequence[str], in_flight: int) -> None:
        queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        for turn, email in enumerate(emails):
            queue.put_nowait((turn, email))

        async def worker() -> None:
            while not queue.empty():
                turn, email = queue.get_nowait()
                await self.user(turn, email)

        await asyncio.gather(*(worker() for _ in range(in_flight)))


# --- observing --------------------------------------------------------------------------------


async def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await connection.fetch(query)]
    finally:
        await connection.close()


def queue_depths(location: BusLocation, names: Sequence[str]) -> dict[str, int]:
    """Messages in each queue, visible or in flight."""
    sqs = location.sqs()
    depths = {}
    for name in names:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        depths[name] = int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
    return depths


def shorten_visibility(location: BusLocation, queues: Sequence[str], seconds: int) -> None:
    sqs = location.sqs()
    for name in queues:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(seconds)})


async def until(probe: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not so within {seconds:.0f} s")
        await asyncio.sleep(0.2)


# --- the run ----------------------------------------------------------------------------------


async def run_replicas(
    plan: ReplicaPlan,
    *,
    project: Project,
    databases: Mapping[str, str],
    state_dir: Path,
    extra_env: Mapping[str, str] | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> ReplicaRun:
    """Run `plan` on PostgreSQL (`databases`: service → an empty database's URL) and a moto
    server, and report what was observed once every effect has happened."""
    host = "127.0.0.1"
    parts = [*(entry.name for entry in project.services), *INFRASTRUCTURE_PORTS]
    ports = dict(zip(parts, free_ports(len(parts), host), strict=True))
    env = {
        "AUTH_ARGON2_TIME_COST": "1",
        "AUTH_ARGON2_MEMORY_COST_KIB": "1024",
        "AUTH_ARGON2_PARALLELISM": "1",
        "AUTH_REGISTRATIONS_PER_ADDRESS": str(10 * plan.registrations),
        "AUTH_LOGIN_FAILURES_PER_ADDRESS": str(10 * plan.registrations),
        "AUTH_ACCESS_LOG": "false",
        "AUTH_OUTBOX_LEASE_SECONDS": str(plan.lease_seconds),
        "AUTH_OUTBOX_BACKOFF_CAP_SECONDS": "2",
        "USER_CONSUMER_WAIT_SECONDS": "1",
        "NOTIFICATION_CONSUMER_WAIT_SECONDS": "1",
        "NOTIFICATION_RETRY_BACKOFF_BASE_SECONDS": "1",
        # The notification service's claim on an email lasts three SMTP timeouts.
        "NOTIFICATION_SMTP_TIMEOUT_SECONDS": "2",
        **(extra_env or {}),
    }
    topology = topology_from_contracts(project)
    queues = [queue.name for queue in topology.queues if queue.dead_letter_queue is not None]
    dead_letter_queues = [
        queue.dead_letter_queue for queue in topology.queues if queue.dead_letter_queue
    ]
    [topic] = topology.topics
    async with moto_process(host) as endpoint:
        config = StackConfig(
            project=project,
            ports=ports,
            endpoint=endpoint,
            state_dir=state_dir,
            services=(),
            database_urls=dict(databases),
            extra_env=env,
        )
        stack = Stack(config, say)
        await stack.start()
        location = BusLocation("endpoint", endpoint)
        tally = EventTally()
        tally_queue = f"{topic.name}-tally-{uuid.uuid4().hex[:8]}"
        subscription = SubscriptionSpec(topic.name, tally_queue, {}, raw_delivery=False)
        await asyncio.to_thread(
            Provisioner(location.sns(), location.sqs()).apply,
            Topology((TopicSpec(topic.name),), (QueueSpec(tally_queue),), (subscription,)),
        )
        stop_tally = asyncio.Event()
        tallying = asyncio.create_task(
            tally.drain(SqsQueue(location.sqs(), tally_queue), stop_tally)
        )
        try:
            await asyncio.to_thread(shorten_visibility, location, queues, plan.visibility_seconds)
            count = {"auth": plan.auths, "user": plan.consumers, "notification": plan.consumers}
            extra = iter(free_ports(sum(count.values()), host))
            fleet = Fleet(
                stack.env,
                {
                    name: [ports[name], *(next(extra) for _ in range(count[name] - 1))]
                    for name in SERVICES
                },
                state_dir / "logs",
            )
            await fleet.start(["auth"] if plan.backlog else None)
            say(f"{len(fleet.urls('auth'))} auth processes ready")
            try:
                run = await _load(plan, fleet, stack, databases, location, queues, tally, say)
            finally:
                await fleet.stop()
            run.exit_statuses = fleet.exit_statuses
            run.dead_letters = await asyncio.to_thread(queue_depths, location, dead_letter_queues)
            return run
        finally:
            stop_tally.set()
            await tallying
            await stack.stop()


async def _load(
    plan: ReplicaPlan,
    fleet: Fleet,
    stack: Stack,
    databases: Mapping[str, str],
    location: BusLocation,
    queues: Sequence[str],
    tally: EventTally,
    say: Callable[[str], None],
) -> ReplicaRun:
    sink = stack.sink
    assert sink is not None
    mailbox = sink.mailbox
    tag = uuid.uuid4().hex[:8]
    emails = [f"r{tag}-{i}@example.com" for i in range(plan.registrations)]
    killed_at: float | None = None
    restarted: list[asyncio.Task[None]] = []

    async def faults(load: Load) -> None:
        nonlocal killed_at
        await until(lambda: _true(load.done >= plan.registrations // 2), 600, "half way")
        await asyncio.gather(*(fleet.kill(name, 1) for name in SERVICES))
        killed_at = time.time()
        say(f"killed one replica of each service after {load.done} registrations")
        await asyncio.sleep(2)  # the load runs on the survivors for a while
        await asyncio.gather(*(fleet.restart(name, 1) for name in SERVICES))
        say(f"restarted them after {load.done} registrations")

    async with httpx.AsyncClient(timeout=30) as http:
        load = Load(fleet, http)
        started, started_at = time.perf_counter(), time.time()
        if plan.kill:
            restarted.append(asyncio.create_task(faults(load)))
        try:
            await load.run(emails, plan.in_flight)
        except BaseException:
            for task in restarted:
                task.cancel()
            raise
        registering = time.perf_counter() - started
        say(f"{len(emails)} registrations answered in {registering:.1f} s")
        if restarted:
            await restarted[0]

    consuming: float | None = None
    if plan.backlog:
        await until(
            lambda: _unpublished(databases["auth"], 0), plan.settle_seconds, "the outbox published"
        )
        await fleet.start(CONSUMERS)
        consuming = time.perf_counter()
        say(f"{2 * plan.consumers} consumer processes ready")

    user_db = databases["user"]

    async def settled() -> bool:
        profiles = await rows(user_db, "SELECT count(*) FROM profiles")
        # At least one verification email per user; more if a request was asked twice (its
        # replica died before answering), which the tally then shows as two events.
        emails_due = max(len(emails), len(tally.of_type(VERIFICATION)))
        return bool(profiles[0][0] >= len(emails) and len(mailbox.all()) >= emails_due)

    await until(settled, plan.settle_seconds, "every profile and email")
    finished = time.perf_counter()
    # Then nothing is left in flight: the queues drained (a late duplicate would show) and
    # the relays have marked every row.

    async def drained() -> bool:
        depths = await asyncio.to_thread(queue_depths, location, queues)
        return not any(depths.values()) and await _unpublished(databases["auth"], 0)

    await until(drained, plan.settle_seconds, "the queues drained and the outbox published")
    return ReplicaRun(
        plan=plan,
        emails=emails,
        registering_seconds=registering,
        seconds=finished - started,
        consuming_seconds=None if consuming is None else finished - consuming,
        tally=tally,
        mails=mailbox.all(),
        profiles={str(row[0]) for row in await rows(user_db, "SELECT id FROM profiles")},
        accounts={str(row[0]) for row in await rows(databases["auth"], "SELECT id FROM accounts")},
        dead_letters={},
        started_at=started_at,
        killed_at=killed_at,
        exit_statuses={},
        retried=load.retried,
    )


async def _true(value: bool) -> bool:
    return value


async def _unpublished(auth_database: str, count: int) -> bool:
    """Whether the outbox holds `count` rows not yet marked published."""
    found = await rows(auth_database, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
    return bool(found[0][0] == count)
