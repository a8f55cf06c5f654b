"""In-memory fakes of the user handlers' storage ports, for handler tests without a database.

Test-only (the harness's in-memory stack runs the real SQL adapters on SQLite), hence here
rather than in `services/user`. One `FakeProfiles` is both ports over the same data, as the
SQL store is: `ProfileRepository` for the HTTP use cases (each method one transaction) and
`ProfileLedger` for the event handlers (in the real service, inside the transaction of the
kit's `IdempotentHandler`, which owns the commit and the processed-event record). The rules
of each method are those of `services/user/storage.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from services.user.domain import Address, PagePosition, Profile, ProfileStatus


class FakeProfiles:
    """`ProfileRepository` and `ProfileLedger` over two dictionaries."""

    def __init__(self) -> None:
        self.profiles: dict[uuid.UUID, Profile] = {}
        self.saved_addresses: dict[uuid.UUID, Address] = {}

    # --- ProfileLedger ------------------------------------------------------------------------

    async def lock(self, user_id: uuid.UUID, at: datetime) -> Profile | None:
        return self.profiles.get(user_id)

    async def save(self, profile: Profile) -> None:
        self.profiles[profile.id] = profile

    async def erase_addresses(self, user_id: uuid.UUID) -> None:
        for address in list(self.saved_addresses.values()):
            if address.user_id == user_id:
                del self.saved_addresses[address.id]

    # --- ProfileRepository --------------------------------------------------------------------

    async def get(self, user_id: uuid.UUID) -> Profile | None:
        return self.profiles.get(user_id)

    async def page(self, limit: int, after: PagePosition | None) -> Sequence[Profile]:
        ordered = sorted(self.profiles.values(), key=lambda p: (p.created_at, p.id))
        if after is not None:
            ordered = [p for p in ordered if (p.created_at, p.id) > (after.created_at, after.id)]
        return ordered[:limit]

    async def update(
        self, user_id: uuid.UUID, changes: Mapping[str, str | None], at: datetime
    ) -> Profile | None:
        profile = self.profiles.get(user_id)
        if profile is None or not profile.active:
            return None
        updated = replace(profile, **changes, updated_at=at)  # type: ignore[arg-type]
        self.profiles[user_id] = updated
        return updated

    async def addresses(self, user_id: uuid.UUID) -> Sequence[Address]:
        mine = [a for a in self.saved_addresses.values() if a.user_id == user_id]
        return sorted(mine, key=lambda a: (a.created_at, a.id))

    async def address(self, user_id: uuid.UUID, address_id: uuid.UUID) -> Address | None:
        address = self.saved_addresses.get(address_id)
        return address if address is not None and address.user_id == user_id else None

    async def add_address(self, address: Address) -> ProfileStatus | None:
        profile = self.profiles.get(address.user_id)
        if profile is None:
            return None
        if profile.active:
            self.saved_addresses[address.id] = address
        return profile.status

    async def update_address(
        self,
        user_id: uuid.UUID,
        address_id: uuid.UUID,
        changes: Mapping[str, str | None],
        at: datetime,
    ) -> Address | None:
        address = await self.address(user_id, address_id)
        if address is None:
            return None
        updated = replace(address, **changes, updated_at=at)  # type: ignore[arg-type]
        self.saved_addresses[address_id] = updated
        return updated

    async def delete_address(self, user_id: uuid.UUID, address_id: uuid.UUID) -> bool:
        if await self.address(user_id, address_id) is None:
            return False
        del self.saved_addresses[address_id]
        return True
