"""One trace per user action, as `accord up` runs the platform: the trace context of a request
travels through the outbox, SNS and SQS (a moto server over HTTP) to every consumer, and the
console's span store shows it (`/api/traces/{traceId}`, `/api/events`)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.support import StartStack
from tests.e2e.test_stack import PASSWORD, eventually

pytestmark = pytest.mark.emulator


def spans_named(trace: dict[str, Any], service: str, name: str) -> list[dict[str, Any]]:
    return [s for s in trace["spans"] if s["service"] == service and s["name"] == name]


async def test_a_registrations_trace_id_reaches_the_profile_and_the_verification_email(
    start_stack: StartStack,
) -> None:
    stack = await start_stack()
    trace_id = uuid.uuid4().hex
    caller_span = uuid.uuid4().hex[:16]
    console = stack.config.url("mail")

    async with httpx.AsyncClient(timeout=10) as http:
        registered = await http.post(
            f"{stack.config.url('auth')}/api/v1/auth/register",
            json={"email": f"ada-{trace_id[:8]}@example.com", "password": PASSWORD},
            headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
        )
        assert registered.status_code == 201, registered.text
        # The same user action goes on: the caller asks for the verification email in its trace.
        requested = await http.post(
            f"{stack.config.url('auth')}/api/v1/auth/email-verification",
            headers={
                "authorization": f"Bearer {registered.json()['accessToken']}",
                "traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01",
            },
        )
        assert requested.status_code == 202, requested.text

        async def consumed() -> dict[str, Any] | None:
            answer = await http.get(f"{console}/api/traces/{trace_id}")
            if answer.status_code != 200:
                return None
            trace: dict[str, Any] = answer.json()
            done = spans_named(trace, "user", "process user.created") and spans_named(
                trace, "notification", "process user.email.verification.requested"
            )
            return trace if done else None

        trace = await eventually(consumed)
        events = (await http.get(f"{console}/api/events")).json()

    by_id = {span["spanId"]: span for span in trace["spans"]}
    for span in trace["spans"]:
        assert {"service", "name", "parentId", "start", "durationMs"} <= span.keys()
    [register] = spans_named(trace, "auth", "registerUser")
    [request] = spans_named(trace, "auth", "requestEmailVerification")
    [profile] = spans_named(trace, "user", "process user.created")
    [email] = spans_named(trace, "notification", "process user.email.verification.requested")
    assert register["parentId"] == caller_span
    assert register["kind"] == "SERVER"
    assert register["attributes"]["http.route"] == "/api/v1/auth/register"
    assert register["attributes"]["http.response.status_code"] == 201
    for consumer, cause in ((profile, register), (email, request)):
        assert consumer["traceId"] == trace_id
        assert consumer["kind"] == "CONSUMER"
        assert consumer["attributes"]["accord.outcome"] == "handled"
        producer = by_id[consumer["parentId"]]  # the relay's publish span, child of the request
        assert producer["kind"] == "PRODUCER"
        assert producer["service"] == "auth"
        assert by_id[producer["parentId"]] == cause
    assert profile["attributes"]["messaging.destination.name"] == "accord-user-service"

    created = next(
        e for e in events if e["eventType"] == "user.created" and e["traceId"] == trace_id
    )
    hops = [(hop["hop"], hop["service"]) for hop in created["hops"]]
    assert hops[:2] == [("written", "auth"), ("published", "auth")]
    assert ("delivered", "user") in hops
    assert ("handled", "user") in hops
