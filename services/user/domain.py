"""The user service's domain: profiles, their addresses, who may see them, and how the events
from the auth service change them. Plain Python: no framework, no database, no generated
models.

Order independence lives here. Every event about a user carries a per-user `sequence`; a
profile remembers the highest one it applied (`last_sequence`), so a `user.created` that is
not newer changes nothing; and deactivation is final: nothing brings a tombstone back. The
visible outcome of any set of events is therefore the same in every order of delivery, with
any number of duplicates.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Final

ADMIN: Final = "admin"

# The profile fields a user may change, and the address fields that may be cleared (`null`).
PROFILE_FIELDS: Final = ("display_name", "first_name", "last_name", "phone")
ADDRESS_FIELDS: Final = ("label", "line1", "line2", "city", "region", "postal_code", "country")
CLEARABLE_ADDRESS_FIELDS: Final = frozenset({"line2", "region"})


class ProfileStatus(StrEnum):
    ACTIVE = "active"
    DEACTIVATED = "deactivated"


@dataclass(frozen=True)
class Profile:
    """A user's profile; a deactivated one is a tombstone with its personal data erased."""

    id: uuid.UUID
    email: str | None
    display_name: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    status: ProfileStatus
    # The `sequence` of the last event applied to this profile (0: none yet).
    last_sequence: int
    created_at: datetime
    updated_at: datetime

    @property
    def active(self) -> bool:
        return self.status is ProfileStatus.ACTIVE

    @classmethod
    def blank(cls, user_id: uuid.UUID, at: datetime) -> Profile:
        """A profile no event has been applied to yet."""
        return cls(user_id, None, None, None, None, None, ProfileStatus.ACTIVE, 0, at, at)


@dataclass(frozen=True)
class Address:
    """A postal address of a user."""

    id: uuid.UUID
    user_id: uuid.UUID
    label: str
    line1: str
    line2: str | None
    city: str
    region: str | None
    postal_code: str
    country: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Caller:
    """Who makes a request, as their verified access token says."""

    user_id: uuid.UUID
    roles: frozenset[str]


@dataclass(frozen=True)
class PagePosition:
    """Where a page of profiles ends: the (created_at, id) of its last profile."""

    created_at: datetime
    id: uuid.UUID


@dataclass(frozen=True)
class ProfilePage:
    """Profiles in (created_at, id) order, and where the next page starts (None: the last)."""

    items: Sequence[Profile]
    next: PagePosition | None


# --- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateProfile:
    """Change the given profile fields; a `None` value clears the field."""

    user_id: uuid.UUID
    changes: Mapping[str, str | None]


@dataclass(frozen=True)
class CreateAddress:
    user_id: uuid.UUID
    label: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class UpdateAddress:
    """Change the given address fields; only `line2` and `region` may be cleared."""

    user_id: uuid.UUID
    address_id: uuid.UUID
    changes: Mapping[str, str | None]


@dataclass(frozen=True)
class DeleteAddress:
    user_id: uuid.UUID
    address_id: uuid.UUID


@dataclass(frozen=True)
class ListProfiles:
    limit: int
    after: PagePosition | None = None


# --- events from the auth service, as this service reads them ---------------------------------


@dataclass(frozen=True)
class UserCreated:
    """An account was registered (`user.created`)."""

    user_id: uuid.UUID
    email: str
    sequence: int


@dataclass(frozen=True)
class UserDeactivated:
    """An account was closed (`user.deactivated`)."""

    user_id: uuid.UUID
    sequence: int


@dataclass(frozen=True)
class ProfileChange:
    """What applying an event does: the profile to store, and whether to delete addresses."""

    profile: Profile
    erase_addresses: bool = field(default=False)


def after_user_created(
    current: Profile | None, event: UserCreated, at: datetime
) -> ProfileChange | None:
    """The change `user.created` makes, or None if it makes none: the profile already
    reflects this event or a newer one, or it is a tombstone (nothing brings one back)."""
    if current is not None and (not current.active or event.sequence <= current.last_sequence):
        return None
    base = current if current is not None else Profile.blank(event.user_id, at)
    return ProfileChange(
        replace(base, email=event.email, last_sequence=event.sequence, updated_at=at)
    )


def after_user_deactivated(
    current: Profile | None, event: UserDeactivated, at: datetime
) -> ProfileChange | None:
    """The change `user.deactivated` makes: a tombstone, its personal data and addresses
    erased (made at once if `user.created` has not arrived yet); None for a tombstone.

    Deactivation is final, so it applies to an active profile whatever its sequence: the
    contract numbers it after the creation anyway, and if an event ever broke that rule,
    erasing is the outcome that does not depend on the order of delivery (nor keeps personal
    data of a closed account)."""
    if current is not None and not current.active:
        return None
    base = current if current is not None else Profile.blank(event.user_id, at)
    tombstone = replace(
        base,
        status=ProfileStatus.DEACTIVATED,
        email=None,
        display_name=None,
        first_name=None,
        last_name=None,
        phone=None,
        last_sequence=max(base.last_sequence, event.sequence),
        updated_at=at,
    )
    return ProfileChange(tombstone, erase_addresses=True)


# --- what can go wrong ------------------------------------------------------------------------


class UserServiceError(Exception):
    """A request the service refuses; `detail` says why, for the client."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ForbiddenError(UserServiceError):
    """The caller is neither the owner nor a confirmed admin."""


class ProfileNotFoundError(UserServiceError):
    """No such user is known."""

    def __init__(self, user_id: uuid.UUID) -> None:
        super().__init__(f"No profile has the id {user_id}.")


class ProfilePendingError(UserServiceError):
    """The user exists, but `user.created` has not been consumed yet."""

    def __init__(self, user_id: uuid.UUID) -> None:
        super().__init__(f"The profile {user_id} is being created; try again shortly.")


class ProfileDeactivatedError(UserServiceError):
    """The profile is a tombstone and cannot be changed."""

    def __init__(self, user_id: uuid.UUID) -> None:
        super().__init__(
            f"The profile {user_id} has been deactivated and can no longer be changed."
        )


class AddressNotFoundError(UserServiceError):
    def __init__(self, address_id: uuid.UUID) -> None:
        super().__init__(f"The user has no address with the id {address_id}.")


class DependencyUnavailableError(UserServiceError):
    """A service this one needs (the auth service) cannot be reached."""
