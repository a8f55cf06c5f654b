"""Deliver a schedule to a consumer, compare its final state with a clean delivery's, and
shrink any difference to the smallest stream that shows it.

A consumer under test is a `Subject`: the event types it takes, a way to attach its handlers
to an `EventConsumer`, and a way to read its final state. That is all the harness needs from
it. A `SubjectFactory` makes a fresh one (empty storage) for every run, because every run is
compared with the clean run of the same stream from the same empty start.

`check` runs the clean delivery (in order, exactly once, no crash), then the adverse
schedules, and compares final states with `differences`. A dead-lettered event that the clean
run processed is a difference too (a lost event), and so is a poison message that did not
reach the dead-letter queue. The first failing schedule is shrunk (`minimise`) by delta
debugging: first the stream's events, then the publishes of the events that remain, then its
crashes and delays, each step kept only if the difference still shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from harness.replay.buses import Lane, MemoryReplayBus, ReplayBus
from harness.replay.crash import STEP_ATTRIBUTE, CrashingQueue
from harness.replay.schedule import CLEAN, Adversity, Schedule, Step, plans
from harness.replay.stream import describe, to_messages, try_decode
from services.kit.bus import DeadLetter, EventConsumer
from services.kit.consumer import Backoff, ConsumerOptions, QueueConsumer
from services.kit.events import Event, Message
from services.kit.memory import matches

T = TypeVar("T")


@dataclass(frozen=True)
class Subject:
    """A consumer under test: what it takes, how to attach it, how to read its final state."""

    name: str
    event_types: tuple[str, ...]
    attach: Callable[[EventConsumer], None]
    read_state: Callable[[], Awaitable[object]]


SubjectFactory = Callable[[], contextlib.AbstractAsyncContextManager[Subject]]


@dataclass(frozen=True)
class Progress:
    """Where a replay is: `done` of `total` in `phase` (for a progress bar)."""

    phase: str
    done: int
    total: int


ProgressCallback = Callable[[Progress], None]


class ReplayTimeoutError(TimeoutError):
    """The consumer did not drain its queue in time."""


@dataclass(frozen=True)
class RunResult:
    """One delivery of a schedule: the consumer's final state and what the bus saw."""

    subject: str
    schedule: Schedule
    state: object
    dead_letters: tuple[DeadLetter, ...]
    receives: int  # handlings of the schedule's messages: copies, redeliveries, retries
    items_received: int  # distinct stream items that reached the consumer
    poison_receives: int
    crashes: int
    seconds: float

    @property
    def duplicates_absorbed(self) -> int:
        """Handlings beyond the first of each event (copies and crash redeliveries)."""
        return self.receives - self.poison_receives - self.items_received


@dataclass(frozen=True)
class Difference:
    """Where two final states differ (`path` is a JSON-pointer-like location)."""

    path: str
    clean: object
    adverse: object

    def __str__(self) -> str:
        return f"{self.path or '/'}: clean {self.clean!r}, adverse {self.adverse!r}"


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


def differences(clean: object, adverse: object, path: str = "") -> list[Difference]:
    """Every place where `adverse` differs from `clean`: mappings key by key, lists and tuples
    item by item (a different length is one difference), anything else by equality."""
    if isinstance(clean, Mapping) and isinstance(adverse, Mapping):
        found: list[Difference] = []
        for key in sorted(set(clean) | set(adverse), key=repr):
            found += differences(clean.get(key, ABSENT), adverse.get(key, ABSENT), f"{path}/{key}")
        return found
    sequences = (list, tuple)
    if isinstance(clean, sequences) and isinstance(adverse, sequences):
        if len(clean) != len(adverse):
            return [Difference(path, clean, adverse)]
        return [d for i, (a, b) in enumerate(zip(clean, adverse, strict=True))
                for d in differences(a, b, f"{path}/{i}")]  # fmt: skip
    return [] if clean == adverse else [Difference(path, clean, adverse)]


# --- one run --------------------------------------------------------------------------------


def _tagged(schedule: Schedule, number: int) -> Message:
    message = schedule.stream[schedule.steps[number].item]
    return Message(message.body, {**message.attributes, STEP_ATTRIBUTE: str(number)})


