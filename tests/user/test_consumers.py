"""The `user.created` and `user.deactivated` handlers, on SQLite and PostgreSQL: idempotent on
`eventId`, independent of the order of delivery, and erasing personal data for good."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.kit.events import Event
from services.user import consumers
from services.user.domain import Address
from services.user.storage import SqlUserStore, processed_events
from tests import factories

Apply = Callable[[Event], Awaitable[bool]]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlUserStore]:
    store = SqlUserStore(database_url)
    await store.migrate()
    yield store
    await store.dispose()


@pytest.fixture
def apply(store: SqlUserStore) -> Apply:
    """Deliver one event to its handler, as the consumer does; false for a duplicate."""
    by_type = consumers.event_handlers(store, lambda: datetime.now(UTC))

    async def deliver(event: Event) -> bool:
        return await by_type[event.eventType].apply(event)

    return deliver


@dataclass(frozen=True)
class Outcome:
    """What a user's profile looks like from the outside, timestamps aside."""

    status: str | None
    email: str | None
    names: tuple[str | None, ...]
    addresses: int


async def outcome(store: SqlUserStore, user_id: uuid.UUID) -> Outcome:
    profile = await store.profiles.get(user_id)
    if profile is None:
        return Outcome(None, None, (), 0)
    names = (profile.display_name, profile.first_name, profile.last_name, profile.phone)
    addresses = len(await store.profiles.addresses(user_id))
    return Outcome(profile.status.value, profile.email, names, addresses)


TOMBSTONE = Outcome("deactivated", None, (None, None, None, None), 0)


def orderings() -> list[tuple[str, ...]]:
    """Every order of delivering `created` c times and `deactivated` d times, c, d in 1..3."""
    found = []
    for created, deactivated in itertools.product(range(1, 4), repeat=2):
        total = created + deactivated
        for positions in itertools.combinations(range(total), created):
            order = ["deactivated"] * total
            for position in positions:
                order[position] = "created"
            found.append(tuple(order))
    return found


async def processed(store: SqlUserStore, *events: Event) -> int:
    async with store.sessions() as session:
        count = await session.execute(
            select(func.count())
            .select_from(processed_events)
            .where(processed_events.c.event_id.in_([event.eventId for event in events]))
        )
        return int(count.scalar_one())


async def test_every_order_of_created_and_deactivated_delivered_one_to_three_times_ends_alike(
    store: SqlUserStore, apply: Apply
) -> None:
    every_order = orderings()
    assert len(every_order) == 62
    outcomes: dict[tuple[str, ...], Outcome] = {}
    for order in every_order:
        user_id = uuid.uuid4()
        created = factories.user_created(user_id, sequence=1, email="ada@example.com")
        deactivated = factories.user_deactivated(user_id, sequence=2)
        applied = [await apply(created if kind == "created" else deactivated) for kind in order]
        outcomes[order] = await outcome(store, user_id)
        assert await processed(store, created, deactivated) == 2
        assert sum(applied) == 2  # each event is taken once; its duplicates are absorbed

    assert set(outcomes.values()) == {TOMBSTONE}


async def test_a_duplicate_user_created_is_absorbed(store: SqlUserStore, apply: Apply) -> None:
    event = factories.user_created(email="ada@example.com")

    results = [await apply(event) for _ in range(3)]

    assert results == [True, False, False]
    assert (await outcome(store, event.userId)).email == "ada@example.com"
    assert await processed(store, event) == 1


async def test_deactivation_erases_names_phone_and_addresses(
    store: SqlUserStore, apply: Apply
) -> None:
    user_id = uuid.uuid4()
    await apply(factories.user_created(user_id))
    now = datetime.now(UTC)
    await store.profiles.update(
        user_id,
        {"display_name": "Ada", "first_name": "Ada", "last_name": "L", "phone": "+447700900123"},
        now,
    )
    for label in ("Home", "Work"):
        await store.profiles.add_address(
            Address(
                uuid.uuid4(), user_id, label, "1 St", None, "London", None, "N1", "GB", now, now
            )
        )
    assert (await outcome(store, user_id)).addresses == 2

    await apply(factories.user_deactivated(user_id))

    assert await outcome(store, user_id) == TOMBSTONE
    profile = await store.profiles.get(user_id)
    assert profile is not None
    assert profile.last_sequence == 2


