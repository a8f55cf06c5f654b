"""Replaying a stream file into a running stack (`accord up`, or any SNS/SQS endpoint).

`replay_file` publishes a recorded stream to the stack's topic and lets the stack's own
consumers take it, under duplicates, shuffling and simulated crashes, then reports what
happened. The topic and the consumers' queues (with their filter policies and dead-letter
queues) come from the AsyncAPI bindings (`harness.bus.provision.topology_from_contracts`), as
`accord up` provisions them.

How it differs from a replay against a subject (`harness.replay.runner.check`):

- *Fresh ids.* Every pass gives each event a new `eventId` and each user a new `userId`
  (consistently within the pass), so a stream recorded from this very stack is not absorbed
  as already processed, and a clean pass and an adverse pass do not see each other.
- *Crashes.* The stack's consumers run in their own process, so the harness cannot stop one
  between an effect and its acknowledgement. It reproduces what that crash leaves for the
  consumer: the same message arriving again after its effect committed (a late redelivery,
  published once the queues have drained).
- *Final state.* With state probes (`stack_probes` reads the services' databases), a clean
  pass (in order, exactly once, each event drained before the next is published) runs first,
  and the adverse pass's final state is compared with it. Without probes nothing is compared
  (`diffs` is None).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness.bus.dlq import DeadLetterQueue
from harness.bus.provision import topology_from_contracts
from harness.project import Project
from harness.replay.buses import publish_batch, queue_depth
from harness.replay.runner import Difference, Progress, ProgressCallback, differences
from harness.replay.schedule import Adversity, plan
from harness.replay.stream import describe, payload, read_stream
from harness.replay.subjects import IdMap, notification_state, user_state
from services.kit.aws import BusLocation
from services.kit.bus import DeadLetter
from services.kit.events import Message
from services.kit.memory import matches
from services.kit.sns import SnsEventPublisher
from services.kit.topology import Topology
from services.notification.storage import SqlNotificationDatabase
from services.user.storage import SqlUserStore

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

DEFAULT_ENDPOINT = "http://127.0.0.1:4566"
# Messages on the consumers' queues at most while publishing: the stack's consumers keep up,
# and an emulator's receive slows down with its backlog.
WINDOW = 50


class StateProbe(Protocol):
    """Reads one consumer's final state about the users and events of one pass, named with
    the stream's ids (`ids` maps the pass's ids to the stream's)."""

    @property
    def name(self) -> str: ...

    async def __call__(self, ids: IdMap) -> object: ...


@dataclass(frozen=True)
class UserDatabaseProbe:
    """The user service's state, read from its database (`harness.replay.subjects.user_state`)."""

    database_url: str
    name: str = "user"

    async def __call__(self, ids: IdMap) -> object:
        store = SqlUserStore(self.database_url)
        try:
            return await user_state(store, ids)
        finally:
            await store.dispose()


@dataclass(frozen=True)
class NotificationDatabaseProbe:
    """The notification service's state, read from its database (the emails themselves went
    to the stack's SMTP sink; the log says which were sent)."""

    database_url: str
    name: str = "notification"

    async def __call__(self, ids: IdMap) -> object:
        database = SqlNotificationDatabase(self.database_url)
        try:
            return await notification_state(database, ids=ids)
        finally:
            await database.dispose()


def stack_probes(state_dir: Path) -> list[StateProbe]:
    """Probes of the SQLite databases `accord up` keeps in `state_dir` (`.accord/`)."""
    probes: list[StateProbe] = []
    if (state_dir / "user.db").exists():
        probes.append(UserDatabaseProbe(f"sqlite:///{state_dir / 'user.db'}"))
    if (state_dir / "notification.db").exists():
        probes.append(NotificationDatabaseProbe(f"sqlite:///{state_dir / 'notification.db'}"))
    return probes


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay into a stack did.

    `sent`: publishes to the topic in the adverse pass (copies and crash redeliveries
    included; a message that is not a valid event is copied like any other); `delivered`: the
    messages the topic put on the consumers' queues (one publish reaches every queue whose
    filter policy takes it); `duplicates_absorbed`: deliveries beyond the first of an event on
    a queue, consumed without being dead-lettered (that they had no second effect is what
    `diffs` shows); `dead_lettered`: this replay's messages in the consumers' dead-letter
    queues; `diffs`: how the adverse final state differs from the clean pass's (None without
    probes)."""

    events: int
    sent: int
    delivered: int
    duplicates_absorbed: int
    crashes: int
    dead_lettered: tuple[DeadLetter, ...]
    diffs: tuple[Difference, ...] | None
    seconds: float
    seed: int  # of the shuffle and the crashes: the same seed replays the same schedule
    queues: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.diffs and all(
            (letter.reason or "").startswith("invalid message") for letter in self.dead_lettered
        )


@dataclass(frozen=True)
class StackBus:
    """The stack's topic and the queues subscribed to it, from the AsyncAPI bindings."""

    topic: str
    queues: tuple[tuple[str, dict[str, Any]], ...]  # (queue, filter policy)
    location: BusLocation

    @classmethod
    def from_contracts(
        cls, project: Project, endpoint: str = DEFAULT_ENDPOINT, prefix: str = ""
    ) -> StackBus:
        return cls.from_topology(
            topology_from_contracts(project).with_prefix(prefix), BusLocation("endpoint", endpoint)
        )

    @classmethod
    def from_topology(cls, topology: Topology, location: BusLocation) -> StackBus:
        if len(topology.topics) != 1:
            names = ", ".join(t.name for t in topology.topics) or "none"
            raise ValueError(f"the contracts declare one topic per stack, found: {names}")
        topic = topology.topics[0].name
        queues = tuple(
            (s.queue, dict(s.filter_policy)) for s in topology.subscriptions if s.topic == topic
        )
        return cls(topic, queues, location)


