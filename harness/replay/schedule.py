"""Adversities and the delivery schedules they produce.

An `Adversity` says how badly a stream is delivered: each event `duplicates` times, in which
`order` (in order, shuffled, interleaved across users, reversed), with a consumer that crashes
between an effect and its acknowledgement at `crash_rate`, published after random delays of up
to `max_delay`, with a poison message in the middle, to a consumer handling `concurrency`
messages at once. `plan` turns a stream and an adversity into a concrete `Schedule`: the
ordered list of publishes (`Step`s), each naming the stream item it carries and whether the
consumer crashes after handling it. A schedule is data, so it can be replayed, shrunk and
reported exactly.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from harness.replay.stream import user_id
from services.kit.events import Message

Order = Literal["in-order", "shuffled", "interleaved", "reversed"]
ORDERS: tuple[Order, ...] = ("in-order", "shuffled", "interleaved", "reversed")
PoisonKind = Literal["not-json", "wrong-schema", "unknown-type"]


@dataclass(frozen=True)
class Adversity:
    """How a stream is delivered; the default is the clean delivery (in order, exactly once)."""

    duplicates: int = 1
    order: Order = "in-order"
    crash_rate: float = 0.0
    max_delay: float = 0.0
    poison: Message | None = None
    concurrency: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.duplicates < 1:
            raise ValueError("duplicates must be at least 1 (each event delivered once)")
        if not 0.0 <= self.crash_rate < 1.0:
            raise ValueError("crash_rate must be in [0, 1)")
        if self.max_delay < 0:
            raise ValueError("max_delay must not be negative")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}")

    def describe(self) -> str:
        parts: list[str] = [self.order]
        if self.duplicates > 1:
            parts.append(f"each event x{self.duplicates}")
        if self.crash_rate:
            parts.append(f"crash after effect at {self.crash_rate:.0%}")
        if self.max_delay:
            parts.append(f"delays up to {self.max_delay:g} s")
        if self.poison is not None:
            parts.append("a poison message in the middle")
        if self.concurrency > 1:
            parts.append(f"{self.concurrency} in flight")
        return ", ".join(parts)


CLEAN = Adversity()


def new_seed() -> int:
    """A seed for a schedule nobody asked to repeat (the run reports it, so it can be)."""
    return random.SystemRandom().randrange(2**32)


@dataclass(frozen=True)
class Step:
    """One publish: stream item `item`; `crash` makes the consumer crash after its effect
    (before the acknowledgement), so the bus redelivers it; `delay` is seconds after start."""

    item: int
    crash: bool = False
    delay: float = 0.0


@dataclass(frozen=True)
class Schedule:
    """A stream and the exact publishes that deliver it."""

    stream: tuple[Message, ...]
    steps: tuple[Step, ...]
    concurrency: int = 1
    # The stream item that is a poison message, expected in the dead-letter queue.
    poison: int | None = None
    adversity: Adversity = field(default=CLEAN, compare=False)

    @classmethod
    def clean(cls, stream: Sequence[Message]) -> Schedule:
        """In order, exactly once, one at a time, no crash."""
        return cls(tuple(stream), tuple(Step(i) for i in range(len(stream))))

    def without_poison(self) -> Schedule:
        if self.poison is None:
            return self
        return self.restricted([i for i in range(len(self.stream)) if i != self.poison])

    def clean_counterpart(self) -> Schedule:
        """The clean delivery this schedule is compared with: its stream without the poison,
        in stream order, exactly once."""
        return Schedule.clean(self.without_poison().stream)

    def restricted(self, items: Collection[int]) -> Schedule:
        """Only the stream items `items` (kept in stream order), and only their publishes."""
        kept = sorted(set(items))
        index = {old: new for new, old in enumerate(kept)}
        return replace(
            self,
            stream=tuple(self.stream[i] for i in kept),
            steps=tuple(replace(s, item=index[s.item]) for s in self.steps if s.item in index),
            poison=index.get(self.poison) if self.poison is not None else None,
        )

    def with_steps(self, steps: Sequence[Step]) -> Schedule:
        return replace(self, steps=tuple(steps))

    @property
    def crashes(self) -> int:
        return sum(step.crash for step in self.steps)

    def covers_stream(self) -> bool:
        """Every stream item is published at least once."""
        return {step.item for step in self.steps} == set(range(len(self.stream)))


# --- poison messages ------------------------------------------------------------------------


def poison_message(kind: PoisonKind = "not-json", event_type: str = "user.created") -> Message:
    """A message no consumer can handle. It carries the `eventType` attribute of a type the
    consumer takes, so that the subscription's filter policy lets it through to the queue."""
    attributes = {"eventType": event_type, "source": "auth-service", "schemaVersion": "1.0.0"}
    if kind == "not-json":
        return Message("{this is not JSON", attributes)
    if kind == "wrong-schema":
        body = {"eventType": event_type, "eventId": "not-a-uuid", "schemaVersion": "1.0.0"}
        return Message(json.dumps(body), attributes)
    body = {"eventType": "user.renamed", "schemaVersion": "1.0.0"}
    return Message(json.dumps(body), attributes)