async def _publish(
    schedule: Schedule,
    lane: Lane,
    pending: Callable[[], int],
    window: int,
    published: Callable[[Sequence[int]], None],
    timeout: float,
) -> None:
    """Publish every step (tagged with its number), at its delay if it has one."""
    if any(step.delay for step in schedule.steps):

        async def later(number: int, step: Step) -> None:
            await asyncio.sleep(step.delay)
            await lane.publish([_tagged(schedule, number)])
            published([number])

        await asyncio.gather(*(later(n, s) for n, s in enumerate(schedule.steps)))
        return
    total = len(schedule.steps)
    chunk = max(1, min(10, window))
    for start in range(0, total, chunk):
        # Keep at most about `window` messages on the queue: an emulator's receive slows down
        # with its backlog. Counted here, not asked of the queue, which costs a call each time.
        deadline = time.monotonic() + timeout
        while (waiting := pending()) >= window:
            if time.monotonic() > deadline:
                raise ReplayTimeoutError(
                    f"{waiting} messages still unsettled on {lane.queue_name} after "
                    f"{timeout:g} s, waiting for fewer than {window} to publish more"
                )
            await asyncio.sleep(lane.poll_seconds)
        numbers = range(start, min(total, start + chunk))
        await lane.publish([_tagged(schedule, n) for n in numbers])
        published(numbers)


async def _drained(lane: Lane, pending: Callable[[], int], timeout: float) -> None:
    """Wait until the queue is empty: nothing visible, nothing in flight, twice in a row. The
    queue is asked once every message is settled as counted here, and every second before
    (a message the queue itself moved to the dead-letter queue is never counted here)."""
    deadline = time.monotonic() + timeout
    asked = 0.0
    empty_polls = 0
    while empty_polls < 2:
        if pending() <= 0 or time.monotonic() - asked >= 1.0:
            asked = time.monotonic()
            depth = await lane.depth()
            empty_polls = empty_polls + 1 if depth == 0 else 0
            if depth and time.monotonic() > deadline:
                raise ReplayTimeoutError(
                    f"{depth} messages still on {lane.queue_name} after {timeout:g} s"
                )
        await asyncio.sleep(lane.poll_seconds)


async def run(
    schedule: Schedule,
    subject: SubjectFactory,
    bus: ReplayBus | None = None,
    *,
    window: int = 100,
    timeout: float = 60.0,
    on_progress: ProgressCallback | None = None,
    phase: str = "delivering",
) -> RunResult:
    """Publish the schedule to a fresh lane, let a fresh subject consume it through the kit's
    `QueueConsumer`, wait for the queue to drain, and read the subject's final state."""
    bus = bus or MemoryReplayBus()
    started = time.monotonic()
    total = len(schedule.steps)
    async with subject() as consumer_under_test, bus.lane(consumer_under_test.event_types) as lane:
        crash_steps = {n for n, step in enumerate(schedule.steps) if step.crash}
        queue = CrashingQueue(
            lane.queue(), crash_steps, release=lane.releases_crashes, short_poll=lane.short_poll
        )
        options = ConsumerOptions(
            max_in_flight=schedule.concurrency,
            wait_seconds=lane.wait_seconds,
            backoff=Backoff(base=0),  # retries at once: a replay is about outcomes, not pacing
        )
        consumer = QueueConsumer(queue, options)
        consumer_under_test.attach(consumer)
        types = list(consumer_under_test.event_types)
        policy: dict[str, Any] = {"eventType": types} if types else {}
        reaches_queue = [
            matches(policy, schedule.stream[step.item].attributes) for step in schedule.steps
        ]
        sent = routed = 0

        def published(numbers: Sequence[int]) -> None:
            nonlocal sent, routed
            sent += len(numbers)
            routed += sum(reaches_queue[n] for n in numbers)
            if on_progress is not None:
                on_progress(Progress(phase, sent, total))

        def pending() -> int:
            return routed - queue.settled

        await consumer.start()
        try:
            await _publish(schedule, lane, pending, window, published, timeout)
            await _drained(lane, pending, timeout)
        finally:
            queue.halt()
            await consumer.stop()
        state = await consumer_under_test.read_state()
        dead_letters = tuple(await lane.dead_letters())
    items = {schedule.steps[step].item for step in queue.receives}
    poison = schedule.poison
    return RunResult(
        subject=consumer_under_test.name,
        schedule=schedule,
        state=state,
        dead_letters=dead_letters,
        receives=sum(queue.receives.values()),
        items_received=len(items - {poison}),
        poison_receives=sum(
            count for step, count in queue.receives.items() if schedule.steps[step].item == poison
        ),
        crashes=queue.crashes,
        seconds=time.monotonic() - started,
    )


@dataclass(frozen=True)
class Baseline:
    """What an adverse run is compared with: the clean run's final state and dead letters,
    or a final state known in advance (and no dead letters)."""

    state: object
    dead_letters: tuple[DeadLetter, ...] = ()