async def test_a_newer_user_created_updates_the_email_and_an_older_one_does_not(
    store: SqlUserStore, apply: Apply
) -> None:
    user_id = uuid.uuid4()

    await apply(factories.user_created(user_id, sequence=5, email="new@example.com"))
    await apply(factories.user_created(user_id, sequence=3, email="old@example.com"))
    after_stale = await outcome(store, user_id)
    await apply(factories.user_created(user_id, sequence=7, email="newest@example.com"))

    assert after_stale.email == "new@example.com"
    assert (await outcome(store, user_id)).email == "newest@example.com"


@pytest.mark.parametrize("deactivated_first", [True, False], ids=["deactivated-first", "last"])
async def test_deactivation_is_final_even_when_numbered_below_the_creation(
    store: SqlUserStore, apply: Apply, deactivated_first: bool
) -> None:
    user_id = uuid.uuid4()
    created = factories.user_created(user_id, sequence=5)
    deactivated = factories.user_deactivated(user_id, sequence=3)

    for event in (deactivated, created) if deactivated_first else (created, deactivated):
        await apply(event)

    assert await outcome(store, user_id) == TOMBSTONE


async def test_events_about_one_user_handled_at_once_still_end_in_a_tombstone(
    store: SqlUserStore, apply: Apply
) -> None:
    users = [uuid.uuid4() for _ in range(10)]
    deliveries: list[Event] = []
    for user_id in users:
        created = factories.user_created(user_id, sequence=1)
        deactivated = factories.user_deactivated(user_id, sequence=2)
        deliveries += [created, deactivated, created, deactivated]

    results = await asyncio.gather(*(apply(event) for event in deliveries), return_exceptions=True)

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert {await outcome(store, user_id) for user_id in users} == {TOMBSTONE}


# --- any history, any order (hypothesis) -----------------------------------------------------


@dataclass(frozen=True)
class History:
    """Events about one user with distinct sequences (in any relation to each other), and an
    order of delivering them, with duplicates."""

    created: tuple[tuple[int, str], ...]  # (sequence, email)
    deactivated: int | None
    deliveries: tuple[int, ...]  # indexes into the events, created first


@st.composite
def histories(draw: st.DrawFn) -> History:
    created_count = draw(st.integers(min_value=0, max_value=3))
    deactivated = draw(st.booleans()) or created_count == 0
    total = created_count + int(deactivated)
    sequences = draw(
        st.lists(
            st.integers(min_value=1, max_value=40), min_size=total, max_size=total, unique=True
        )
    )
    created = tuple((sequences[i], f"e{sequences[i]}@example.com") for i in range(created_count))
    copies = [draw(st.integers(min_value=1, max_value=3)) for _ in range(total)]
    deliveries = [index for index, count in enumerate(copies) for _ in range(count)]
    order = draw(st.permutations(deliveries))
    return History(created, sequences[-1] if deactivated else None, tuple(order))


def expected(history: History) -> Outcome:
    if history.deactivated is not None:
        return TOMBSTONE
    newest = max(history.created)
    return Outcome("active", newest[1], (None, None, None, None), 0)


@given(history=histories())
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_any_history_delivered_in_any_order_with_duplicates_ends_as_its_events_say(
    store: SqlUserStore, apply: Apply, history: History
) -> None:
    user_id = uuid.uuid4()
    events: list[Event] = [
        *(factories.user_created(user_id, sequence=s, email=e) for s, e in history.created),
        *(
            [factories.user_deactivated(user_id, sequence=history.deactivated)]
            if history.deactivated is not None
            else []
        ),
    ]

    for index in history.deliveries:
        await apply(events[index])

    assert await outcome(store, user_id) == expected(history)
    assert await processed(store, *events) == len(events)
