"""Event streams generated with hypothesis from the AsyncAPI message schemas.

Each message's payload schema is the generated model's JSON Schema
(`generated/events/catalog.py`, from `contracts/asyncapi/user-events.yaml`); `payloads`
draws a payload from it keyword by keyword (`const`, `enum`, string `format`, `pattern` and
lengths, integer bounds). `streams` then makes the events *coherent*, as the auth service
would publish them: a small pool of users, each with a history in `sequence` order (created,
verification and reset requests, perhaps a deactivation last), the users' histories
interleaved at random. Fields a consumer's outcome must not depend on by chance are pinned:
`expiresAt` lies far in the past or far in the future, never near "now".

Needs hypothesis, which is a development dependency (`pip install -e '.[dev]'`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic import EmailStr as _EmailStr

from generated.events import models as events
from generated.events.catalog import MESSAGES
from services.kit.events import Event

CREATED = "user.created"
VERIFICATION = "user.email.verification.requested"
RESET = "user.password.reset.requested"
DEACTIVATED = "user.deactivated"
REQUESTS = (VERIFICATION, RESET)

# Far from any test's "now", so that whether a token has expired never depends on timing.
LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)
FAR_AHEAD = datetime(2999, 1, 1, tzinfo=UTC)

_emails: TypeAdapter[str] = TypeAdapter(_EmailStr)


def _valid_email(value: str) -> bool:
    try:
        _emails.validate_python(value)
    except ValidationError:
        return False
    return len(value) <= 254


def _string(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    fmt = schema.get("format")
    if fmt == "uuid":
        return st.uuids().map(str)
    if fmt == "email":
        domains = st.sampled_from(["example.com", "example.org", "mail.example.net"])
        return st.emails(domains=domains).filter(_valid_email)
    if fmt == "date-time":
        moments = st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        )
        return moments.map(lambda moment: moment.isoformat())
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True)
    low = int(schema.get("minLength", 0))
    high = int(schema.get("maxLength", low + 32))
    # Printable ASCII keeps generated values readable in a report; lengths stay near the
    # minimum, because long values find nothing short ones do not.
    alphabet = st.characters(min_codepoint=33, max_codepoint=126)
    return st.text(alphabet, min_size=low, max_size=min(high, low + 24))


def from_schema(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid against a JSON Schema, for the keywords the event payloads use."""
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(list(schema["enum"]))
    kind = schema.get("type")
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "boolean":
        return st.booleans()
    if kind == "object":
        properties: Mapping[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", properties))
        return st.fixed_dictionaries(
            {name: from_schema(properties[name]) for name in properties if name in required},
            optional={
                name: from_schema(properties[name]) for name in properties if name not in required
            },
        )
    raise ValueError(f"no strategy for the schema {dict(schema)!r}")


@functools.cache
def _payloads_of(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    # A stream draws a payload per event: the schema and its strategy are made once per model.
    return from_schema(model.model_json_schema())


def payloads(event_type: str) -> st.SearchStrategy[dict[str, Any]]:
    """Payloads of `event_type` drawn from its schema (any ids, any sequence: not coherent)."""
    return _payloads_of(MESSAGES[event_type].payload)


@st.composite
def _history(draw: st.DrawFn, max_requests: int, deactivation: bool) -> list[str]:
    kinds = [CREATED] if draw(st.integers(0, 9)) > 0 else []  # now and then, created long ago
    kinds += draw(st.lists(st.sampled_from(REQUESTS), max_size=max_requests))
    if deactivation and draw(st.booleans()):
        kinds.append(DEACTIVATED)
    return kinds or [CREATED]


@st.composite
def streams(
    draw: st.DrawFn,
    users: tuple[int, int] = (1, 3),
    max_requests: int = 3,
    deactivation: bool = True,
    expired: bool = True,
) -> list[Event]:
    """A coherent stream: `users` (min, max) users, each created, with up to `max_requests`
    verification and reset requests and perhaps deactivated last, in strictly increasing
    `sequence` per user, the users' events interleaved. `expired` lets some tokens be expired
    already."""
    count = draw(st.integers(*users))
    user_ids = draw(st.lists(st.uuids(), min_size=count, max_size=count, unique=True))
    emails = [draw(from_schema({"type": "string", "format": "email"})) for _ in user_ids]
    histories = [draw(_history(max_requests, deactivation)) for _ in user_ids]
    order = draw(st.permutations([u for u, history in enumerate(histories) for _ in history]))
    event_ids = draw(st.lists(st.uuids(), min_size=len(order), max_size=len(order), unique=True))
    sequences: list[list[int]] = []
    for history in histories:
        drawn = draw(
            st.lists(st.integers(1, 10_000), min_size=len(history), max_size=len(history),
                     unique=True)
        )  # fmt: skip
        sequences.append(sorted(drawn))
    taken = [0] * count
    stream: list[Event] = []
    for position, user in enumerate(order):
        index = taken[user]
        taken[user] += 1
        event_type = histories[user][index]
        values = draw(payloads(event_type))
        values |= {
            "eventId": str(event_ids[position]),
            "userId": str(user_ids[user]),
            "sequence": sequences[user][index],
            "email": emails[user],
            "schemaVersion": MESSAGES[event_type].schema_version,
        }
        if "expiresAt" in values:
            past = expired and draw(st.integers(0, 4)) == 0
            offset = timedelta(minutes=draw(st.integers(0, 60 * 24 * 365)))
            values["expiresAt"] = (
                (LONG_AGO + offset) if past else (FAR_AHEAD - offset)
            ).isoformat()
        stream.append(_event(MESSAGES[event_type].payload.model_validate(values)))
    return stream


def _event(model: object) -> Event:
    # The catalog's payload models are exactly the members of `Event`.
    assert isinstance(
        model,
        events.UserCreatedPayload
        | events.EmailVerificationRequestedPayload
        | events.PasswordResetRequestedPayload
        | events.UserDeactivatedPayload,
    ), f"{type(model).__name__} is not an event"
    return model
