"""The consumer runtime shared by every queue adapter.

Receives batches of up to ten messages, with up to `receives` receive calls under way at once
(each takes the room it may fill, so together they stay within `max_in_flight`), runs them all
at once, deletes a batch's messages together (one `DeleteMessageBatch`) and each only after its
handler returned (so only after the handler's effect committed), and on failure
hides it for an exponentially growing delay so that the queue redelivers it later. A message
that fails on its last allowed receive, and any message that is not a valid event, goes to
the dead-letter queue with the reason; neither ever blocks the queue.

A service routes events with one table (`Routes`) from the catalog's event type to a
`RoutedHandler` (the generated `subscriptions` table of its receiver, each entry wrapped by
`services.kit.idempotency`), and subscribes it whole (`subscribe_routes`), so what a service
receives, and how each event is made idempotent, reads in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from services.kit.bus import Delivery, EventConsumer, Handler, MessageQueue, ReceivedMessage
from services.kit.events import Event, InvalidEventError, decode
from services.kit.tracing import (
    DEAD_LETTERED,
    DUPLICATE,
    HANDLED,
    RETRIED,
    Tracing,
    identify,
    record,
)

log = logging.getLogger("accord.consumer")

MAX_BATCH = 10  # the most SQS returns from one receive


class RoutedHandler(Protocol):
    """One entry of a routing table: what the consumer calls for a delivery, and `apply` for
    direct use (true if the event had its effect now, false if it had been applied before)."""

    async def __call__(self, event: Event, delivery: Delivery) -> bool | None:
        """Handle a delivery: false when it was a duplicate, absorbed (`apply`)."""
        ...

    async def apply(self, event: Event) -> bool: ...


class ConsumerObserver(Protocol):
    """Told what becomes of each message a `QueueConsumer` takes (`services.kit.metrics`)."""

    def received(self, queue: str, received: ReceivedMessage, event: Event | None) -> None:
        """A message was taken; `event` is None when it is not a valid event."""

    def handled(self, queue: str, event_type: str, seconds: float, *, duplicate: bool) -> None:
        """Its handler returned; `duplicate` when it said the event had been applied before."""

    def failed(self, queue: str, event_type: str, seconds: float) -> None: ...

    def dead_lettered(self, queue: str, event_type: str | None, reason: str) -> None:
        """It went to the dead-letter queue: `invalid`, `unrouted` or `retries_exhausted`."""


class Unobserved:
    """The `ConsumerObserver` of a consumer nobody observes."""

    def received(self, queue: str, received: ReceivedMessage, event: Event | None) -> None:
        pass

    def handled(self, queue: str, event_type: str, seconds: float, *, duplicate: bool) -> None:
        pass

    def failed(self, queue: str, event_type: str, seconds: float) -> None:
        pass

    def dead_lettered(self, queue: str, event_type: str | None, reason: str) -> None:
        pass


Routes: TypeAlias = Mapping[str, RoutedHandler]
"""A service's routing table: event type → the handler of that event type."""


def subscribe_routes(consumer: EventConsumer, routes: Routes) -> None:
    """Subscribe every entry of `routes` to `consumer`."""
    for kind, handler in routes.items():
        consumer.subscribe(kind, handler)


