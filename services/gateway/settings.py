"""The gateway service's settings, from `GATEWAY_*` environment variables (and `ACCORD_ENV`).

`CallerSettings` (services/kit/callers.py) holds what admitting callers by the auth service's
access tokens takes: the auth service's URL and keys, the issuer and audience, and the service
credential that confirms an admin's role (`GATEWAY_AUTH_SERVICE_API_KEY`). Here are the
gateway's own: where the user service is, and the policy and deadlines of the calls an overview
is composed from (`GATEWAY_PART_TIMEOUT_SECONDS`, `GATEWAY_DEADLINE_SECONDS`: see the contract's
description). Each wrong value stops the service at start-up with a message naming its variable.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.kit.callers import CallerSettings, http_url
from services.kit.settings import require_https

ENV_PREFIX = "GATEWAY_"

Seconds = Annotated[float, Field(gt=0)]


class Settings(CallerSettings):
    """Everything the gateway service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    # The user service: profiles (`getUserProfile`) and addresses (`listAddresses`).
    user_service_url: str = "http://127.0.0.1:3002"

    # Each call an overview is composed from (the account, the profile, the addresses), under
    # the kit's client policy: the deadline of one attempt, and the attempts after the first
    # for a timeout, a connection error, a 429 or a 5xx.
    call_timeout_seconds: Seconds = 1.0
    call_retries: Annotated[int, Field(ge=0, le=5)] = 1
    # The deadline of one part, its retries included; and of the whole answer, counted from
    # the request's arrival (the caller's admission included). A part not had by then is
    # missing from a partial answer; the account, a 503.
    part_timeout_seconds: Seconds = 2.0
    deadline_seconds: Seconds = 3.0

    @field_validator("user_service_url")
    @classmethod
    def _usable_user_service_url(cls, value: str) -> str:
        return http_url(value)

    def check(self) -> None:
        super().check()
        prefix = self.prefix()
        if self.part_timeout_seconds > self.deadline_seconds:
            raise ValueError(
                f"{prefix}PART_TIMEOUT_SECONDS ({self.part_timeout_seconds:g}) must not exceed "
                f"{prefix}DEADLINE_SECONDS ({self.deadline_seconds:g}): a part has no more time "
                "than the whole answer"
            )

    def check_production(self, where: str) -> None:
        super().check_production(where)
        require_https(f"{self.prefix()}USER_SERVICE_URL", self.user_service_url, where)

    @property
    def local_defaults(self) -> list[str]:
        defaults = super().local_defaults
        if not self.user_service_url.startswith("https://"):
            defaults.append(
                f"the user service over plain HTTP at {self.user_service_url} "
                f"({self.prefix()}USER_SERVICE_URL)"
            )
        return defaults


def load_settings() -> Settings:
    """Settings from the environment; `SettingsError` naming every variable that is wrong."""
    return Settings.from_environment()
