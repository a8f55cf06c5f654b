"""`QueueConsumer.stop()` does not wait for a long poll: it cancels it (so Ctrl-C on `accord up`
is not held by the consumers' polls), and a receive that answers as it is cancelled is still
handled. The queue here is a fake whose receive ends only when the test says so."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from services.kit.bus import Delivery, ReceivedMessage
from services.kit.consumer import ConsumerOptions, QueueConsumer
from services.kit.events import Event, encode
from tests import factories

# A hang guard, not a claim about speed: the fake's poll never ends by itself.
GUARD = 30.0


class HeldPoll:
    """A `MessageQueue` whose receive waits until `answer` is called, or until cancelled."""

    name = "held-poll"

    def __init__(self) -> None:
        self.polling = asyncio.Event()
        self.cancelled = 0
        self.deleted: list[str] = []
        self._answer: asyncio.Future[list[ReceivedMessage]] | None = None

    async def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        self._answer = asyncio.get_running_loop().create_future()
        self.polling.set()
        try:
            return await self._answer
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.polling.clear()

    def answer(self, messages: list[ReceivedMessage]) -> None:
        assert self._answer is not None
        self._answer.set_result(messages)

    async def delete(self, receipts: Sequence[str]) -> None:
        self.deleted.extend(receipts)

    async def retry_later(self, receipt: str, delay_seconds: int) -> None:
        raise AssertionError("nothing here fails")

    async def dead_letter(self, received: ReceivedMessage, reason: str) -> None:
        raise AssertionError(f"nothing here is dead-lettered ({reason})")

    async def max_receives(self) -> int | None:
        return None


def received(event: Event) -> ReceivedMessage:
    body = json.loads(encode(event).body)
    return ReceivedMessage(str(body["eventId"]), f"receipt-{body['eventId']}", encode(event), 1)


async def test_stop_cancels_a_pending_long_poll_instead_of_waiting_for_it() -> None:
    queue = HeldPoll()
    consumer = QueueConsumer(queue, ConsumerOptions(wait_seconds=20))
    await consumer.start()
    await asyncio.wait_for(queue.polling.wait(), GUARD)

    await asyncio.wait_for(consumer.stop(), GUARD)

    assert queue.cancelled == 1
    assert not consumer.running


async def test_messages_a_poll_returned_just_before_stop_are_handled_and_deleted() -> None:
    queue = HeldPoll()
    handled: list[Event] = []

    async def handle(event: Event, delivery: Delivery) -> None:
        handled.append(event)

    consumer = QueueConsumer(queue, ConsumerOptions(wait_seconds=20))
    consumer.subscribe("user.created", handle)
    await consumer.start()
    await asyncio.wait_for(queue.polling.wait(), GUARD)
    event = factories.user_created()

    queue.answer([received(event)])  # the poll answers; the consumer has not resumed yet
    await asyncio.wait_for(consumer.stop(), GUARD)

    assert handled == [event]
    assert queue.deleted == [f"receipt-{event.eventId}"]