def judge(baseline: Baseline, result: RunResult) -> list[Difference]:
    """What the adverse `result` got wrong, against the baseline."""
    found = differences(baseline.state, result.state, "/state")
    schedule = result.schedule
    poison = schedule.stream[schedule.poison] if schedule.poison is not None else None
    dead = sorted(
        describe(letter.message)
        for letter in result.dead_letters
        if poison is None or letter.message.body != poison.body
    )
    clean_dead = sorted(describe(letter.message) for letter in baseline.dead_letters)
    if sorted(set(dead)) != sorted(set(clean_dead)):
        found.append(Difference("/dead-letters", clean_dead, dead))
    if poison is not None and all(d.message.body != poison.body for d in result.dead_letters):
        found.append(Difference("/dead-letters/poison", describe(poison), ABSENT))
    return found


# --- shrinking ------------------------------------------------------------------------------


async def ddmin(values: Sequence[T], fails: Callable[[list[T]], Awaitable[bool]]) -> list[T]:
    """Zeller's delta debugging: a 1-minimal sublist of `values` (which fails) that fails."""
    current = list(values)
    granularity = 2
    while len(current) >= 2:
        size = -(-len(current) // granularity)
        chunks = [current[i : i + size] for i in range(0, len(current), size)]
        for chunk in chunks:
            if await fails(chunk):
                current, granularity = chunk, 2
                break
        else:
            for number in range(len(chunks)):
                complement = [v for i, c in enumerate(chunks) if i != number for v in c]
                if await fails(complement):
                    current, granularity = complement, max(granularity - 1, 2)
                    break
            else:
                if granularity >= len(current):
                    break
                granularity = min(len(current), granularity * 2)
    return current


Tester = Callable[[Schedule], Awaitable[list[Difference]]]


def _stream_key(stream: Sequence[Message]) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    return tuple((m.body, tuple(sorted(m.attributes.items()))) for m in stream)


def schedule_key(schedule: Schedule) -> object:
    """A hashable identity of a schedule (messages hold dicts, so schedules are unhashable)."""
    return (_stream_key(schedule.stream), schedule.steps, schedule.concurrency, schedule.poison)


async def minimise(
    schedule: Schedule, test: Tester, *, known: Sequence[Difference] | None = None
) -> tuple[Schedule, list[Difference]]:
    """The smallest schedule, derived from a failing one, that still fails `test`: fewest
    events, then fewest publishes, then no crash or delay that is not needed. `known` is what
    `test` already found for `schedule`, so it is not run again (a concurrent run may not
    fail twice)."""
    seen: dict[object, list[Difference]] = {}
    if known is not None:
        seen[schedule_key(schedule)] = list(known)

    async def diffs(candidate: Schedule) -> list[Difference]:
        key = schedule_key(candidate)
        if key not in seen:
            seen[key] = await test(candidate)
        return seen[key]

    if not await diffs(schedule):
        raise ValueError("the schedule to minimise does not fail")

    async def fails_items(items: list[int]) -> bool:
        return bool(await diffs(schedule.restricted(items)))

    best = schedule.restricted(await ddmin(range(len(schedule.stream)), fails_items))

    async def fails_steps(steps: list[Step]) -> bool:
        candidate = best.with_steps(steps)
        return candidate.covers_stream() and bool(await diffs(candidate))

    best = best.with_steps(await ddmin(best.steps, fails_steps))

    async def keep_if_failing(simpler: Schedule) -> None:
        nonlocal best
        if simpler != best and await diffs(simpler):
            best = simpler

    # Each candidate is built from the best schedule so far: a simplification kept stays kept.
    await keep_if_failing(best.with_steps([replace(step, delay=0.0) for step in best.steps]))
    for n in range(len(best.steps)):
        await keep_if_failing(
            best.with_steps(
                [replace(s, crash=False) if i == n else s for i, s in enumerate(best.steps)]
            )
        )
    if best.concurrency > 1:
        await keep_if_failing(replace(best, concurrency=1))
    return best, await diffs(best)


# --- the verdict ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A difference from the clean delivery, with the smallest schedule that shows it."""

    schedule: Schedule
    differences: tuple[Difference, ...]
    found_in: Schedule  # the schedule the difference first showed in, before shrinking

    def events(self) -> list[Event | Message]:
        """The minimal stream: typed events (messages that are not events stay messages)."""
        return [try_decode(m) or m for m in self.schedule.stream]

    def deliveries(self) -> list[Event | Message]:
        """The minimal stream's publishes, in order (a crashed one is redelivered after)."""
        events = self.events()
        return [events[step.item] for step in self.schedule.steps]

    def explain(self) -> str:
        schedule = self.schedule
        lines = [
            f"smallest stream that shows it: {len(schedule.stream)} events, "
            f"{len(schedule.steps)} deliveries (found in {len(self.found_in.stream)} events, "
            f"{len(self.found_in.steps)} deliveries)",
            "events:",
            *(f"  [{i}] {describe(m)}" for i, m in enumerate(schedule.stream)),
            "delivered: "
            + ", ".join(
                f"[{s.item}]"
                + (" crash" if s.crash else "")
                + (f" +{s.delay:g}s" if s.delay else "")
                for s in schedule.steps
            )
            + (f" ({schedule.concurrency} in flight)" if schedule.concurrency > 1 else ""),
            "differences:",
            *(f"  {d}" for d in self.differences),
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class Verdict:
    """The outcome of `check`: the figures of the adverse runs, and the finding if any."""

    subject: str
    adversity: Adversity
    events: int
    runs: int
    deliveries: int  # publishes, over all runs
    handled: int  # handlings by the consumer: copies, crash redeliveries, retries
    duplicates_absorbed: int
    crashes: int
    dead_letters: tuple[DeadLetter, ...]
    finding: Finding | None
    seconds: float
    results: tuple[RunResult, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return self.finding is None

    def explain(self) -> str:
        head = (
            f"{self.subject}, {self.adversity.describe()}: {self.events} events, {self.runs} "
            f"runs, {self.deliveries} deliveries, {self.handled} handled, "
            f"{self.duplicates_absorbed} duplicates absorbed, {self.crashes} crashes, "
            f"{len(self.dead_letters)} dead-lettered"
        )
        if self.finding is None:
            return head + ": no difference from the clean delivery"
        return (
            head + ": the final state differs from the clean delivery's\n" + self.finding.explain()
        )


ExpectedState = Callable[[tuple[Message, ...]], object]


async def check(
    stream: Sequence[Event | Message],
    subject: SubjectFactory,
    adversity: Adversity = CLEAN,
    *,
    bus: ReplayBus | None = None,
    runs: int = 1,
    exhaustive_limit: int = 120,
    expected: ExpectedState | None = None,
    shrink: bool = True,
    window: int = 100,
    timeout: float = 60.0,
    on_progress: ProgressCallback | None = None,
) -> Verdict:
    """Deliver `stream` to fresh subjects under `adversity` and compare each final state with
    the clean delivery's, stopping at the first difference, which is shrunk to the smallest
    stream that shows it. When the right final state of a stream is known, `expected` gives it
    (for the stream and for every smaller one tried while shrinking) and no clean run is made.

    Shuffled small streams are tried in every order (up to `exhaustive_limit` orders), other
    adversities `runs` times with successive seeds."""
    bus = bus or MemoryReplayBus()
    messages = to_messages(stream)
    started = time.monotonic()
    baselines: dict[object, Baseline] = {}

    async def baseline_of(schedule: Schedule) -> Baseline:
        counterpart = schedule.clean_counterpart()
        key = _stream_key(counterpart.stream)
        if key not in baselines:
            if expected is not None:
                baselines[key] = Baseline(expected(counterpart.stream))
            else:
                clean = await run(
                    counterpart, subject, bus, window=window, timeout=timeout, phase="clean"
                )
                baselines[key] = Baseline(clean.state, clean.dead_letters)
        return baselines[key]

    async def test(schedule: Schedule) -> list[Difference]:
        baseline = await baseline_of(schedule)
        result = await run(schedule, subject, bus, window=window, timeout=timeout)
        return judge(baseline, result)

    results: list[RunResult] = []
    finding: Finding | None = None
    for schedule in plans(messages, adversity, runs, exhaustive_limit):
        baseline = await baseline_of(schedule)
        result = await run(
            schedule, subject, bus, window=window, timeout=timeout, on_progress=on_progress
        )
        results.append(result)
        found = judge(baseline, result)
        if found:
            minimal, minimal_found = (
                await minimise(schedule, test, known=found) if shrink else (schedule, found)
            )
            finding = Finding(minimal, tuple(minimal_found), schedule)
            break
    return Verdict(
        subject=results[0].subject if results else "consumer",
        adversity=adversity,
        events=len(messages),
        runs=len(results),
        deliveries=sum(len(r.schedule.steps) for r in results),
        handled=sum(r.receives for r in results),
        # Only a run without a difference absorbed its duplicates.
        duplicates_absorbed=0 if finding else sum(r.duplicates_absorbed for r in results),
        crashes=sum(r.crashes for r in results),
        dead_letters=tuple(letter for r in results for letter in r.dead_letters),
        finding=finding,
        seconds=time.monotonic() - started,
        results=tuple(results),
    )
