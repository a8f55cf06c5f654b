"""The user handlers against in-memory fakes of their ports (`tests/user/fakes.py`): what the
auth service's events make of a profile in any order, and what the HTTP use cases allow,
without a database. Delivery through the kit's `IdempotentHandler` (duplicates, concurrent
deliveries) is tested on SQLite and PostgreSQL in test_consumers.py and test_event_delivery.py.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.user import handlers
from services.user.domain import (
    ADMIN,
    Caller,
    CreateAddress,
    ListProfiles,
    ProfileDeactivatedError,
    ProfileNotFoundError,
    ProfilePendingError,
    ProfileStatus,
    UpdateProfile,
    UserCreated,
    UserDeactivated,
)
from services.user.roles import InMemoryRolesClient
from tests.user.fakes import FakeProfiles

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def profiles() -> FakeProfiles:
    return FakeProfiles()


@pytest.fixture
def roles() -> InMemoryRolesClient:
    return InMemoryRolesClient()


@pytest.fixture
def deps(profiles: FakeProfiles, roles: InMemoryRolesClient) -> handlers.Dependencies:
    return handlers.Dependencies(profiles=profiles, roles=roles, clock=lambda: NOW)


def owner(user_id: uuid.UUID) -> Caller:
    return Caller(user_id, frozenset({"user"}))


def new_address(user_id: uuid.UUID) -> CreateAddress:
    return CreateAddress(user_id, "home", "1 Main St", "Springfield", "12345", "US")


async def test_user_created_makes_the_profile_and_an_older_or_repeated_one_changes_nothing(
    profiles: FakeProfiles,
) -> None:
    user_id = uuid.uuid4()

    assert await handlers.record_user_created(UserCreated(user_id, "b@x.test", 3), profiles, NOW)
    assert not await handlers.record_user_created(
        UserCreated(user_id, "b@x.test", 3), profiles, NOW
    )
    assert not await handlers.record_user_created(
        UserCreated(user_id, "a@x.test", 2), profiles, NOW
    )

    profile = profiles.profiles[user_id]
    assert (profile.email, profile.last_sequence, profile.status) == (
        "b@x.test",
        3,
        ProfileStatus.ACTIVE,
    )


async def test_every_order_of_delivery_leaves_the_same_tombstone(profiles: FakeProfiles) -> None:
    user_id = uuid.uuid4()
    created = UserCreated(user_id, "ada@example.com", 1)
    deactivated = UserDeactivated(user_id, 2)
    outcomes: set[tuple[ProfileStatus, str | None, int]] = set()
    events: list[UserCreated | UserDeactivated] = [created, deactivated, created]
    for order in itertools.permutations(events):
        ledger = FakeProfiles()
        for event in order:
            if isinstance(event, UserCreated):
                await handlers.record_user_created(event, ledger, NOW)
            else:
                await handlers.record_user_deactivated(event, ledger, NOW)
        profile = ledger.profiles[user_id]
        outcomes.add((profile.status, profile.email, profile.last_sequence))

    assert outcomes == {(ProfileStatus.DEACTIVATED, None, 2)}


async def test_a_deactivation_erases_the_personal_data_and_the_addresses(
    profiles: FakeProfiles, deps: handlers.Dependencies
) -> None:
    user_id = uuid.uuid4()
    await handlers.record_user_created(UserCreated(user_id, "ada@example.com", 1), profiles, NOW)
    await handlers.update_profile(
        owner(user_id), UpdateProfile(user_id, {"display_name": "Ada"}), deps
    )
    await handlers.create_address(owner(user_id), new_address(user_id), deps)

    assert await handlers.record_user_deactivated(UserDeactivated(user_id, 2), profiles, NOW)
    assert not await handlers.record_user_deactivated(UserDeactivated(user_id, 2), profiles, NOW)

    profile = profiles.profiles[user_id]
    assert (profile.email, profile.display_name) == (None, None)
    assert profiles.saved_addresses == {}


async def test_a_deactivated_profile_refuses_changes_and_new_addresses(
    profiles: FakeProfiles, deps: handlers.Dependencies
) -> None:
    user_id = uuid.uuid4()
    await handlers.record_user_created(UserCreated(user_id, "ada@example.com", 1), profiles, NOW)
    await handlers.record_user_deactivated(UserDeactivated(user_id, 2), profiles, NOW)

    with pytest.raises(ProfileDeactivatedError):
        await handlers.update_profile(
            owner(user_id), UpdateProfile(user_id, {"display_name": "Ada"}), deps
        )
    with pytest.raises(ProfileDeactivatedError):
        await handlers.create_address(owner(user_id), new_address(user_id), deps)
    tombstone = await handlers.get_profile(owner(user_id), user_id, deps)
    assert tombstone.status is ProfileStatus.DEACTIVATED


async def test_a_missing_profile_is_pending_when_the_user_is_known_and_not_found_otherwise(
    roles: InMemoryRolesClient, deps: handlers.Dependencies
) -> None:
    admin = Caller(uuid.uuid4(), frozenset({ADMIN}))
    roles.set(admin.user_id, {ADMIN})
    registered, unknown = uuid.uuid4(), uuid.uuid4()
    roles.set(registered, {"user"})  # the auth service knows it; user.created is in flight

    with pytest.raises(ProfilePendingError):
        await handlers.get_profile(owner(unknown), unknown, deps)  # the caller is that user
    with pytest.raises(ProfilePendingError):
        await handlers.get_profile(admin, registered, deps)
    with pytest.raises(ProfileNotFoundError):
        await handlers.get_profile(admin, unknown, deps)


async def test_profiles_are_listed_in_creation_order_a_page_at_a_time(
    profiles: FakeProfiles, deps: handlers.Dependencies
) -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    for minutes, user_id in enumerate(ids):
        at = NOW + timedelta(minutes=minutes)
        await handlers.record_user_created(UserCreated(user_id, "a@x.test", 1), profiles, at)

    first = await handlers.list_profiles(ListProfiles(limit=2), deps)
    assert first.next is not None
    second = await handlers.list_profiles(ListProfiles(limit=2, after=first.next), deps)

    assert [p.id for p in [*first.items, *second.items]] == ids
    assert second.next is None
