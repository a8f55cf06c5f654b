"""What the auth handlers need from the outside world, named by role. Adapters implement
these: `storage` (SQL), `passwords` (Argon2id), `ratelimit` (SQL, and in-process caps), the
kit's JWT issuer, the app's background tasks."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from services.auth.domain import (
    Account,
    DomainEvent,
    RefreshTokenRecord,
    SingleUseTokenRecord,
    TokenPurpose,
)


class AccountRepository(Protocol):
    """Stores accounts; emails are unique case-insensitively."""

    async def add(self, account: Account) -> None:
        """Insert; `EmailTakenError` if the email is taken."""
        ...

    async def get(self, user_id: uuid.UUID) -> Account | None: ...

    async def by_email(self, email: str, *, lock: bool = False) -> Account | None:
        """The account with this email (compared by `email_key`); with `lock`, its row stays
        locked until the transaction ends, so that what was read (the account is active) still
        holds when the transaction writes."""
        ...

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None: ...

    async def replace_password_hash(self, user_id: uuid.UUID, old: str, new: str) -> bool:
        """Swap the hash only if it is still `old` (a rehash must not undo a reset)."""
        ...

    async def mark_email_verified(self, user_id: uuid.UUID) -> None: ...

    async def deactivate(self, user_id: uuid.UUID, at: datetime) -> bool:
        """Deactivate an active account; false if it was not active."""
        ...

    async def set_roles(self, user_id: uuid.UUID, roles: frozenset[str]) -> bool:
        """Replace the roles; false if there is no such account."""
        ...


class RefreshTokenRepository(Protocol):
    """Stores refresh tokens by hash, grouped in families (one per login)."""

    async def add(self, record: RefreshTokenRecord) -> None: ...

    async def by_hash(self, token_hash: str) -> RefreshTokenRecord | None:
        """The token, locked for this transaction where the database can."""
        ...

    async def spend(self, token_id: uuid.UUID, at: datetime) -> bool:
        """Mark an unspent, unrevoked token spent; false if it no longer was."""
        ...

    async def revoke_family(self, family_id: uuid.UUID, at: datetime) -> None: ...

    async def revoke_all(self, user_id: uuid.UUID, at: datetime) -> None: ...


class SingleUseTokenRepository(Protocol):
    """Stores verification and reset tokens by hash."""

    async def add(self, record: SingleUseTokenRecord) -> None: ...

    async def usable(
        self, token_hash: str, purpose: TokenPurpose, at: datetime
    ) -> uuid.UUID | None:
        """The token's user if it could be spent now, without spending it."""
        ...

    async def spend(self, token_hash: str, purpose: TokenPurpose, at: datetime) -> uuid.UUID | None:
        """Use an unexpired, unused token once; its user, or None if it cannot be used."""
        ...

    async def discard_all(self, user_id: uuid.UUID, purpose: TokenPurpose, at: datetime) -> None:
        """Make every outstanding token of this purpose unusable."""
        ...


class UnitOfWork(Protocol):
    """One transaction over the repositories and the outbox: all of it commits, or none."""

    @property
    def accounts(self) -> AccountRepository: ...

    @property
    def refresh_tokens(self) -> RefreshTokenRepository: ...

    @property
    def single_use_tokens(self) -> SingleUseTokenRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Roll back whatever was not committed."""
        ...

    async def record(self, event: DomainEvent) -> None:
        """Add the event to the outbox, in this transaction, with the user's next sequence."""
        ...

    async def commit(self) -> None:
        """Commit the changes and the recorded events together; the events are then
        published at once (the SQL unit of work wakes the outbox relay)."""
        ...


class UnitOfWorkFactory(Protocol):
    """Opens a new unit of work."""

    def __call__(self) -> UnitOfWork: ...


class PasswordHasher(Protocol):
    """Hashes and checks passwords (slowly, on purpose, and off the event loop)."""

    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...

    async def verify_nothing(self, password: str) -> None:
        """Spend the time a verification takes, for an unknown account."""
        ...

    def needs_rehash(self, password_hash: str) -> bool: ...


class IssuedAccessToken(Protocol):
    """A signed access token and its lifetime in seconds."""

    @property
    def token(self) -> str: ...

    @property
    def expires_in(self) -> int: ...


class AccessTokenIssuer(Protocol):
    """Signs access tokens."""

    def issue(self, subject: str, roles: Sequence[str]) -> IssuedAccessToken: ...


class RateLimiter(Protocol):
    """Counts attempts per (limit, subject) in a sliding window, shared by every replica."""

    async def take(self, attempts: Sequence[tuple[str, str]]) -> Sequence[int]:
        """Count one attempt against each (limit, subject), all or none: `RateLimitedError`
        with the longest wait if any is at its limit. Receipts for `refund`."""
        ...

    async def refund(self, receipts: Sequence[int]) -> None:
        """Take back attempts that turned out not to count (a successful login)."""
        ...

    async def reset(self, limit: str, subject: str) -> None: ...


class InFlightLimiter(Protocol):
    """Caps the work one subject may have in progress at once."""

    def hold(self, slots: Sequence[tuple[str, str]]) -> AbstractContextManager[None]:
        """One slot of each (cap, subject) for a block, or `RateLimitedError` at once."""
        ...


class BackgroundWork(Protocol):
    """Runs work after the answer has gone, so that how long it takes says nothing."""

    def __call__(self, work: Coroutine[Any, Any, None], *, name: str) -> None: ...
