"""Schemathesis over `contracts/openapi/notification-service.yaml`, in process, as an admin:
every generated request (valid or not) gets an answer the contract describes, never a 500."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks
from schemathesis.config import SchemathesisConfig

from harness.project import Project
from services.notification import handlers
from services.notification.app import Adapters, create_app
from services.notification.domain import NotificationType, SendNotification
from services.notification.mail import RecordingEmailSender
from services.notification.rendering import JinjaEmailComposer
from services.notification.roles import StaticRoleDirectory
from services.notification.storage import SqlNotificationDatabase
from tests.notification.support import LINK_BASE, Tokens, settings_for

pytestmark = pytest.mark.contract


async def _seed(database_url: str) -> None:
    """A few sent and skipped entries, so that lists and cursors have something to show."""
    database = SqlNotificationDatabase(database_url)
    await database.migrate()
    deps = handlers.Dependencies(
        unit_of_work=database.unit_of_work,
        sender=RecordingEmailSender(),
        composer=JinjaEmailComposer(),
        clock=lambda: datetime.now(UTC),
        link_base_url=LINK_BASE,
        claim_lease=timedelta(seconds=5),
    )
    now = deps.clock()
    user = uuid.UUID("6f1c1e0e-8f3e-4c1a-9d3e-2b7f4a6c9e10")  # the contract's example user
    try:
        for sequence, kind in enumerate(list(NotificationType) * 3, start=2):
            await handlers.send_notification(
                SendNotification(
                    event_id=uuid.uuid4(),
                    event_type="user.email.verification.requested",
                    user_id=user if sequence % 2 else uuid.uuid4(),
                    sequence=sequence,
                    kind=kind,
                    email="ada@example.com",
                    token="tok_" + uuid.uuid4().hex,
                    expires_at=now + timedelta(hours=1 if sequence % 3 else -1),
                ),
                deps,
            )
    finally:
        await database.dispose()


@pytest.fixture
def schema(repository: Project, tmp_path: Path, tokens: Tokens) -> Any:
    """The contract, bound to the service on a seeded SQLite database."""
    database_url = f"sqlite:///{tmp_path / 'notification.db'}"
    asyncio.run(_seed(database_url))
    # Schemathesis runs the app (and its lifespan) on its own event loop, so the adapters
    # are built here and connect only there.
    app = create_app(
        settings_for(database_url),
        adapters=Adapters(
            database=SqlNotificationDatabase(database_url),
            sender=RecordingEmailSender(),
            tokens=tokens.verifier(),
            roles=StaticRoleDirectory({tokens.admin_id: frozenset({"user", "admin"})}),
            consumer=None,
        ),
    )
    # Every request carries an admin's token, except those that probe the security itself.
    config = SchemathesisConfig.from_dict(
        {"auth": {"openapi": {"bearerAuth": {"bearer": tokens.admin()}}}}
    )
    loaded = schemathesis.openapi.from_path(
        repository.contracts_dir / "openapi" / "notification-service.yaml", config=config
    )
    loaded.app = app
    return loaded


# `schemathesis.pytest.from_fixture` does not run on this pytest (it sets `Node._nodeid`), so
# each operation's strategies are driven with Hypothesis directly.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_keeps_the_contract(schema: Any, mode: GenerationMode) -> None:
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "GET /api/v1/notifications",
        "GET /health/live",
        "GET /health/ready",
    }
    if mode is GenerationMode.NEGATIVE:
        # The probes take no input at all: there is nothing to get wrong.
        operations = [op for op in operations if op.path == "/api/v1/notifications"]
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=40,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def keeps_the_contract(case: Any) -> None:
            if mode is GenerationMode.POSITIVE and "cursor" in (case.query or {}):
                # A schema-valid cursor this service did not issue is refused with 422, as the
                # contract says; everything else about the answer is still checked.
                response = case.call()
                case.validate_response(response, excluded_checks=[checks.positive_data_acceptance])
                assert response.status_code in (200, 422), response.text
                return
            case.call_and_validate()

        keeps_the_contract()
