"""Edits of the copied user-events contract that tests make: each names what it changes."""

from __future__ import annotations

from pathlib import Path

from harness.project import Project
from tests.conftest import edit

USER_CREATED = "      description: Payload of `user.created`."
REQUIRED = (
    "      required: [eventId, eventType, schemaVersion, sequence, "
    "userId, email, timestamp, source]"
)
EVENT_TYPE = "        eventType:\n          type: string\n          const: user.created\n"


def events_contract(project: Project) -> Path:
    return project.contracts_dir / "asyncapi" / "user-events.yaml"


def set_version(project: Project, old: str, new: str) -> None:
    """Change user.created's x-schema-version."""
    edit(
        events_contract(project),
        f"      x-schema-version: {old}\n{USER_CREATED}",
        f"      x-schema-version: {new}\n{USER_CREATED}",
    )


def add_property(project: Project, name: str, schema: str = "type: string") -> None:
    """Add an optional property to user.created's payload."""
    edit(
        events_contract(project),
        EVENT_TYPE,
        f"{EVENT_TYPE}        {name}:\n          {schema}\n",
    )


def remove_property(project: Project, name: str, schema: str = "type: string") -> None:
    edit(events_contract(project), f"        {name}:\n          {schema}\n", "")


def require(project: Project, name: str) -> None:
    """Make a property of user.created's payload required."""
    edit(
        events_contract(project),
        f"{USER_CREATED}\n{REQUIRED}",
        f"{USER_CREATED}\n{REQUIRED[:-1]}, {name}]",
    )


def set_mode(project: Project, mode: str) -> None:
    """Declare user.created's compatibility mode on its message."""
    edit(
        events_contract(project),
        "      name: user.created\n",
        f"      name: user.created\n      x-compatibility: {mode}\n",
    )
