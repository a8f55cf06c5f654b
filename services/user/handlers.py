"""The user service's use cases: who may act on a user's profile, what a request does, and what
the auth service's events do. They see only the ports, so the same code runs against SQLite,
PostgreSQL or fakes.

Authorization follows the contract: the owner (the token's subject) may act on their own
profile from the token alone; anyone else needs the `admin` role, claimed by the token *and*
confirmed by the auth service, so a revoked admin is refused as soon as the roles cache
expires. When the auth service cannot answer, only the admin path fails (503). In the HTTP
API this rule is enforced before the use cases run, from each operation's `security` in the
contract (the generated router and the kit's `ConfirmedRoles`). The use cases take the caller
as authorized.

"Not yet" or "never": a profile that does not exist is *pending* (the `user.created` event is
still in flight) when the user is known to exist: the caller is that user, or the auth service
knows the id. Otherwise it is not found.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.user.domain import (
    Address,
    AddressNotFoundError,
    Caller,
    CreateAddress,
    DeleteAddress,
    ListProfiles,
    PagePosition,
    Profile,
    ProfileDeactivatedError,
    ProfileNotFoundError,
    ProfilePage,
    ProfilePendingError,
    ProfileStatus,
    UpdateAddress,
    UpdateProfile,
    UserCreated,
    UserDeactivated,
    UserServiceError,
    after_user_created,
    after_user_deactivated,
)
from services.user.ports import ProfileLedger, ProfileRepository, RolesClient


@dataclass(frozen=True)
class Dependencies:
    """The ports the HTTP use cases run against."""

    profiles: ProfileRepository
    roles: RolesClient
    clock: Callable[[], datetime]
    new_id: Callable[[], uuid.UUID] = field(default=uuid.uuid4)


async def _missing(caller: Caller, user_id: uuid.UUID, deps: Dependencies) -> UserServiceError:
    """Why there is no profile: pending if the user is known to exist, else not found."""
    if caller.user_id == user_id or await deps.roles.roles(user_id) is not None:
        return ProfilePendingError(user_id)
    return ProfileNotFoundError(user_id)


async def _profile(caller: Caller, user_id: uuid.UUID, deps: Dependencies) -> Profile:
    profile = await deps.profiles.get(user_id)
    if profile is None:
        raise await _missing(caller, user_id, deps)
    return profile


# --- profiles ---------------------------------------------------------------------------------


async def get_profile(caller: Caller, user_id: uuid.UUID, deps: Dependencies) -> Profile:
    """The profile (a tombstone included); the caller is authorized already."""
    return await _profile(caller, user_id, deps)


async def update_profile(caller: Caller, command: UpdateProfile, deps: Dependencies) -> Profile:
    updated = await deps.profiles.update(command.user_id, command.changes, deps.clock())
    if updated is not None:
        return updated
    current = await _profile(caller, command.user_id, deps)
    if current.active:
        # Created between the update and the read: update it now. A tombstone never becomes
        # active again, so if this fails too, the profile was deactivated meanwhile.
        updated = await deps.profiles.update(command.user_id, command.changes, deps.clock())
        if updated is not None:
            return updated
    raise ProfileDeactivatedError(command.user_id)


async def list_profiles(command: ListProfiles, deps: Dependencies) -> ProfilePage:
    """One page of every profile (tombstones included), in (created_at, id) order."""
    rows = await deps.profiles.page(command.limit + 1, command.after)
    items = list(rows[: command.limit])
    more = len(rows) > command.limit
    last = items[-1] if items else None
    following = PagePosition(last.created_at, last.id) if more and last is not None else None
    return ProfilePage(items, following)


# --- addresses --------------------------------------------------------------------------------


async def list_addresses(
    caller: Caller, user_id: uuid.UUID, deps: Dependencies
) -> Sequence[Address]:
    await _profile(caller, user_id, deps)
    return await deps.profiles.addresses(user_id)


async def create_address(caller: Caller, command: CreateAddress, deps: Dependencies) -> Address:
    at = deps.clock()
    address = Address(
        id=deps.new_id(),
        user_id=command.user_id,
        label=command.label,
        line1=command.line1,
        line2=command.line2,
        city=command.city,
        region=command.region,
        postal_code=command.postal_code,
        country=command.country,
        created_at=at,
        updated_at=at,
    )
    status = await deps.profiles.add_address(address)
    if status is None:
        raise await _missing(caller, command.user_id, deps)
    if status is ProfileStatus.DEACTIVATED:
        raise ProfileDeactivatedError(command.user_id)
    return address


async def get_address(user_id: uuid.UUID, address_id: uuid.UUID, deps: Dependencies) -> Address:
    address = await deps.profiles.address(user_id, address_id)
    if address is None:
        raise AddressNotFoundError(address_id)
    return address


async def update_address(command: UpdateAddress, deps: Dependencies) -> Address:
    address = await deps.profiles.update_address(
        command.user_id, command.address_id, command.changes, deps.clock()
    )
    if address is None:
        raise AddressNotFoundError(command.address_id)
    return address


async def delete_address(command: DeleteAddress, deps: Dependencies) -> None:
    if not await deps.profiles.delete_address(command.user_id, command.address_id):
        raise AddressNotFoundError(command.address_id)


# --- events -----------------------------------------------------------------------------------


async def record_user_created(event: UserCreated, ledger: ProfileLedger, at: datetime) -> bool:
    """Create the profile (unless a newer event or a deactivation got there first); true if
    the profile changed."""
    change = after_user_created(await ledger.lock(event.user_id, at), event, at)
    if change is None:
        return False
    await ledger.save(change.profile)
    return True


async def record_user_deactivated(
    event: UserDeactivated, ledger: ProfileLedger, at: datetime
) -> bool:
    """Turn the profile into a tombstone (making one if `user.created` has not arrived yet);
    true if the profile changed."""
    change = after_user_deactivated(await ledger.lock(event.user_id, at), event, at)
    if change is None:
        return False
    await ledger.save(change.profile)
    if change.erase_addresses:
        await ledger.erase_addresses(event.user_id)
    return True
