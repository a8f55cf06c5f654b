"""Event replay under adversity: does a consumer end in the same state however badly the bus
delivers its events?

Given a stream of events (recorded from a run, or generated from the AsyncAPI message schemas
with hypothesis), the harness delivers it to a consumer under a chosen adversity — each event
duplicated k times, shuffled (every order for small streams, random ones for large),
interleaved across users, reversed, delayed, redelivered after a crash between effect and
acknowledgement, or with a poison message in the middle — and compares the consumer's final
state with its state after a clean (in order, exactly once) delivery. A difference is shrunk
to the smallest stream that shows it. It runs on the in-memory bus and on SNS/SQS (moto
server, LocalStack), and needs from a consumer only a way to read its final state.

Checking a consumer (`runner`, `schedule`, `buses`)::

    subject: SubjectFactory          # () -> async context manager of a fresh Subject:
                                     #   Subject(name, event_types, attach(consumer), read_state())
    verdict = await check(stream, subject, Adversity(duplicates=3, order="shuffled",
                                                     crash_rate=0.05, poison=None,
                                                     max_delay=0.0, concurrency=1, seed=0),
                          bus=MemoryReplayBus() | SqsReplayBus(endpoint, prefix=...),
                          runs=1, exhaustive_limit=120, expected=None, shrink=True,
                          window=100, timeout=60.0, on_progress=None)
    # expected: (stream) -> the right final state, when known: no clean run is made
    verdict.ok; verdict.explain(); verdict.deliveries, .handled, .duplicates_absorbed,
    .crashes, .dead_letters; verdict.finding.events() / .deliveries() / .differences

    run(schedule, subject, bus) -> RunResult     one delivery of a concrete `Schedule`
    plan(stream, adversity) -> Schedule; plans(...) every order, or `runs` random ones
    poison_message("not-json" | "wrong-schema" | "unknown-type", event_type) -> Message
    minimise(schedule, test, known=None), ddmin(values, fails), differences(clean, adverse)

The services as subjects, their state read through their own storage (`subjects`)::

    UserServiceSubject(directory), NotificationServiceSubject(directory)
    user_state(store, ids=None), notification_state(database, mails, ids=None)

Generated streams (`generate`, needs hypothesis)::

    streams(users=(1, 3), max_requests=3, deactivation=True, expired=True)
    payloads(event_type), from_schema(schema)

Stream files, one encoded event per line (`stream`)::

    read_stream(path) -> list[Message]; write_stream(path, items) -> int; StreamWriter(path)

Recording what crosses the bus (`recorder`), e.g. behind `accord up --record FILE`::

    recorder = await Recorder.on_topic(endpoint_url, topic_name, path)   # or .in_memory(...)
    await recorder.start(); ...; await recorder.stop()                   # or `async with`
    RecordingPublisher(publisher, StreamWriter(path))

Replaying a file into a running stack (`stack`), e.g. behind `accord replay FILE`::

    adversity = Adversity(duplicates=3, order="shuffled", crash_rate=0.2, seed=new_seed())
    summary = await replay_file(path, project=project, endpoint="http://127.0.0.1:4566",
                                prefix="", adversity=adversity,
                                probes=stack_probes(project.root / ".accord"),
                                on_progress=callback, timeout=300.0)
    summary.sent, .delivered, .duplicates_absorbed, .crashes, .dead_lettered, .diffs;
    summary_lines(summary) -> list[str]

`on_progress` receives `Progress(phase, done, total)` as publishing advances.
"""

from harness.replay.buses import MemoryReplayBus, ReplayBus, SqsReplayBus
from harness.replay.live import ReplaySummary, replay_file, replay_stream, stack_probes
from harness.replay.recorder import Recorder, RecordingPublisher
from harness.replay.runner import (
    Difference,
    Finding,
    Progress,
    RunResult,
    Subject,
    SubjectFactory,
    Verdict,
    check,
    differences,
    minimise,
    run,
)
from harness.replay.schedule import CLEAN, Adversity, Schedule, Step, plan, plans, poison_message
from harness.replay.stream import StreamWriter, read_stream, write_stream

__all__ = [
    "CLEAN",
    "Adversity",
    "Difference",
    "Finding",
    "MemoryReplayBus",
    "Progress",
    "Recorder",
    "RecordingPublisher",
    "ReplayBus",
    "ReplaySummary",
    "RunResult",
    "Schedule",
    "SqsReplayBus",
    "Step",
    "StreamWriter",
    "Subject",
    "SubjectFactory",
    "Verdict",
    "check",
    "differences",
    "minimise",
    "plan",
    "plans",
    "poison_message",
    "read_stream",
    "replay_file",
    "replay_stream",
    "run",
    "stack_probes",
    "write_stream",
]
