"""Retention: rows that have served their purpose are deleted once they are old enough.

A service states its rules as data (`RetentionRule`: a table, how long its rows are kept, and
which of them have ended before a cutoff); `prune` applies a list of rules, one transaction per
table, and returns how many rows each deleted. The service's app runs its list periodically
(`RetentionTask`, started and stopped in the lifespan); `accord prune` runs the same list once.

The kit's own tables come with their rules: `published_outbox` (published rows only: a row the
bus has not taken yet is never deleted) and `processed_events`, whose retention must outlast
any redelivery of the event it records (`MIN_PROCESSED_EVENT_RETENTION_DAYS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger("accord.retention")

# SQS keeps an unconsumed message (and a dead-lettered one, which `accord dlq redrive` can send
# back) for at most 14 days. A processed-event record pruned sooner than that could be gone when
# a duplicate of its event is still deliverable, and that duplicate would then apply twice; one
# day more than SQS's maximum covers the visibility timeout and clock skew besides.
SQS_MAX_MESSAGE_RETENTION_DAYS = 14
MIN_PROCESSED_EVENT_RETENTION_DAYS = SQS_MAX_MESSAGE_RETENTION_DAYS + 1
DEFAULT_PROCESSED_EVENT_RETENTION_DAYS = 30

# Deletes the rows that ended before the cutoff, in the session's transaction; how many.
DeleteBefore = Callable[[AsyncSession, datetime], Awaitable[int]]


class RetentionTooShortError(ValueError):
    """A retention shorter than a rule's minimum: pruning would delete rows still needed."""


@dataclass(frozen=True)
class RetentionRule:
    """Which rows of one table may be deleted, and how long after they ended."""

    table: str
    keep: timedelta
    delete_before: DeleteBefore
    # A shorter retention is refused: rows younger than this are still needed.
    minimum: timedelta = timedelta(0)
    why: str = ""

    def check(self, keep: timedelta) -> None:
        if keep < self.minimum:
            raise RetentionTooShortError(
                f"{self.table} must be kept at least {_days(self.minimum)} days, not "
                f"{_days(keep)}: {self.why}"
            )


def _days(delta: timedelta) -> str:
    days = delta / timedelta(days=1)
    return f"{days:g}"


def deleting(table: Table, ended_before: Callable[[datetime], ColumnElement[bool]]) -> DeleteBefore:
    """A `DeleteBefore` that deletes the rows of `table` matching `ended_before(cutoff)`."""

    async def delete_before(session: AsyncSession, cutoff: datetime) -> int:
        result: Any = await session.execute(delete(table).where(ended_before(cutoff)))
        return int(result.rowcount)

    return delete_before


def published_outbox(table: Table, keep: timedelta) -> RetentionRule:
    """Outbox rows published before the cutoff; unpublished rows stay however old they are."""
    return RetentionRule(
        table=table.name,
        keep=keep,
        delete_before=deleting(
            table,
            lambda cutoff: table.c.published_at.is_not(None) & (table.c.published_at < cutoff),
        ),
    )


PROCESSED_EVENTS_WHY = (
    f"SQS can deliver a message up to {SQS_MAX_MESSAGE_RETENTION_DAYS} days after it was sent "
    "(or a redrive can send it back), and a duplicate whose record is gone would apply twice"
)


def check_processed_event_retention(days: int) -> int:
    """`days` if processed-event records kept that long outlast every redelivery."""
    if days < MIN_PROCESSED_EVENT_RETENTION_DAYS:
        raise ValueError(
            f"must be at least {MIN_PROCESSED_EVENT_RETENTION_DAYS} days: {PROCESSED_EVENTS_WHY}"
        )
    return days


def processed_events(table: Table, keep: timedelta) -> RetentionRule:
    """Processed-event records (`services.kit.idempotency`) older than the cutoff."""
    rule = RetentionRule(
        table=table.name,
        keep=keep,
        delete_before=deleting(table, lambda cutoff: table.c.processed_at < cutoff),
        minimum=timedelta(days=MIN_PROCESSED_EVENT_RETENTION_DAYS),
        why=PROCESSED_EVENTS_WHY,
    )
    rule.check(keep)
    return rule


async def prune(
    sessions: async_sessionmaker[AsyncSession],
    rules: Sequence[RetentionRule],
    *,
    now: datetime,
    older_than: timedelta | None = None,
) -> dict[str, int]:
    """Apply `rules` (each table's own retention, or `older_than` for all of them): the number
    of rows deleted, per table. A retention below a rule's minimum deletes nothing anywhere."""
    for rule in rules:
        rule.check(rule.keep if older_than is None else older_than)
    now = now.astimezone(UTC)
    deleted: dict[str, int] = {}
    for rule in rules:
        cutoff = now - (rule.keep if older_than is None else older_than)
        async with sessions() as session, session.begin():
            deleted[rule.table] = deleted.get(rule.table, 0) + await rule.delete_before(
                session, cutoff
            )
    return deleted


class RetentionTask:
    """Runs `prune` at start and then every `interval` seconds until stopped; a failed pass is
    logged, and the next one tries again."""

    def __init__(
        self,
        prune: Callable[[], Awaitable[Mapping[str, int]]],
        *,
        interval: float,
        name: str = "retention",
    ) -> None:
        self.prune = prune
        self.interval = interval
        self.name = name
        self.passes = 0
        self.failures = 0
        self._stop: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    async def start(self) -> None:
        if self.running:
            return
        self._stop = asyncio.Event()
        self._runner = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop after the pass in flight (its transactions commit or roll back whole)."""
        if self._stop is not None:
            self._stop.set()
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        try:
            await asyncio.wait_for(runner, timeout=timeout)
        except TimeoutError:
            log.warning("%s did not stop in time; cancelled", self.name)

    async def run_once(self) -> Mapping[str, int] | None:
        """One pass: the rows deleted per table, or None if it failed (and was logged)."""
        try:
            deleted = await self.prune()
        except Exception:
            self.failures += 1
            log.exception("%s could not prune", self.name)
            return None
        finally:
            self.passes += 1
        if any(deleted.values()):
            log.info(
                "%s deleted %s",
                self.name,
                ", ".join(f"{count} from {table}" for table, count in deleted.items() if count),
            )
        return deleted

    async def _run(self) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)