def fresh_ids(stream: Sequence[Message]) -> tuple[list[Message], dict[uuid.UUID, uuid.UUID]]:
    """The stream with new `eventId`s and `userId`s (consistent within the stream), and the
    map from the new ids back to the stream's. Messages that are not JSON objects stay as
    they are."""
    new: dict[str, uuid.UUID] = {}
    back: dict[uuid.UUID, uuid.UUID] = {}
    renamed = []
    for message in stream:
        body = payload(message)
        if body is None:
            renamed.append(message)
            continue
        for key in ("eventId", "userId"):
            value = body.get(key)
            if not isinstance(value, str):
                continue
            try:
                original = uuid.UUID(value)
            except ValueError:
                continue
            if value not in new:
                new[value] = uuid.uuid4()
                back[new[value]] = original
            body[key] = str(new[value])
        renamed.append(Message(json.dumps(body, ensure_ascii=False), dict(message.attributes)))
    return renamed, back


class _Pass:
    """Publishing one pass to the stack's topic and waiting for its queues to drain."""

    def __init__(self, bus: StackBus, timeout: float, progress: ProgressCallback | None) -> None:
        self.bus = bus
        self.timeout = timeout
        self.progress = progress
        self.sns: SNSClient = bus.location.sns()
        self.sqs: SQSClient = bus.location.sqs()
        self.topic_arn = SnsEventPublisher(self.sns, bus.topic).topic_arn()
        self.urls = [self.sqs.get_queue_url(QueueName=q)["QueueUrl"] for q, _ in bus.queues]

    def depth(self) -> int:
        return sum(queue_depth(self.sqs, url) for url in self.urls)

    async def drained(self) -> None:
        deadline = time.monotonic() + self.timeout
        empty = 0
        while empty < 2:
            depth = await asyncio.to_thread(self.depth)
            empty = empty + 1 if depth == 0 else 0
            if depth and time.monotonic() > deadline:
                queues = ", ".join(queue for queue, _ in self.bus.queues)
                raise TimeoutError(
                    f"{depth} messages still on {queues} after {self.timeout:g} s: are the "
                    "services consuming (is `accord up` running)?"
                )
            await asyncio.sleep(0.1)

    async def publish(self, messages: Sequence[Message], phase: str, one_by_one: bool) -> None:
        total = len(messages)
        chunk = 1 if one_by_one else 10
        for start in range(0, total, chunk):
            if not one_by_one:
                while await asyncio.to_thread(self.depth) >= WINDOW:
                    await asyncio.sleep(0.05)
            await asyncio.to_thread(
                publish_batch, self.sns, self.topic_arn, messages[start : start + chunk]
            )
            if one_by_one:
                await self.drained()
            if self.progress is not None:
                self.progress(Progress(phase, min(total, start + chunk), total))

    def dead_letters(
        self, ids: IdMap, bodies: Collection[str], before: Collection[str] = ()
    ) -> list[DeadLetter]:
        """This pass's messages in the queues' dead-letter queues: by event id, or, for a
        message without one, by its body (the letters `before` excepted, by message id)."""
        found = []
        for queue, _ in self.bus.queues:
            for letter in DeadLetterQueue(self.sqs, queue).peek():
                if letter.message_id in before:
                    continue
                body = payload(letter.message) or {}
                try:
                    event = uuid.UUID(str(body.get("eventId")))
                except ValueError:
                    event = None
                if event in ids or letter.message.body in bodies:
                    found.append(letter)
        return found


async def _states(probes: Sequence[StateProbe], ids: IdMap) -> dict[str, object]:
    return {probe.name: await probe(ids) for probe in probes}


