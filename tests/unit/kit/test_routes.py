"""The kit's routing helpers: the routing-table wrappers every consumer uses."""

from __future__ import annotations

from generated.events import catalog
from services.kit.bus import Delivery, Handler
from services.kit.consumer import subscribe_routes
from services.kit.events import Event
from services.kit.idempotency import self_recording_routes
from tests import factories


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

    created = catalog.USER_CREATED
    routes = self_recording_routes({created: effect})
    consumer = Subscriptions()
    subscribe_routes(consumer, routes)
    event = factories.user_created()

    await consumer.handlers[created](event, Delivery("q", "m-1", 1))
    assert await routes[created].apply(event) is False  # the delivery above applied it
    assert set(consumer.handlers) == {created}
