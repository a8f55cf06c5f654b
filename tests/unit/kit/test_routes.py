"""The kit's routing helpers: event types named through the generated catalog, and the
routing-table wrappers every consumer uses."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from generated.events import models as events
from generated.events.catalog import MESSAGES
from services.kit.bus import Delivery, Handler
from services.kit.consumer import event_type, subscribe_routes
from services.kit.events import Event
from services.kit.idempotency import self_recording_routes
from tests import factories


def test_every_message_of_the_catalog_is_named_by_its_payload_model() -> None:
    assert {event_type(spec.payload): name for name, spec in MESSAGES.items()} == {
        name: name for name in MESSAGES
    }


def test_a_model_that_is_no_message_payload_is_refused() -> None:
    class NotAnEvent(BaseModel):
        pass

    with pytest.raises(LookupError, match="NotAnEvent"):
        event_type(NotAnEvent)


class Subscriptions:
    """An `EventConsumer` that only keeps what is subscribed."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}

    def subscribe(self, event_type: str, handler: Handler) -> None:
        self.handlers[event_type] = handler

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


async def test_a_self_recording_route_says_what_its_effect_says_and_is_subscribed() -> None:
    seen: set[object] = set()

    async def effect(event: Event) -> bool:
        new = event.eventId not in seen
        seen.add(event.eventId)
        return new

    created = event_type(events.UserCreatedPayload)
    routes = self_recording_routes({created: effect})
    consumer = Subscriptions()
    subscribe_routes(consumer, routes)
    event = factories.user_created()

    await consumer.handlers[created](event, Delivery("q", "m-1", 1))
    assert await routes[created].apply(event) is False  # the delivery above applied it
    assert set(consumer.handlers) == {created}