async def replay_stream(
    stream: Sequence[Message],
    bus: StackBus,
    adversity: Adversity,
    *,
    probes: Sequence[StateProbe] = (),
    on_progress: ProgressCallback | None = None,
    timeout: float = 300.0,
) -> ReplaySummary:
    """Replay `stream` into the stack behind `bus` under `adversity` (see the module
    docstring): its duplicates, its order (in order or shuffled), its crash rate and its seed.
    Its delays, poison and concurrency are the in-process runner's, not used here."""
    started = time.monotonic()
    passes = await asyncio.to_thread(_Pass, bus, timeout, on_progress)
    clean_state: dict[str, object] | None = None
    if probes:
        clean, clean_ids = fresh_ids(stream)
        await passes.publish(clean, "clean pass", one_by_one=True)
        await passes.drained()
        clean_state = await _states(probes, clean_ids)

    adverse, adverse_ids = fresh_ids(stream)
    # A message without an event id is the same in both passes: know the clean pass's letters.
    bodies = {message.body for message in adverse}
    earlier = await asyncio.to_thread(passes.dead_letters, {}, bodies)
    before = {letter.message_id for letter in earlier}
    schedule = plan(adverse, adversity)
    published = [schedule.stream[step.item] for step in schedule.steps]
    await passes.publish(published, "publishing", one_by_one=False)
    await passes.drained()
    redelivered = [schedule.stream[step.item] for step in schedule.steps if step.crash]
    if redelivered:
        await passes.publish(redelivered, "redelivering after crashes", one_by_one=False)
        await passes.drained()

    dead = await asyncio.to_thread(passes.dead_letters, adverse_ids, bodies, before)
    sent = published + redelivered
    delivered, absorbed = _routed(sent, bus, {letter.message.body for letter in dead})
    diffs: tuple[Difference, ...] | None = None
    if clean_state is not None:
        adverse_state = await _states(probes, adverse_ids)
        diffs = tuple(differences(clean_state, adverse_state))
    return ReplaySummary(
        events=len(stream),
        sent=len(sent),
        delivered=delivered,
        duplicates_absorbed=absorbed,
        crashes=len(redelivered),
        dead_lettered=tuple(dead),
        diffs=diffs,
        seconds=time.monotonic() - started,
        seed=adversity.seed,
        queues=tuple(queue for queue, _ in bus.queues),
    )


def _routed(sent: Sequence[Message], bus: StackBus, dead: Collection[str]) -> tuple[int, int]:
    """Deliveries to the consumers' queues, and how many of them were copies beyond the first
    of an event on a queue (messages whose body was dead-lettered not counted)."""
    copies: Counter[tuple[str, str]] = Counter()
    for message in sent:
        for queue, policy in bus.queues:
            if matches(policy, message.attributes):
                copies[(queue, message.body)] += 1
    absorbed = sum(n - 1 for (_, body), n in copies.items() if body not in dead)
    return sum(copies.values()), absorbed


async def replay_file(
    path: Path,
    *,
    project: Project,
    endpoint: str = DEFAULT_ENDPOINT,
    prefix: str = "",
    adversity: Adversity,
    probes: Sequence[StateProbe] = (),
    on_progress: ProgressCallback | None = None,
    timeout: float = 300.0,
) -> ReplaySummary:
    """Load a stream file and replay it into the stack at `endpoint`, whose topic and queues
    the project's AsyncAPI bindings name (under `prefix`, as `accord provision --prefix`)."""
    stream = read_stream(path)
    bus = StackBus.from_contracts(project, endpoint, prefix)
    return await replay_stream(
        stream,
        bus,
        adversity,
        probes=probes,
        on_progress=on_progress,
        timeout=timeout,
    )


def summary_rows(summary: ReplaySummary) -> list[tuple[str, str]]:
    """The summary's figures as (label, value) rows, for a table."""
    if summary.diffs is None:
        final = "not compared (no state probes)"
    elif not summary.diffs:
        final = "the same as after a clean delivery"
    else:
        final = f"{len(summary.diffs)} differences"
    return [
        ("events in the stream", str(summary.events)),
        ("published", str(summary.sent)),
        ("delivered to queues", f"{summary.delivered}  ({', '.join(summary.queues)})"),
        ("duplicates absorbed", str(summary.duplicates_absorbed)),
        ("crash redeliveries", str(summary.crashes)),
        ("dead-lettered", str(len(summary.dead_lettered))),
        ("final state", final),
        ("time", f"{summary.seconds:.1f} s (seed {summary.seed})"),
    ]


def summary_details(summary: ReplaySummary) -> list[str]:
    """What the rows count: each dead letter with its reason, and each difference."""
    return [
        *(
            f"dead-lettered {describe(letter.message)}: {letter.reason}"
            for letter in summary.dead_lettered
        ),
        *(f"differs: {difference}" for difference in summary.diffs or ()),
    ]


def summary_lines(summary: ReplaySummary) -> list[str]:
    """The summary as lines of text."""
    rows = [f"{label:<22} {value}" for label, value in summary_rows(summary)]
    return rows + [f"  {line}" for line in summary_details(summary)]
