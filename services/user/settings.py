"""The user service's settings, from `USER_*` environment variables (and `ACCORD_ENV`).

Local mode (`ACCORD_ENV` unset or `local`) runs with no configuration at all: SQLite under
`.accord/`, the auth service on 127.0.0.1:3001 with its default issuer and audience, a
placeholder service key (with a warning at start-up when `ACCORD_ENV` is unset). Anywhere else
a weak service key (`services.kit.settings.secret_weakness`) and an `http://` auth service or
JWKS URL are refused at start-up, and every error names the environment variable to fix.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, field_validator
from pydantic_settings import SettingsConfigDict

from generated.user.events import QUEUE
from services.kit.callers import CallerSettings
from services.kit.retention import (
    DEFAULT_PROCESSED_EVENT_RETENTION_DAYS,
    check_processed_event_retention,
)
from services.kit.settings import ServiceSettings, not_blank
from services.kit.settings import SettingsError as SettingsError

ENV_PREFIX = "USER_"

Seconds = Annotated[float, Field(gt=0)]
WholeSeconds = Annotated[int, Field(ge=0)]
NotBlank = Annotated[str, AfterValidator(not_blank)]


class Settings(ServiceSettings, CallerSettings):
    """Everything the user service reads from its environment: its database and queue here;
    the auth service, its keys and the service key from `CallerSettings`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    database_url: str = "sqlite:///.accord/user.db"

    # Events: the queue of the AsyncAPI operation `receiveUserEvents`.
    queue: NotBlank = QUEUE
    # Events received and in hand at once (SQS hands out at most 10 per receive). On SQLite
    # their transactions still run one at a time, as SQLite's writers do anyway.
    consumer_max_in_flight: Annotated[int, Field(ge=1, le=100)] = 10
    # The long-poll wait of one receive (SQS allows 0 to 20 s); a stop waits for it to end.
    consumer_wait_seconds: Annotated[float, Field(ge=0, le=20)] = 20.0
    # Receive calls under way at once, each taking up to 10 messages: at 20 ms a call (AWS),
    # one at a time caps a consumer near 500 messages a second. More than one needs
    # CONSUMER_MAX_IN_FLIGHT of at least 10 per receive, or the room is never there.
    consumer_receives: Annotated[int, Field(ge=1, le=10)] = 1

    # Retention (`accord prune`): processed-event records are deleted this many days after
    # the event was applied, by a pass every `prune_interval_seconds`. The record is what makes
    # a redelivered duplicate a no-op, and SQS may redeliver for up to 14 days (its maximum
    # message retention; a dead letter can be redriven as long), so at least 15 are required.
    processed_event_retention_days: int = DEFAULT_PROCESSED_EVENT_RETENTION_DAYS
    prune_interval_seconds: Seconds = 3600.0

    # `Retry-After` of a pending profile (404); an unreachable auth service's is
    # `unavailable_retry_after_seconds` (`CallerSettings`).
    pending_retry_after_seconds: WholeSeconds = 1

    @field_validator("processed_event_retention_days")
    @classmethod
    def _outlasts_redelivery(cls, value: int) -> int:
        return check_processed_event_retention(value)


def load_settings() -> Settings:
    """Settings from the environment; `SettingsError` naming every variable that is wrong."""
    return Settings.from_environment()
