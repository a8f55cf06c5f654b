"""A consumer with several receives under way: they share one in-flight limit, every message is
handled once, and each received batch is deleted in one call. The queue here is a fake whose
every receive takes a round trip."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import uuid
from collections.abc import Callable, Sequence

from services.kit.bus import Delivery, ReceivedMessage
from services.kit.consumer import ConsumerOptions, QueueConsumer
from services.kit.events import Event, encode
from tests import factories


class DistantQueue:
    """A `MessageQueue` of `count` events whose receives each take `latency` seconds; it keeps
    the most receives it had under way at once and every delete call. With `together`, the
    first receives wait (10 s at most) until that many are under way, so that a test need not
    count on timing to see them overlap."""

    name = "distant"

    def __init__(self, count: int, latency: float = 0.02, *, together: int = 1) -> None:
        self.latency = latency
        self.together = together
        self.all_there = asyncio.Event()
        self.waiting = [received(factories.user_created()) for _ in range(count)]
        self.under_way = 0
        self.most_under_way = 0
        self.deletes: list[list[str]] = []

    async def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        self.under_way += 1
        self.most_under_way = max(self.most_under_way, self.under_way)
        if self.under_way >= self.together:
            self.all_there.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_there.wait(), 10)
            await asyncio.sleep(self.latency)
        finally:
            self.under_way -= 1
        taken, self.waiting = self.waiting[:max_messages], self.waiting[max_messages:]
        return taken

    async def delete(self, receipts: Sequence[str]) -> None:
        self.deletes.append(list(receipts))

    async def retry_later(self, receipt: str, delay_seconds: int) -> None:
        raise AssertionError("nothing here fails")

    async def dead_letter(self, received: ReceivedMessage, reason: str) -> None:
        raise AssertionError(f"nothing here is dead-lettered ({reason})")

    async def max_receives(self) -> int | None:
        return None


def received(event: Event) -> ReceivedMessage:
    body = json.loads(encode(event).body)
    return ReceivedMessage(str(body["eventId"]), f"receipt-{body['eventId']}", encode(event), 1)


async def eventually(check: Callable[[], bool], seconds: float = 15.0) -> None:
    """Wait for `check` to hold (a bound on waiting, not an assertion about speed)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def test_several_receives_under_way_handle_every_message_once_and_delete_by_batch() -> None:
    queue = DistantQueue(200, together=4)
    handled: collections.Counter[uuid.UUID] = collections.Counter()

    async def handle(event: Event, delivery: Delivery) -> None:
        handled[event.eventId] += 1

    consumer = QueueConsumer(queue, ConsumerOptions(max_in_flight=40, receives=4))
    consumer.subscribe("user.created", handle)
    await consumer.start()
    await eventually(lambda: sum(handled.values()) == 200)
    await consumer.stop()

    assert queue.most_under_way == 4
    assert set(handled.values()) == {1}
    deleted = [receipt for call in queue.deletes for receipt in call]
    assert sorted(deleted) == sorted(f"receipt-{event_id}" for event_id in handled)
    assert all(len(call) <= 10 for call in queue.deletes)
    assert len(queue.deletes) == 20  # one call for each batch of ten


async def test_several_receives_never_take_more_than_the_in_flight_limit() -> None:
    queue = DistantQueue(100, latency=0.005)
    gate = asyncio.Event()
    in_progress = 0
    most_in_progress = 0
    handled = 0

    async def handle(event: Event, delivery: Delivery) -> None:
        nonlocal in_progress, most_in_progress, handled
        in_progress += 1
        most_in_progress = max(most_in_progress, in_progress)
        await gate.wait()
        in_progress -= 1
        handled += 1

    consumer = QueueConsumer(queue, ConsumerOptions(max_in_flight=25, receives=4))
    consumer.subscribe("user.created", handle)
    await consumer.start()
    await eventually(lambda: in_progress == 25)
    await asyncio.sleep(0.2)  # time for a fifth batch to be taken, if one could be
    held = most_in_progress
    gate.set()
    await eventually(lambda: handled == 100)
    await consumer.stop()

    assert held == 25
    assert most_in_progress == 25
