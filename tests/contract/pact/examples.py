"""What the consumers' pacts are made of: the contracts' own example values, the provider
states, and the four user events as a consumer expects them (every field its strict decoding
needs, each matched by what it must be, with the SNS message attributes as metadata)."""

from __future__ import annotations

import re
from typing import Any, Final

from pact import Pact, match

# The example user of `contracts/openapi/auth-service.yaml` and `user-events.yaml`.
USER_ID: Final = "6f1c1e0e-8f3e-4c1a-9d3e-2b7f4a6c9e10"
UNKNOWN_USER_ID: Final = "9b2f6d4e-0c1a-4e7b-8d3f-5a6b7c8d9e0f"
# Two more users the gateway's pacts name: one whose profile has an address, one whose profile
# is not created yet.
OWNER_ID: Final = "2c4e6a8b-1d3f-4a5b-9c7d-0e1f2a3b4c5d"
PENDING_USER_ID: Final = "7a9c1e3f-5b7d-4f0a-8c2e-4d6f8a0b2c4e"
EMAIL: Final = "ada@example.com"
SOURCE: Final = "auth-service"

# Provider states, as the verifier passes them to the provider.
ADMIN_EXISTS: Final = "a user with the admin role exists"
NO_SUCH_USER: Final = "no user has the id"
USER_EXISTS: Final = "a user with the id exists"
PROFILE_WITH_ADDRESS: Final = "a user has a profile with an address"
PROFILE_PENDING: Final = "a user is registered and their profile is not created yet"

ROLE_PATTERN: Final = r"^(user|admin)$"
ED25519_PUBLIC_KEY: Final = r"^[A-Za-z0-9_-]{43}$"
EMAIL_PATTERN: Final = r"^[^@\s]+@[^@\s]+$"
RFC3339: Final = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
# Consumers read any schema version of the major they were built for.
SCHEMA_VERSION_1: Final = r"^1\.\d+\.\d+$"
SINGLE_USE_TOKEN: Final = r"^.{16,256}$"


def role(example: str) -> Any:
    return match.regex(example, regex=ROLE_PATTERN)


def exactly(value: str) -> Any:
    """`value` and nothing else, where an enclosing matcher would loosen it to its type."""
    return match.regex(value, regex=f"^{re.escape(value)}$")


def _event(
    pact: Pact,
    event_type: str,
    *,
    event_id: str,
    sequence: int,
    timestamp: str,
    fields: dict[str, Any] | None = None,
) -> None:
    """One event as the consumer expects it: the payload as the message's contents, and the
    SNS message attributes `eventType`, `source` and `schemaVersion` as its metadata."""
    (
        pact.upon_receiving(f"a {event_type} event", "Async")
        .with_body(
            {
                "eventId": match.uuid(event_id),
                "eventType": event_type,
                "schemaVersion": match.regex("1.0.0", regex=SCHEMA_VERSION_1),
                "sequence": match.int(sequence),
                "userId": match.uuid(USER_ID),
                "email": match.regex(EMAIL, regex=EMAIL_PATTERN),
                "timestamp": match.regex(timestamp, regex=RFC3339),
                "source": SOURCE,
                **(fields or {}),
            },
            content_type="application/json",
        )
        .with_metadata(
            {
                "eventType": event_type,
                "source": SOURCE,
                "schemaVersion": match.regex("1.0.0", regex=SCHEMA_VERSION_1),
            }
        )
    )


def user_created(pact: Pact) -> None:
    _event(
        pact,
        "user.created",
        event_id="0b9e3c2a-5f0e-4a55-9a37-0a8c5f3e1d01",
        sequence=1,
        timestamp="2026-11-25T10:00:00Z",
    )


def email_verification_requested(pact: Pact) -> None:
    _event(
        pact,
        "user.email.verification.requested",
        event_id="1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
        sequence=2,
        timestamp="2026-11-25T10:00:05Z",
        fields={
            "verificationToken": match.regex(
                "vt_Qm9vdHN0cmFwLXZlcmlmaWNhdGlvbi10b2tlbg", regex=SINGLE_USE_TOKEN
            ),
            "expiresAt": match.regex("2026-11-26T10:00:00Z", regex=RFC3339),
        },
    )


def password_reset_requested(pact: Pact) -> None:
    _event(
        pact,
        "user.password.reset.requested",
        event_id="2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f60",
        sequence=3,
        timestamp="2026-11-25T10:30:00Z",
        fields={
            "resetToken": match.regex(
                "rt_UmVzZXQtdG9rZW4tZm9yLWFkYS1sb3ZlbGFjZQ", regex=SINGLE_USE_TOKEN
            ),
            "expiresAt": match.regex("2026-11-25T11:00:00Z", regex=RFC3339),
        },
    )


def user_deactivated(pact: Pact) -> None:
    _event(
        pact,
        "user.deactivated",
        event_id="3e4f5a6b-7c8d-4e9f-8a1b-2c3d4e5f6a70",
        sequence=4,
        timestamp="2026-11-25T12:00:00Z",
    )
