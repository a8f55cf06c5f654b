"""What the services' settings share: loading them from the environment so that a wrong value
stops the service at start-up with a message naming each environment variable to fix."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

# Shared by every service, hence read without a prefix.
ENVIRONMENT_VARIABLE = "ACCORD_ENV"


class SettingsError(ValueError):
    """The settings cannot start the service; the message names each variable to fix."""


def env_name(prefix: str, field: str) -> str:
    """The environment variable behind a settings field."""
    return ENVIRONMENT_VARIABLE if field == "environment" else prefix + field.upper()


def load(settings_class: type[SettingsT], service: str, prefix: str) -> SettingsT:
    """`settings_class` from the environment, or `SettingsError` naming every wrong variable."""
    try:
        return settings_class()
    except ValidationError as error:
        lines = []
        for item in error.errors(include_url=False, include_input=False):
            location = [str(part) for part in item.get("loc", ())]
            message = str(item.get("msg", "")).removeprefix("Value error, ")
            lines.append(f"{env_name(prefix, location[0])}: {message}" if location else message)
        raise SettingsError(
            f"the {service} service cannot start:\n" + "\n".join(f"  {line}" for line in lines)
        ) from None
