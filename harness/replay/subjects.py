"""The user and notification services' consumers as replay subjects, and their final states.

Each subject is the service's own consumer wiring (`services.user.consumers`,
`services.notification.consumers`) on the service's own storage, a fresh SQLite database per
run (copied from one migrated template, because migrating takes far longer than copying).
Its final state is read back through that storage and *normalised*: every field that differs
between two correct deliveries of the same stream is removed or replaced, and each such field
is named below with the reason. Everything else must be equal.

The same readers (`user_state`, `notification_state`) serve as state probes of a running
stack's databases (`harness.replay.live`), where ids are renamed back to the stream's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy import select

from harness.replay.runner import Subject
from services.kit.bus import EventConsumer
from services.notification import consumers as notification_consumers
from services.notification import handlers as notification_handlers
from services.notification.domain import OutgoingEmail
from services.notification.mail import RecordingEmailSender
from services.notification.rendering import JinjaEmailComposer
from services.notification.storage import (
    CONSUMER as NOTIFICATION_CONSUMER,
)
from services.notification.storage import (
    SqlNotificationDatabase,
    notifications,
    users,
)
from services.notification.storage import (
    processed_events as notification_processed,
)
from services.user import consumers as user_consumers
from services.user.storage import SqlUserStore, addresses, processed_events, profiles

# Ids of one replay run mapped to the stream's ids (a replay on a running stack gives every
# run fresh ids, see `harness.replay.live`); None: every row, ids as they are.
IdMap: TypeAlias = Mapping[uuid.UUID, uuid.UUID]
LINK_BASE = "https://accounts.accord.test"


def _kept(ids: IdMap | None, value: uuid.UUID) -> bool:
    return ids is None or value in ids


def _named(ids: IdMap | None, value: uuid.UUID) -> str:
    return str(value if ids is None else ids[value])


class SqliteTemplate:
    """A migrated SQLite database, copied to a fresh file for each run."""

    def __init__(
        self, directory: Path, name: str, migrate: Callable[[str], Awaitable[None]]
    ) -> None:
        self.directory = directory
        self.name = name
        self._migrate = migrate
        self._template = directory / f"{name}-template.db"
        self._ready = False
        self._lock = asyncio.Lock()
        self._numbers = itertools.count(1)

    @staticmethod
    def url(path: Path) -> str:
        return f"sqlite:///{path}"

    async def fresh(self) -> Path:
        """The path of a new, migrated, empty database."""
        async with self._lock:
            if not self._ready:
                self.directory.mkdir(parents=True, exist_ok=True)
                await self._migrate(self.url(self._template))
                self._ready = True
        path = self.directory / f"{self.name}-{next(self._numbers)}.db"
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self._template}{suffix}")
            if source.exists():
                shutil.copyfile(source, Path(f"{path}{suffix}"))
        return path

    @staticmethod
    def remove(path: Path) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


# --- the user service -----------------------------------------------------------------------


async def user_state(store: SqlUserStore, ids: IdMap | None = None) -> dict[str, Any]:
    """The user service's final state: its profiles (with tombstones), how many addresses
    each has, and the events it recorded as processed.

    Left out: `profiles.created_at` / `updated_at` and `processed_events.processed_at`, the
    handler's clock when it applied an event, which no two runs share.
    """
    async with store.engine.connect() as connection:
        rows = (await connection.execute(select(profiles))).mappings().all()
        counts: dict[uuid.UUID, int] = {}
        for row in (await connection.execute(select(addresses.c.user_id))).all():
            counts[row.user_id] = counts.get(row.user_id, 0) + 1
        processed = (
            await connection.execute(
                select(processed_events.c.event_id).where(
                    processed_events.c.consumer == user_consumers.CONSUMER
                )
            )
        ).all()
    return {
        "profiles": {
            _named(ids, row["id"]): {
                "status": row["status"],
                "email": row["email"],
                "display_name": row["display_name"],
                "first_name": row["first_name"],
                "last_name": row["last_name"],
                "phone": row["phone"],
                "last_sequence": int(row["last_sequence"]),
                "addresses": counts.get(row["id"], 0),
            }
            for row in rows
            if _kept(ids, row["id"])
        },
        "processed": sorted(_named(ids, r.event_id) for r in processed if _kept(ids, r.event_id)),
    }


class UserServiceSubject:
    """The user service's consumer (`user.created`, `user.deactivated`) on SQLite."""

    name = "user service"

    def __init__(self, directory: Path) -> None:
        self.template = SqliteTemplate(directory, "user", self._migrate)

    @staticmethod
    async def _migrate(url: str) -> None:
        store = SqlUserStore(url)
        try:
            await store.migrate()
        finally:
            await store.dispose()

    def __call__(self) -> contextlib.AbstractAsyncContextManager[Subject]:
        return self._open()

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[Subject]:
        path = await self.template.fresh()
        store = SqlUserStore(SqliteTemplate.url(path))
        handlers = user_consumers.event_handlers(store, lambda: datetime.now(UTC))

        def attach(consumer: EventConsumer) -> None:
            user_consumers.subscribe(consumer, handlers)

        try:
            yield Subject(self.name, tuple(handlers), attach, lambda: user_state(store))
        finally:
            await store.dispose()
            SqliteTemplate.remove(path)


# --- the notification service ---------------------------------------------------------------

SETTLED_BEFORE_DEACTIVATION = "settled (sent, or skipped for the later deactivation)"
AT_MOST_ONCE = "at most once"


