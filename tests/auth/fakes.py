"""In-memory fakes of the auth handlers' ports, for handler tests without a database.

Test-only (nothing in the harness's in-memory stack uses them: it runs the real SQL adapters
on SQLite), hence here rather than in `services/auth`. The unit of work is transactional the
way the SQL one is: it works on a copy of the committed state and publishes that copy, and
the events it recorded, only on `commit`; leaving without committing discards both.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Coroutine, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from services.auth.domain import (
    Account,
    AccountStatus,
    DomainEvent,
    EmailTakenError,
    RefreshTokenRecord,
    SingleUseTokenRecord,
    TokenPurpose,
    email_key,
)


@dataclass
class AuthState:
    """What the database holds: the tables the auth handlers use, and each user's sequence."""

    accounts: dict[uuid.UUID, Account] = field(default_factory=dict)
    refresh_tokens: dict[uuid.UUID, RefreshTokenRecord] = field(default_factory=dict)
    # token hash → the record and when it was used (None: not yet)
    single_use_tokens: dict[str, tuple[SingleUseTokenRecord, datetime | None]] = field(
        default_factory=dict
    )
    sequences: dict[uuid.UUID, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedEvent:
    """An event the outbox would hold, with the sequence it was given."""

    event: DomainEvent
    sequence: int


class FakeAccounts:
    def __init__(self, state: AuthState) -> None:
        self.state = state

    async def add(self, account: Account) -> None:
        key = email_key(account.email)
        if any(email_key(a.email) == key for a in self.state.accounts.values()):
            raise EmailTakenError
        self.state.accounts[account.id] = account
        self.state.sequences[account.id] = 0

    async def get(self, user_id: uuid.UUID) -> Account | None:
        return self.state.accounts.get(user_id)

    async def by_email(self, email: str, *, lock: bool = False) -> Account | None:
        key = email_key(email)
        return next((a for a in self.state.accounts.values() if email_key(a.email) == key), None)

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        self._change(user_id, password_hash=password_hash)

    async def replace_password_hash(self, user_id: uuid.UUID, old: str, new: str) -> bool:
        account = self.state.accounts.get(user_id)
        if account is None or account.password_hash != old:
            return False
        self._change(user_id, password_hash=new)
        return True

    async def mark_email_verified(self, user_id: uuid.UUID) -> None:
        self._change(user_id, email_verified=True)

    async def deactivate(self, user_id: uuid.UUID, at: datetime) -> bool:
        account = self.state.accounts.get(user_id)
        if account is None or account.status is not AccountStatus.ACTIVE:
            return False
        self._change(user_id, status=AccountStatus.DEACTIVATED)
        return True

    async def set_roles(self, user_id: uuid.UUID, roles: frozenset[str]) -> bool:
        return self._change(user_id, roles=roles)

    def _change(self, user_id: uuid.UUID, **changes: Any) -> bool:
        account = self.state.accounts.get(user_id)
        if account is None:
            return False
        self.state.accounts[user_id] = replace(account, **changes)
        return True


class FakeRefreshTokens:
    def __init__(self, state: AuthState) -> None:
        self.state = state

    async def add(self, record: RefreshTokenRecord) -> None:
        self.state.refresh_tokens[record.id] = record

    async def by_hash(self, token_hash: str) -> RefreshTokenRecord | None:
        tokens = self.state.refresh_tokens.values()
        return next((r for r in tokens if r.token_hash == token_hash), None)

    async def spend(self, token_id: uuid.UUID, at: datetime) -> bool:
        record = self.state.refresh_tokens.get(token_id)
        if record is None or record.spent_at is not None or record.revoked_at is not None:
            return False
        self.state.refresh_tokens[token_id] = replace(record, spent_at=at)
        return True

    async def revoke_family(self, family_id: uuid.UUID, at: datetime) -> None:
        self._revoke(lambda r: r.family_id == family_id, at)

    async def revoke_all(self, user_id: uuid.UUID, at: datetime) -> None:
        self._revoke(lambda r: r.user_id == user_id, at)

    def _revoke(self, which: Any, at: datetime) -> None:
        for key, record in list(self.state.refresh_tokens.items()):
            if which(record) and record.revoked_at is None:
                self.state.refresh_tokens[key] = replace(record, revoked_at=at)


class FakeSingleUseTokens:
    def __init__(self, state: AuthState) -> None:
        self.state = state

    async def add(self, record: SingleUseTokenRecord) -> None:
        self.state.single_use_tokens[record.token_hash] = (record, None)

    async def usable(
        self, token_hash: str, purpose: TokenPurpose, at: datetime
    ) -> uuid.UUID | None:
        found = self.state.single_use_tokens.get(token_hash)
        if found is None:
            return None
        record, used_at = found
        if record.purpose is not purpose or used_at is not None or record.expires_at <= at:
            return None
        return record.user_id

    async def spend(self, token_hash: str, purpose: TokenPurpose, at: datetime) -> uuid.UUID | None:
        user_id = await self.usable(token_hash, purpose, at)
        if user_id is not None:
            record, _ = self.state.single_use_tokens[token_hash]
            self.state.single_use_tokens[token_hash] = (record, at)
        return user_id

    async def discard_all(self, user_id: uuid.UUID, purpose: TokenPurpose, at: datetime) -> None:
        for key, (record, used_at) in list(self.state.single_use_tokens.items()):
            if record.user_id == user_id and record.purpose is purpose and used_at is None:
                self.state.single_use_tokens[key] = (record, at)


class FakeAuthDatabase:
    """The committed state, the events committed to the outbox, and a factory of units of
    work over them (`handlers.Dependencies.unit_of_work`)."""

    def __init__(self) -> None:
        self.state = AuthState()
        self.events: list[RecordedEvent] = []
        self.commits = 0

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    def events_of(self, kind: type[Any]) -> list[RecordedEvent]:
        return [recorded for recorded in self.events if isinstance(recorded.event, kind)]


class FakeUnitOfWork:
    """`UnitOfWork` over a copy of the committed state; `commit` publishes the copy."""

    def __init__(self, database: FakeAuthDatabase) -> None:
        self._database = database

    async def __aenter__(self) -> Self:
        self._state = copy.deepcopy(self._database.state)
        self._recorded: list[RecordedEvent] = []
        self.accounts = FakeAccounts(self._state)
        self.refresh_tokens = FakeRefreshTokens(self._state)
        self.single_use_tokens = FakeSingleUseTokens(self._state)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._recorded = []  # uncommitted events are rolled back with the changes

    async def record(self, event: DomainEvent) -> None:
        sequence = self._state.sequences[event.user_id] + 1  # KeyError: no such account
        self._state.sequences[event.user_id] = sequence
        self._recorded.append(RecordedEvent(event, sequence))

    async def commit(self) -> None:
        self._database.state = copy.deepcopy(self._state)
        self._database.events.extend(self._recorded)
        self._database.commits += 1
        self._recorded = []


class PlainPasswords:
    """`PasswordHasher` without the cost: a password's "hash" is itself, marked."""

    async def hash(self, password: str) -> str:
        return f"plain:{password}"

    async def verify(self, password_hash: str, password: str) -> bool:
        return password_hash == f"plain:{password}"

    async def verify_nothing(self, password: str) -> None:
        return None

    def needs_rehash(self, password_hash: str) -> bool:
        return False


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int


class NamedAccessTokens:
    """`AccessTokenIssuer` whose token names its subject and roles (nothing is signed)."""

    def issue(self, subject: str, roles: Sequence[str]) -> IssuedToken:
        return IssuedToken(f"access:{subject}:{','.join(roles)}", 900)


class CountingLimiter:
    """`RateLimiter` that counts attempts but never refuses (limits have their own tests)."""

    def __init__(self) -> None:
        self.taken: list[tuple[str, str]] = []
        self.refunded: list[int] = []

    async def take(self, attempts: Sequence[tuple[str, str]]) -> Sequence[int]:
        start = len(self.taken)
        self.taken.extend(attempts)
        return list(range(start, len(self.taken)))

    async def refund(self, receipts: Sequence[int]) -> None:
        self.refunded.extend(receipts)

    async def reset(self, limit: str, subject: str) -> None:
        return None


class NoInFlightCap:
    """`InFlightLimiter` that always has a slot."""

    def hold(self, slots: Sequence[tuple[str, str]]) -> AbstractContextManager[None]:
        return nullcontext()


class DeferredWork:
    """`BackgroundWork` that keeps the work until the test runs it (`run_all`)."""

    def __init__(self) -> None:
        self.pending: list[Coroutine[Any, Any, None]] = []

    def __call__(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        self.pending.append(work)

    async def run_all(self) -> None:
        while self.pending:
            await self.pending.pop(0)
