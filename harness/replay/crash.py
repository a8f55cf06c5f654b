"""A consumer that crashes between a message's effect and its acknowledgement.

`CrashingQueue` wraps the kit's `MessageQueue` under a real `QueueConsumer`. The handler runs
and commits its effect as usual; then, for a message published by a step marked `crash`, the
acknowledgement (the delete) is lost, exactly as when the process dies at that instant. The
queue redelivers the message once its visibility timeout lapses: on SQS that is the queue's
own (short) timeout; in memory the lapse is simulated at once (`release=True`), so that runs
stay quick and deterministic. Each step crashes once; its redelivery is acknowledged.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Collection, Sequence

from services.kit.bus import MessageQueue, ReceivedMessage

# The message attribute carrying a publish's step number, so that a crash can be aimed at
# one copy of an event (its copies share a body) and a run can count what was received.
STEP_ATTRIBUTE = "accordReplayStep"


def step_of(received: ReceivedMessage) -> int | None:
    value = received.message.attributes.get(STEP_ATTRIBUTE)
    return int(value) if value is not None and value.isdigit() else None


class CrashingQueue:
    """`MessageQueue` that loses the acknowledgement of the chosen steps' first handling."""

    def __init__(
        self,
        inner: MessageQueue,
        crash_steps: Collection[int],
        *,
        release: bool,
        short_poll: float | None = None,
    ) -> None:
        self.inner = inner
        self.short_poll = short_poll
        self.name = inner.name
        self.crash_steps = frozenset(crash_steps)
        self.release = release
        self.crashes = 0
        self.receives: Counter[int] = Counter()  # step -> times received
        # Messages done with: acknowledged or dead-lettered (a crashed one is not, yet).
        self.settled = 0
        self._crashed: set[int] = set()
        self._steps: dict[str, int] = {}  # receipt -> step
        self._halted = False

    def halt(self) -> None:
        """End the current wait for messages at once (the run is over; stop the consumer)."""
        self._halted = True

    async def _short_polls(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        # A consumer's stop cuts a long poll short, but what that poll took goes back to the
        # queue with one more receive, which would skew a replay's receive counts. Short polls
        # end cleanly as soon as the run is over.
        assert self.short_poll is not None
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while True:
            taken = await self.inner.receive(max_messages, 0)
            if taken or self._halted or asyncio.get_running_loop().time() >= deadline:
                return taken
            await asyncio.sleep(self.short_poll)

    async def receive(self, max_messages: int, wait_seconds: float) -> list[ReceivedMessage]:
        if self.short_poll is None:
            taken = await self.inner.receive(max_messages, wait_seconds)
        else:
            taken = await self._short_polls(max_messages, wait_seconds)
        for received in taken:
            step = step_of(received)
            if step is None:  # not one of the replay's messages
                continue
            self.receives[step] += 1
            self._steps[received.receipt] = step
        return taken

    async def delete(self, receipts: Sequence[str]) -> None:
        acknowledged = []
        for receipt in receipts:
            step = self._steps.pop(receipt, None)
            if step is not None and step in self.crash_steps and step not in self._crashed:
                self._crashed.add(step)
                self.crashes += 1
                if self.release:
                    await self.inner.retry_later(receipt, 0)
                continue
            acknowledged.append(receipt)
        if acknowledged:
            await self.inner.delete(acknowledged)
            self.settled += len(acknowledged)

    async def retry_later(self, receipt: str, delay_seconds: int) -> None:
        self._steps.pop(receipt, None)
        await self.inner.retry_later(receipt, delay_seconds)

    async def dead_letter(self, received: ReceivedMessage, reason: str) -> None:
        self._steps.pop(received.receipt, None)
        await self.inner.dead_letter(received, reason)
        self.settled += 1

    async def max_receives(self) -> int | None:
        return await self.inner.max_receives()