async def notification_state(
    database: SqlNotificationDatabase,
    mails: Sequence[OutgoingEmail] | None = None,
    *,
    tolerate_deactivation_race: bool = True,
    ids: IdMap | None = None,
) -> dict[str, Any]:
    """The notification service's final state: its notification log, its tombstones, the
    events it recorded as processed, and (when given) the emails it handed to the sender.

    Left out of each log entry: `id` (a fresh UUID per entry), `created_at` and `sent_at`
    (the handler's clock), `claimed_until` (the clock plus the lease) and `claim_token` (a
    fresh UUID per claim), which is kept only as whether a claim is still held. Left out of
    the processed records: `processed_at` (the clock). `deactivated_at` stays: it is the
    event's own timestamp. Of each email handed to the sender, the recipient, the subject and
    the number of copies are kept; its text and HTML are rendered from the event alone.

    `tolerate_deactivation_race`: an email whose event is older than the user's deactivation
    goes out if it arrives before the deactivation and is skipped if it arrives after, by
    design (a sent email cannot be recalled, and once the deactivation is known the address
    must not be used). Which one happened depends on the order of delivery alone, so for
    those events the entry's status, reason and attempts become one value, and the email's
    copies "at most once". The address must be gone either way, so `recipient` is kept.
    """
    async with database.engine.connect() as connection:
        log = (await connection.execute(select(notifications))).mappings().all()
        tombstones = (await connection.execute(select(users))).mappings().all()
        processed = (
            await connection.execute(
                select(notification_processed.c.event_id).where(
                    notification_processed.c.consumer == NOTIFICATION_CONSUMER
                )
            )
        ).all()
    deactivated = {
        row["id"]: int(row["deactivated_sequence"])
        for row in tombstones
        if row["deactivated_sequence"] is not None
    }
    raced: set[uuid.UUID] = set()
    entries: dict[str, dict[str, Any]] = {}
    for row in log:
        if not _kept(ids, row["user_id"]):
            continue
        entry: dict[str, Any] = {
            "user": _named(ids, row["user_id"]),
            "sequence": int(row["sequence"]),
            "type": row["type"],
            "channel": row["channel"],
            "status": row["status"],
            "reason": row["reason"],
            "recipient": row["recipient"],
            "subject": row["subject"],
            "attempts": int(row["attempts"]),
            "claimed": row["claim_token"] is not None,
        }
        if tolerate_deactivation_race and deactivated.get(row["user_id"], 0) > row["sequence"]:
            raced.add(row["event_id"])
            entry |= {"status": SETTLED_BEFORE_DEACTIVATION, "reason": None, "attempts": None}
        entries[_named(ids, row["event_id"])] = entry
    state: dict[str, Any] = {
        "log": entries,
        "tombstones": {
            _named(ids, row["id"]): {
                "deactivated_sequence": row["deactivated_sequence"],
                "deactivated_at": row["deactivated_at"],
            }
            for row in tombstones
            if _kept(ids, row["id"])
        },
        "processed": sorted(_named(ids, r.event_id) for r in processed if _kept(ids, r.event_id)),
    }
    if mails is not None:
        sent: dict[str, dict[str, Any]] = {}
        for mail in mails:
            reference = uuid.UUID(mail.reference)
            if not _kept(ids, reference):
                continue
            key = _named(ids, reference)
            copy = sent.setdefault(key, {"to": mail.to, "subject": mail.subject, "copies": 0})
            copy["copies"] += 1
        for event_id in raced:
            key = _named(ids, event_id)
            copies = sent.get(key, {}).get("copies", 0)
            sent[key] = {"copies": AT_MOST_ONCE if copies <= 1 else copies}
        state["mails"] = sent
    return state


class NotificationServiceSubject:
    """The notification service's consumer (verification and reset requests, deactivations)
    on SQLite, sending through the service's recording email sender."""

    name = "notification service"

    def __init__(self, directory: Path, *, tolerate_deactivation_race: bool = True) -> None:
        self.template = SqliteTemplate(directory, "notification", self._migrate)
        self.tolerate_deactivation_race = tolerate_deactivation_race

    @staticmethod
    async def _migrate(url: str) -> None:
        database = SqlNotificationDatabase(url)
        try:
            await database.migrate()
        finally:
            await database.dispose()

    def __call__(self) -> contextlib.AbstractAsyncContextManager[Subject]:
        return self._open()

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[Subject]:
        path = await self.template.fresh()
        database = SqlNotificationDatabase(SqliteTemplate.url(path))
        sender = RecordingEmailSender()
        deps = notification_handlers.Dependencies(
            unit_of_work=database.unit_of_work,
            sender=sender,
            composer=JinjaEmailComposer(),
            clock=lambda: datetime.now(UTC),
            link_base_url=LINK_BASE,
            claim_lease=timedelta(seconds=10),
            busy_poll=timedelta(milliseconds=10),
        )

        def attach(consumer: EventConsumer) -> None:
            notification_consumers.subscribe(consumer, deps)

        async def read_state() -> object:
            return await notification_state(
                database,
                sender.sent,
                tolerate_deactivation_race=self.tolerate_deactivation_race,
            )

        try:
            yield Subject(
                self.name,
                (
                    notification_consumers.VERIFICATION_REQUESTED,
                    notification_consumers.RESET_REQUESTED,
                    notification_consumers.DEACTIVATED,
                ),
                attach,
                read_state,
            )
        finally:
            await database.dispose()
            SqliteTemplate.remove(path)
