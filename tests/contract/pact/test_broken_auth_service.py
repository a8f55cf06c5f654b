"""A broken auth service fails verification: the committed pacts catch a renamed field in an
HTTP answer or an event, and a missing or incompatible SNS message attribute. Each test
breaks the real service on its way out (or expects, in a copy of a pact, a field the service
does not send) and checks that every interaction concerned fails, for that reason."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from services.kit.events import Message
from tests.contract.pact.auth_provider import http_verifier, message_verifier, running
from tests.contract.pact.support import (
    AUTH_SERVICE,
    HTTP,
    MESSAGES,
    PACTS,
    USER_SERVICE,
    HeldInteraction,
    RecordProperty,
    failed_verification,
    held_interactions,
    held_to,
    pact_file_name,
    serving,
)

pytestmark = [pytest.mark.contract, pytest.mark.conformance("auth", "pacts")]

ROLES_OF_AN_ADMIN = "a request for the roles of an admin"


def renamed(document: Any, old: str, new: str) -> Any:
    """A JSON object with its member `old` renamed `new` (anything else unchanged)."""
    if isinstance(document, dict) and old in document:
        return {new if key == old else key: value for key, value in document.items()}
    return document


def answering_with(held: list[HeldInteraction], member: str) -> list[str]:
    """The HTTP interactions whose expected answer is a JSON object with `member`."""
    concerned = []
    for item in held:
        document = json.loads(item.pact.read_text(encoding="utf-8"))
        for interaction in document["interactions"]:
            body = interaction.get("response", {}).get("body", {}).get("content")
            if interaction["description"] == item.description and isinstance(body, dict):
                concerned.extend([item.description] if member in body else [])
    return sorted(concerned)


class RenamingField:
    """ASGI middleware: the app, but a member of every JSON object it answers is renamed, as
    by a provider that renamed a field of its responses."""

    def __init__(self, app: ASGIApp, old: str, new: str) -> None:
        self.app = app
        self.old = old
        self.new = new

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: AsgiMessage = {}
        chunks: list[bytes] = []

        async def rewrite(message: AsgiMessage) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            with contextlib.suppress(ValueError):  # a body that is not JSON goes as it was
                body = json.dumps(renamed(json.loads(body), self.old, self.new)).encode()
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)


def test_an_auth_service_that_renames_a_field_of_its_roles_answer_fails_http_verification(
    portal: BlockingPortal, tmp_path: Path, record_property: RecordProperty
) -> None:
    held = held_interactions(AUTH_SERVICE, HTTP)

    with (
        portal.wrap_async_context_manager(running(tmp_path)) as service,
        portal.wrap_async_context_manager(
            serving(RenamingField(service.app, "roles", "roleNames"))
        ) as url,
    ):
        failures = failed_verification(held_to(http_verifier(service, portal, url), held))

    concerned = answering_with(held, "roles")
    assert concerned, "no pact expects a `roles` member: this mutation proves nothing"
    assert sorted(failure.interaction for failure in failures) == concerned
    assert all("missing the following keys: roles" in failure.detail for failure in failures)
    record_property("cases", len(held))


def test_a_pact_expecting_a_field_the_auth_service_does_not_send_fails_http_verification(
    portal: BlockingPortal, tmp_path: Path, record_property: RecordProperty
) -> None:
    copy = tmp_path / "pacts"
    copy.mkdir()
    name = pact_file_name(USER_SERVICE, AUTH_SERVICE)
    shutil.copyfile(PACTS / name, copy / name)
    document = json.loads((copy / name).read_text(encoding="utf-8"))
    (interaction,) = (i for i in document["interactions"] if i["description"] == ROLES_OF_AN_ADMIN)
    response = interaction["response"]
    response["body"]["content"] = renamed(response["body"]["content"], "userId", "id")
    response["matchingRules"]["body"]["$.id"] = response["matchingRules"]["body"].pop("$.userId")
    (copy / name).write_text(json.dumps(document), encoding="utf-8")
    held = held_interactions(AUTH_SERVICE, HTTP, copy)

    with (
        portal.wrap_async_context_manager(running(tmp_path)) as service,
        portal.wrap_async_context_manager(serving(service.app)) as url,
    ):
        failures = failed_verification(held_to(http_verifier(service, portal, url), held))

    assert [failure.interaction for failure in failures] == [ROLES_OF_AN_ADMIN]
    assert "missing the following keys: id" in failures[0].detail
    record_property("cases", len(held))


def test_an_auth_service_that_renames_a_field_of_its_events_fails_message_verification(
    portal: BlockingPortal, tmp_path: Path, record_property: RecordProperty
) -> None:
    held = held_interactions(AUTH_SERVICE, MESSAGES)

    def rename_user_id(message: Message) -> Message:
        body = renamed(json.loads(message.body), "userId", "user_id")
        return Message(json.dumps(body), message.attributes)

    with portal.wrap_async_context_manager(running(tmp_path)) as service:
        failures = failed_verification(
            held_to(message_verifier(service, portal, rename_user_id), held)
        )

    assert len(failures) == len(held)
    assert all("missing the following keys: userId" in failure.detail for failure in failures)
    record_property("cases", len(held))


@pytest.mark.parametrize("attribute", ["eventType", "source", "schemaVersion"])
def test_an_auth_service_that_drops_a_message_attribute_fails_message_verification(
    attribute: str, portal: BlockingPortal, tmp_path: Path, record_property: RecordProperty
) -> None:
    held = held_interactions(AUTH_SERVICE, MESSAGES)

    def drop(message: Message) -> Message:
        attributes = {key: value for key, value in message.attributes.items() if key != attribute}
        return Message(message.body, attributes)

    with portal.wrap_async_context_manager(running(tmp_path)) as service:
        failures = failed_verification(held_to(message_verifier(service, portal, drop), held))

    assert len(failures) == len(held)
    expected = f"Expected message metadata '{attribute}' but was missing"
    assert all(expected in failure.detail for failure in failures)
    record_property("cases", len(held))


def test_an_auth_service_that_announces_a_new_major_schema_version_fails_message_verification(
    portal: BlockingPortal, tmp_path: Path, record_property: RecordProperty
) -> None:
    held = held_interactions(AUTH_SERVICE, MESSAGES)

    def bump(message: Message) -> Message:
        return Message(message.body, {**message.attributes, "schemaVersion": "2.0.0"})

    with portal.wrap_async_context_manager(running(tmp_path)) as service:
        failures = failed_verification(held_to(message_verifier(service, portal, bump), held))

    assert len(failures) == len(held)
    assert all("schemaVersion" in failure.detail for failure in failures)
    record_property("cases", len(held))
