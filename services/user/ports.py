"""What the user service needs from the outside world, named by role. Adapters implement
these: `storage` (SQL), `roles` (the auth service over HTTP, or in memory), and the kit's
`TokenVerifier` behind `verification`'s cache."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from services.kit.tokens import AccessTokenClaims
from services.user.domain import Address, PagePosition, Profile, ProfileStatus


class ProfileRepository(Protocol):
    """Stores profiles and addresses; each method is one transaction."""

    async def get(self, user_id: uuid.UUID) -> Profile | None: ...

    async def page(self, limit: int, after: PagePosition | None) -> Sequence[Profile]:
        """Up to `limit` profiles in (created_at, id) order, after `after`."""
        ...

    async def update(
        self, user_id: uuid.UUID, changes: Mapping[str, str | None], at: datetime
    ) -> Profile | None:
        """Change an active profile; None if there is no active profile with this id."""
        ...

    async def addresses(self, user_id: uuid.UUID) -> Sequence[Address]:
        """The user's addresses, oldest first."""
        ...

    async def address(self, user_id: uuid.UUID, address_id: uuid.UUID) -> Address | None: ...

    async def add_address(self, address: Address) -> ProfileStatus | None:
        """Add the address if its profile is active; the profile's status (None: no profile),
        read under the same lock as the insert, so a deactivation cannot slip in between."""
        ...

    async def update_address(
        self,
        user_id: uuid.UUID,
        address_id: uuid.UUID,
        changes: Mapping[str, str | None],
        at: datetime,
    ) -> Address | None: ...

    async def delete_address(self, user_id: uuid.UUID, address_id: uuid.UUID) -> bool: ...


class ProfileLedger(Protocol):
    """The profiles as an event handler sees them, inside the transaction that records the
    event as processed. This is the event handlers' unit of work: the kit's
    `IdempotentHandler` opens that transaction, writes the `(consumer, eventId)` record and
    commits, so the handlers need no `commit` of their own."""

    async def lock(self, user_id: uuid.UUID, at: datetime) -> Profile | None:
        """The profile, locked until the transaction ends; None if no event made it yet."""
        ...

    async def save(self, profile: Profile) -> None: ...

    async def erase_addresses(self, user_id: uuid.UUID) -> None: ...


class AccessTokenVerifier(Protocol):
    """Verifies an access token: signature, issuer, audience, lifetime
    (`services.kit.tokens.TokenVerifier`)."""

    async def verify(self, token: str) -> AccessTokenClaims:
        """The token's claims; `InvalidTokenError` if it must be refused,
        `KeySourceUnavailableError` if the keys to decide cannot be had."""
        ...


class RolesClient(Protocol):
    """Asks the auth service for a user's roles: the authoritative answer, not a token's."""

    async def roles(self, user_id: uuid.UUID) -> frozenset[str] | None:
        """The user's roles; None if the auth service knows no such user;
        `DependencyUnavailableError` if it cannot answer."""
        ...

    async def reachable(self) -> bool:
        """Whether the auth service answers at all (the readiness probe)."""
        ...

    def evict(self, user_id: uuid.UUID) -> None:
        """Drop any cached answer about the user, whose account has just changed."""
        ...
