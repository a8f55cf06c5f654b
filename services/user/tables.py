"""The user service's tables: profiles (with tombstones), addresses and the processed-event log.

The schema is created by the Alembic history in `services/user/migrations/`, which must match
`metadata` (a test compares them).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Uuid,
    bindparam,
    select,
)

from services.kit.database import UtcDateTime, service_metadata
from services.kit.idempotency import processed_events_table

metadata = service_metadata()

profiles = Table(
    "profiles",
    metadata,
    # The user's id, assigned by the auth service.
    Column("id", Uuid(), primary_key=True),
    Column("email", String(254), nullable=True),
    Column("display_name", String(100), nullable=True),
    Column("first_name", String(100), nullable=True),
    Column("last_name", String(100), nullable=True),
    Column("phone", String(16), nullable=True),
    Column("status", String(20), nullable=False),
    # The `sequence` of the last event applied: older events change nothing.
    Column("last_sequence", BigInteger(), nullable=False, server_default="0"),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # The admin list pages through (created_at, id).
    Index(None, "created_at", "id"),
)

addresses = Table(
    "addresses",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("user_id", Uuid(), ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(50), nullable=False),
    Column("line1", String(200), nullable=False),
    Column("line2", String(200), nullable=True),
    Column("city", String(100), nullable=False),
    Column("region", String(100), nullable=True),
    Column("postal_code", String(20), nullable=False),
    Column("country", String(2), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index(None, "user_id", "created_at", "id"),
)

processed_events = processed_events_table(metadata)

# The hot read: one profile by id.
PROFILE_BY_ID = select(profiles).where(profiles.c.id == bindparam("user_id"))
