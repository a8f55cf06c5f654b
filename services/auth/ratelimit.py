"""`RateLimiter` in the auth database, and `InFlightLimiter` in this process.

`SqlRateLimiter` keeps a sliding-window log per (limit, subject) in the `rate_limit_events`
table, so every replica of the service counts against the same limits (PostgreSQL in
production, SQLite locally). Subjects (emails, addresses) are stored only as a SHA-256 of the
limit and the subject: no email or address in the clear (though a guessed one can be
confirmed against a digest).

Taking an attempt is check-and-count in one transaction, so concurrent requests cannot all
pass a check that only one of them should: on PostgreSQL each subject's transactions are
serialised by a transaction-scoped advisory lock; on SQLite the transaction opens with a write
(deleting the subject's expired attempts), which takes the database's single write lock at
once. On PostgreSQL expired attempts are left to the retention pass
(`services/auth/retention.py`): deleting them here too could deadlock with it.

`InFlightLimiter` bounds how many password hashes one account or one address may have running
at the same moment in this process. It lives in memory on purpose: a count of work in progress
kept in a shared store would leak whenever a process died mid-hash, and the shared attempt
count above already bounds the total number of hashes across replicas.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.auth import handlers
from services.auth.domain import RateLimitedError
from services.auth.settings import Settings


@dataclass(frozen=True)
class Limit:
    """At most `count` attempts in any `window` seconds."""

    count: int
    window: float


def limits_from_settings(settings: Settings) -> dict[str, Limit]:
    return {
        handlers.LOGIN_FAILURES_PER_ACCOUNT_ADDRESS: Limit(
            settings.login_failures_per_account_address, settings.login_failure_window_seconds
        ),
        handlers.LOGIN_FAILURES_PER_ADDRESS: Limit(
            settings.login_failures_per_address, settings.login_failure_window_seconds
        ),
        handlers.LOGIN_FAILURES_PER_ACCOUNT: Limit(
            settings.login_failures_per_account, settings.login_failure_window_seconds
        ),
        handlers.REGISTRATIONS_PER_ADDRESS: Limit(
            settings.registrations_per_address, settings.registration_window_seconds
        ),
        handlers.RESET_REQUESTS_PER_EMAIL: Limit(
            settings.reset_requests_per_email, settings.reset_request_window_seconds
        ),
        handlers.RESET_REQUESTS_PER_ADDRESS: Limit(
            settings.reset_requests_per_address, settings.reset_request_window_seconds
        ),
        handlers.VERIFICATION_REQUESTS_PER_ACCOUNT: Limit(
            settings.verification_requests_per_account,
            settings.verification_request_window_seconds,
        ),
    }


def in_flight_caps_from_settings(settings: Settings) -> dict[str, int]:
    return {
        handlers.HASHES_IN_FLIGHT_PER_ACCOUNT: settings.login_hashes_in_flight_per_account,
        handlers.HASHES_IN_FLIGHT_PER_ADDRESS: settings.login_hashes_in_flight_per_address,
    }


def subject_key(limit: str, subject: str) -> str:
    """What the table stores for (limit, subject): a digest, so no email or address is kept."""
    return hashlib.sha256(f"{limit}\0{subject}".encode()).hexdigest()


def _advisory_lock_id(key: str) -> int:
    # PostgreSQL advisory locks take a signed 64-bit integer.
    return int.from_bytes(bytes.fromhex(key[:16]), "big", signed=True)


class SqlRateLimiter:
    """Counts attempts per (limit, subject) in a sliding window, in the service's database."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        limits: Mapping[str, Limit],
        *,
        dialect: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._postgres = dialect == "postgresql"
        self._table = table
        self._limits = dict(limits)
        self._clock = clock

    def _limit(self, limit: str) -> Limit:
        try:
            return self._limits[limit]
        except KeyError:
            raise ValueError(f"no rate limit named {limit!r}") from None

    async def take(self, attempts: Sequence[tuple[str, str]]) -> tuple[int, ...]:
        t = self._table
        now = self._clock()
        wanted = sorted({(subject_key(limit, subject), limit) for limit, subject in attempts})
        async with self._sessions() as session, session.begin():
            for key, limit in wanted:  # in a fixed order, so two takers cannot deadlock
                if self._postgres:
                    await session.execute(
                        text("SELECT pg_advisory_xact_lock(:id)"), {"id": _advisory_lock_id(key)}
                    )
                else:  # a write first: it takes SQLite's write lock before anything is read
                    window = timedelta(seconds=self._limit(limit).window)
                    await session.execute(delete(t).where(t.c.key == key, t.c.at <= now - window))
            waits = [
                wait
                for key, limit in wanted
                if (wait := await self._wait(session, key, self._limit(limit), now)) is not None
            ]
            if waits:
                raise RateLimitedError(max(waits))  # nothing is counted: the block rolls back
            receipts = []
            for key, limit in wanted:
                result = await session.execute(
                    insert(t).values(key=key, limit_name=limit, at=now).returning(t.c.id)
                )
                receipts.append(int(result.scalar_one()))
        return tuple(receipts)

    async def _wait(
        self, session: AsyncSession, key: str, rule: Limit, now: datetime
    ) -> float | None:
        t = self._table
        # The attempt that must leave the window before another fits: the count-th newest.
        statement = (
            select(t.c.at)
            .where(t.c.key == key, t.c.at > now - timedelta(seconds=rule.window))
            .order_by(t.c.at.desc())
            .limit(1)
            .offset(rule.count - 1)
        )
        blocking: datetime | None = (await session.execute(statement)).scalar_one_or_none()
        if blocking is None:
            return None
        return max(0.0, (blocking + timedelta(seconds=rule.window) - now).total_seconds())

    async def refund(self, receipts: Sequence[int]) -> None:
        if not receipts:
            return
        async with self._sessions() as session, session.begin():
            await session.execute(delete(self._table).where(self._table.c.id.in_(receipts)))

    async def reset(self, limit: str, subject: str) -> None:
        self._limit(limit)
        key = subject_key(limit, subject)
        async with self._sessions() as session, session.begin():
            await session.execute(delete(self._table).where(self._table.c.key == key))

    async def count(self, limit: str, subject: str) -> int:
        """Attempts in the window now (for tests and operators)."""
        rule = self._limit(limit)
        t = self._table
        since = self._clock() - timedelta(seconds=rule.window)
        async with self._sessions() as session:
            statement = select(func.count()).where(
                t.c.key == subject_key(limit, subject), t.c.at > since
            )
            return int((await session.execute(statement)).scalar_one())


class InFlightLimiter:
    """Caps the work one subject may have in progress at once, in this process."""

    def __init__(self, caps: Mapping[str, int]) -> None:
        self._caps = dict(caps)
        self._running: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, slots: Sequence[tuple[str, str]]) -> Iterator[None]:
        """Hold one slot of each (cap, subject) for the block, or `RateLimitedError` at once."""
        keys = [(cap, subject) for cap, subject in slots]
        with self._lock:
            if any(self._running.get(key, 0) >= self._caps[key[0]] for key in keys):
                raise RateLimitedError(1)
            for key in keys:
                self._running[key] = self._running.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                for key in keys:
                    left = self._running[key] - 1
                    if left:
                        self._running[key] = left
                    else:
                        del self._running[key]

    def running(self, cap: str, subject: str) -> int:
        return self._running.get((cap, subject), 0)
