"""The load the benchmarks put on a consumer: valid `user.created` events, built through the
generated model as the auth service builds them (the benchmarks import nothing from tests)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from generated.events.models import UserCreatedPayload


def user_created(
    user_id: uuid.UUID | None = None, email: str = "ada@example.com"
) -> UserCreatedPayload:
    """A first event about a user (sequence 1), with a fresh event id."""
    return UserCreatedPayload(
        eventId=uuid.uuid4(),
        eventType="user.created",
        schemaVersion="1.0.0",
        sequence=1,
        userId=user_id or uuid.uuid4(),
        email=email,
        timestamp=datetime.now(UTC),
        source="auth-service",
    )
