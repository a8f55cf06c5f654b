"""Valid events for tests, built through the generated models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from generated.events import models as events


def _common(user_id: uuid.UUID | None, sequence: int) -> dict[str, object]:
    return {
        "eventId": uuid.uuid4(),
        "schemaVersion": "1.0.0",
        "sequence": sequence,
        "userId": user_id or uuid.uuid4(),
        "timestamp": datetime.now(UTC),
        "source": "auth-service",
    }


def user_created(
    user_id: uuid.UUID | None = None, sequence: int = 1, email: str = "ada@example.com"
) -> events.UserCreatedPayload:
    return events.UserCreatedPayload.model_validate(
        {**_common(user_id, sequence), "eventType": "user.created", "email": email}
    )


def user_deactivated(
    user_id: uuid.UUID | None = None, sequence: int = 2, email: str = "ada@example.com"
) -> events.UserDeactivatedPayload:
    return events.UserDeactivatedPayload.model_validate(
        {**_common(user_id, sequence), "eventType": "user.deactivated", "email": email}
    )


def verification_requested(
    user_id: uuid.UUID | None = None, sequence: int = 2, email: str = "ada@example.com"
) -> events.EmailVerificationRequestedPayload:
    return events.EmailVerificationRequestedPayload.model_validate(
        {
            **_common(user_id, sequence),
            "eventType": "user.email.verification.requested",
            "email": email,
            "verificationToken": uuid.uuid4().hex,
            "expiresAt": datetime.now(UTC) + timedelta(hours=24),
        }
    )