@dataclass(frozen=True)
class Backoff:
    """Delay before the n-th retry: `base * 2**(n-1)` seconds, at most `cap`."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, receive_count: int) -> int:
        return int(min(self.cap, self.base * 2 ** max(0, receive_count - 1)))


@dataclass(frozen=True)
class ConsumerOptions:
    """Tuning of a consumer: concurrency, long-poll wait, retry backoff."""

    max_in_flight: int = 20
    # Receive calls under way at once. One returns ten messages at most, once per round trip:
    # at 20 ms a call (AWS), one receive at a time caps a consumer near 500 messages a second.
    receives: int = 1
    wait_seconds: float = 20.0
    backoff: Backoff = Backoff()


class QueueConsumer:
    """Consumes events from one `MessageQueue` and dispatches them to subscribed handlers."""

    def __init__(
        self,
        queue: MessageQueue,
        options: ConsumerOptions | None = None,
        *,
        tracing: Tracing | None = None,
    ) -> None:
        self.queue = queue
        self.options = options or ConsumerOptions()
        # Each message is processed in a span, child of its producer's (`traceparent`).
        self.tracing = tracing or Tracing.off()
        self._handlers: dict[str, Handler] = {}
        self._stopping = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._reserved = 0  # room that receives under way may fill
        self._max_receives: int | None = None
        self.observer: ConsumerObserver = Unobserved()

    def subscribe(self, event_type: str, handler: Handler) -> None:
        if event_type in self._handlers:
            raise ValueError(f"{event_type} already has a handler on {self.queue.name}")
        self._handlers[event_type] = handler

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    async def start(self) -> None:
        if self.running:
            return
        self._max_receives = await self.queue.max_receives()
        self._stopping = asyncio.Event()
        self._runner = asyncio.create_task(self._run(), name=f"consumer:{self.queue.name}")

    async def stop(self) -> None:
        """Stop receiving, then wait for every message in flight to be handled and settled. A
        long poll under way is cut short, not waited for (`_receive`)."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner
            self._runner = None

    async def _run(self) -> None:
        slot_freed = asyncio.Event()
        receives = max(1, self.options.receives)
        try:
            await asyncio.gather(*(self._receive_loop(slot_freed) for _ in range(receives)))
        finally:
            if self._batches:
                await asyncio.gather(*self._batches, return_exceptions=True)

    async def _receive_loop(self, slot_freed: asyncio.Event) -> None:
        """Receive while there is room, alongside the consumer's other receive loops: each
        reserves the room its receive may fill, so together they never exceed the limit."""
        while not self._stopping.is_set():
            room = min(MAX_BATCH, self.options.max_in_flight - self._in_flight - self._reserved)
            if room <= 0:
                slot_freed.clear()
                await slot_freed.wait()
                continue
            self._reserved += room
            try:
                batch = await self._receive(room)
            except Exception:
                log.exception("receiving from %s failed; retrying in 1 s", self.queue.name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=1.0)
                continue
            finally:
                self._reserved -= room
                slot_freed.set()  # unused room is free again for the other loops
            if batch:
                self._in_flight += len(batch)
                task = asyncio.create_task(self._settle_batch(batch, slot_freed))
                self._batches.add(task)
                task.add_done_callback(self._batches.discard)

    async def _receive(self, room: int) -> list[ReceivedMessage]:
        """The next batch; nothing once the consumer is stopping. A long poll can wait up to
        `wait_seconds` for a message: stop does not wait for it but cancels it, and the queue
        gives back at once whatever a cancelled receive takes after all (`MessageQueue`)."""
        receiving = asyncio.ensure_future(self.queue.receive(room, self.options.wait_seconds))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            receiving.cancel()
            raise
        finally:
            stopping.cancel()
        if not receiving.done():
            receiving.cancel()
            await asyncio.wait({receiving})
        if receiving.cancelled():
            return []
        return receiving.result()  # what it took before the cancel arrived is handled

    async def _settle_batch(self, batch: list[ReceivedMessage], slot_freed: asyncio.Event) -> None:
        try:
            outcomes = await asyncio.gather(*(self._handle(received) for received in batch))
            done = [received.receipt for received, ok in zip(batch, outcomes, strict=True) if ok]
            if done:
                await self.queue.delete(done)
        except Exception:
            log.exception(
                "settling a batch from %s failed; it will be redelivered", self.queue.name
            )
        finally:
            self._in_flight -= len(batch)
            slot_freed.set()

    async def _handle(self, received: ReceivedMessage) -> bool:
        """Run the handler in the message's processing span; true when the message is done
        with and may be deleted."""
        with self.tracing.consuming(
            self.queue.name,
            received.message.attributes,
            message_id=received.message_id,
            receive_count=received.receive_count,
        ):
            return await self._process(received)

    async def _process(self, received: ReceivedMessage) -> bool:
        queue = self.queue.name
        try:
            event = decode(received.message)
        except InvalidEventError as error:
            self.observer.received(queue, received, None)
            await self._dead_letter(received, f"invalid message: {error.reason}", "invalid")
            return False
        self.observer.received(queue, received, event)
        identify(event.eventType, str(event.eventId))
        handler = self._handlers.get(event.eventType)
        if handler is None:
            await self._dead_letter(
                received,
                f"invalid message: no handler for {event.eventType} on {queue}",
                "unrouted",
            )
            return False
        delivery = Delivery(self.queue.name, received.message_id, received.receive_count)
        started = time.perf_counter()
        try:
            applied = await handler(event, delivery)
        except Exception as error:
            self.observer.failed(queue, event.eventType, time.perf_counter() - started)
            return await self._failed(received, event.eventType, error)
        elapsed = time.perf_counter() - started
        self.observer.handled(queue, event.eventType, elapsed, duplicate=applied is False)
        outcome = DUPLICATE if applied is False else HANDLED
        record(outcome, receive_count=received.receive_count)
        log.info(
            "handled %s %s from %s (receive %d)",
            event.eventType,
            event.eventId,
            self.queue.name,
            received.receive_count,
            extra={
                "event_type": event.eventType,
                "event_id": str(event.eventId),
                "outcome": outcome,
            },
        )
        return True

    async def _failed(self, received: ReceivedMessage, event_type: str, error: Exception) -> bool:
        count = received.receive_count
        reason = f"handler failed on receive {count}: {type(error).__name__}: {error}"
        if self._max_receives is not None and count >= self._max_receives:
            await self._dead_letter(received, reason, "retries_exhausted")
            return False
        delay = self.options.backoff.delay(count)
        record(RETRIED, receive_count=count, delay_seconds=delay, error_type=type(error).__name__)
        log.warning(
            "%s %s: %s; retrying in %d s",
            event_type,
            received.message_id,
            reason,
            delay,
            extra={"event_type": event_type, "outcome": RETRIED},
        )
        try:
            await self.queue.retry_later(received.receipt, delay)
        except Exception:
            log.exception("could not delay %s; the visibility timeout will", received.message_id)
        return False

    async def _dead_letter(self, received: ReceivedMessage, reason: str, kind: str) -> None:
        """Move the message to the dead-letter queue, saying so in one line with the reason
        (`kind` is the reason's class, for the metrics)."""
        try:
            await self.queue.dead_letter(received, reason)
        except Exception:
            log.exception(
                "could not dead-letter %s (%s); it stays on %s",
                received.message_id,
                reason,
                self.queue.name,
            )
            return
        event_type = received.message.attributes.get("eventType")
        self.observer.dead_lettered(self.queue.name, event_type, kind)
        record(DEAD_LETTERED, reason=" ".join(reason.split())[:500], kind=kind)
        log.error(
            "dead-lettered %s %s from %s: %s",
            received.message.attributes.get("eventType", "message"),
            received.message_id,
            self.queue.name,
            " ".join(reason.split()),  # one line, whatever the handler's error said
            extra={"event_type": event_type or "message", "outcome": DEAD_LETTERED},
        )