# --- planning -------------------------------------------------------------------------------


def _rng(seed: int) -> random.Random:
    # Seeded, so that a schedule can be reproduced from its seed; nothing secret depends on it.
    return random.Random(seed)  # noqa: S311


def _with_poison(
    stream: Sequence[Message], adversity: Adversity
) -> tuple[list[Message], int | None]:
    items = list(stream)
    if adversity.poison is None:
        return items, None
    middle = len(items) // 2
    items.insert(middle, adversity.poison)
    return items, middle


def _copies(items: Sequence[Message], poison: int | None, duplicates: int) -> list[int]:
    """Item indexes, each repeated `duplicates` times (the poison once), copies adjacent."""
    return [i for i in range(len(items)) for _ in range(1 if i == poison else duplicates)]


def _interleave(order: list[int], items: Sequence[Message], rng: random.Random) -> list[int]:
    """A random merge of the per-user subsequences: each user's events keep their order."""
    lanes: dict[object, list[int]] = {}
    for item in order:
        key = user_id(items[item]) or ("no user", item)
        lanes.setdefault(key, []).append(item)
    queues = list(lanes.values())
    merged: list[int] = []
    while queues:
        weights = [len(q) for q in queues]
        chosen = rng.choices(range(len(queues)), weights=weights)[0]
        merged.append(queues[chosen].pop(0))
        if not queues[chosen]:
            queues.pop(chosen)
    return merged


def _steps(
    order: Sequence[int], adversity: Adversity, poison: int | None, rng: random.Random
) -> tuple[Step, ...]:
    steps = []
    for item in order:
        crash = item != poison and adversity.crash_rate > 0 and rng.random() < adversity.crash_rate
        delay = rng.uniform(0, adversity.max_delay) if adversity.max_delay else 0.0
        steps.append(Step(item, crash, round(delay, 4)))
    return tuple(steps)


def plan(stream: Sequence[Message], adversity: Adversity, seed: int | None = None) -> Schedule:
    """One schedule for `stream` under `adversity` (randomness from `seed`, or the
    adversity's own)."""
    rng = _rng(adversity.seed if seed is None else seed)
    items, poison = _with_poison(stream, adversity)
    order = _copies(items, poison, adversity.duplicates)
    if adversity.order == "shuffled":
        rng.shuffle(order)
    elif adversity.order == "interleaved":
        order = _interleave(order, items, rng)
    elif adversity.order == "reversed":
        order.reverse()
    return Schedule(
        tuple(items),
        _steps(order, adversity, poison, rng),
        adversity.concurrency,
        poison,
        adversity,
    )


def distinct_orders(count: int, duplicates: int) -> int:
    """How many distinct orders `count` items, each `duplicates` times, can be published in."""
    orders: int = math.factorial(count * duplicates) // math.factorial(duplicates) ** count
    return orders


def _multiset_permutations(values: list[int]) -> Iterator[tuple[int, ...]]:
    """Every distinct permutation of `values`, in lexicographic order."""
    current = sorted(values)
    while True:
        yield tuple(current)
        pivot = len(current) - 2
        while pivot >= 0 and current[pivot] >= current[pivot + 1]:
            pivot -= 1
        if pivot < 0:
            return
        swap = len(current) - 1
        while current[swap] <= current[pivot]:
            swap -= 1
        current[pivot], current[swap] = current[swap], current[pivot]
        current[pivot + 1 :] = reversed(current[pivot + 1 :])


def plans(
    stream: Sequence[Message], adversity: Adversity, runs: int = 1, exhaustive_limit: int = 120
) -> Iterator[Schedule]:
    """The schedules to try. A shuffled delivery of a small stream, with at most
    `exhaustive_limit` distinct orders, is tried in *every* order; otherwise `runs` random
    schedules (seeds `adversity.seed`, `+1`, ...). A deterministic adversity gives one."""
    items, poison = _with_poison(stream, adversity)
    copies = len(items) * adversity.duplicates
    if (
        adversity.order == "shuffled"
        and poison is None
        and copies <= 20  # beyond, far too many orders to try them all anyway
        and distinct_orders(len(items), adversity.duplicates) <= exhaustive_limit
    ):
        rng = _rng(adversity.seed)
        for order in _multiset_permutations(_copies(items, poison, adversity.duplicates)):
            yield Schedule(
                tuple(items), _steps(order, adversity, poison, rng), adversity.concurrency,
                poison, adversity,
            )  # fmt: skip
        return
    random_parts = adversity.order in ("shuffled", "interleaved") or adversity.crash_rate > 0
    random_parts = random_parts or adversity.max_delay > 0
    for seed in itertools.islice(itertools.count(adversity.seed), runs if random_parts else 1):
        yield plan(stream, adversity, seed)
