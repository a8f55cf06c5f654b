"""The generated event models accept the seed's events and refuse malformed ones."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from generated.events import models as events
from harness.project import Project

MODELS: dict[str, type[BaseModel]] = {
    "user.created": events.UserCreatedPayload,
    "user.email.verification.requested": events.EmailVerificationRequestedPayload,
    "user.password.reset.requested": events.PasswordResetRequestedPayload,
    "user.deactivated": events.UserDeactivatedPayload,
}

ADDED = {
    "eventId": "9f0c6d3e-2b1a-4c5d-8e7f-6a5b4c3d2e1f",
    "schemaVersion": "1.0.0",
    "sequence": 1,
}
USER = {
    "userId": "6f1c1e0e-8f3e-4c1a-9d3e-2b7f4a6c9e10",
    "email": "grace@example.com",
    "timestamp": "2026-11-25T09:30:00.000Z",
    "source": "auth-service",
}
# The seed's four payloads, field for field, plus Accord's added fields.
SEED_PAYLOADS: dict[str, dict[str, Any]] = {
    "user.created": {**USER},
    "user.email.verification.requested": {
        **USER,
        "verificationToken": "b3f1c0de5a7e4d2f9c8b",
        "expiresAt": "2026-11-26T09:30:00.000Z",
    },
    "user.password.reset.requested": {
        **USER,
        "resetToken": "0c9a8b7d6e5f4a3b2c1d",
        "expiresAt": "2026-11-25T10:30:00.000Z",
    },
    "user.deactivated": {**USER},
}


def seed_payload(event_type: str) -> dict[str, Any]:
    return {**SEED_PAYLOADS[event_type], **ADDED, "eventType": event_type}


@pytest.mark.parametrize("event_type", MODELS)
def test_the_seed_payload_with_the_added_fields_is_accepted(event_type: str) -> None:
    payload = seed_payload(event_type)

    event = MODELS[event_type].model_validate(payload)

    dumped = event.model_dump(mode="json")
    assert dumped.keys() == payload.keys()
    unchanged = ("eventId", "eventType", "schemaVersion", "sequence", "userId", "email", "source")
    assert {key: dumped[key] for key in unchanged} == {key: payload[key] for key in unchanged}


def test_every_example_in_the_contract_is_accepted_by_its_model(repository: Project) -> None:
    document = yaml.safe_load((repository.contracts_dir / "asyncapi/user-events.yaml").read_text())
    messages = document["components"]["messages"]

    checked = 0
    for message in messages.values():
        for example in message["examples"]:
            event = MODELS[message["name"]].model_validate(example["payload"])
            assert event.model_dump()["eventType"] == message["name"]
            events.MessageAttributes.model_validate(example["headers"])
            checked += 1

    assert checked == len(MODELS)


@pytest.mark.parametrize("event_type", MODELS)
def test_a_payload_without_user_id_is_refused(event_type: str) -> None:
    payload = seed_payload(event_type)
    del payload["userId"]

    with pytest.raises(ValidationError) as refused:
        MODELS[event_type].model_validate(payload)

    assert [error["loc"] for error in refused.value.errors()] == [("userId",)]


# The payloads' `Email` is `{type: string, format: email, maxLength: 254}`: the models read
# `format` as the annotation it is (as the HTTP models do, `harness/authoring/generate.py`), so
# what they refuse is what the schema asserts. Which addresses the auth service takes, and so
# publishes, is its HTTP contract's `Email` pattern.
@pytest.mark.parametrize("email", [None, 42, "a" * 243 + "@example.com"])
@pytest.mark.parametrize("event_type", MODELS)
def test_an_email_that_is_not_a_string_of_at_most_254_characters_is_refused(
    event_type: str, email: object
) -> None:
    payload = seed_payload(event_type) | {"email": email}

    with pytest.raises(ValidationError) as refused:
        MODELS[event_type].model_validate(payload)

    assert [error["loc"] for error in refused.value.errors()] == [("email",)]


@pytest.mark.parametrize("event_type", MODELS)
def test_an_unknown_or_foreign_event_type_is_refused(event_type: str) -> None:
    for wrong in ["user.renamed", *(other for other in MODELS if other != event_type)]:
        payload = seed_payload(event_type) | {"eventType": wrong}

        with pytest.raises(ValidationError) as refused:
            MODELS[event_type].model_validate(payload)

        assert [error["loc"] for error in refused.value.errors()] == [("eventType",)]


@pytest.mark.parametrize(
    ("field", "value"),
    [("sequence", 0), ("eventId", "not-a-uuid"), ("source", "user-service"), ("timestamp", "now")],
)
def test_added_and_seed_fields_are_checked(field: str, value: object) -> None:
    payload = seed_payload("user.created") | {field: value}

    with pytest.raises(ValidationError):
        events.UserCreatedPayload.model_validate(payload)
