"""The kit's client policy for any generated client (`services/kit/calls.py`), shown on the
user service's: what is retried, what is passed on as the generated `ProblemError`, and what
becomes `ServiceUnavailableError` (with the `Retry-After` the service asked for)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

import generated.client
from generated.user import client as user_client
from services.kit.calls import ClientPolicy, ServiceUnavailableError, call

BASE_URL = "http://user.test"
Answer = httpx.Response | Exception


class Pauses:
    """A `sleep` that records the pauses and does not wait."""

    def __init__(self) -> None:
        self.taken: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)


class UserService:
    """Scripted answers: each request takes the next (the last one repeats), after `delay`."""

    def __init__(self, *answers: Answer, delay: float = 0.0) -> None:
        self.answers = list(answers)
        self.delay = delay
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(answer, Exception):
            raise answer
        return answer


def problem(status: int, kind: str = "about:blank", **headers: str) -> httpx.Response:
    body = {"type": kind, "title": "Failure", "status": status}
    return httpx.Response(status, json=body, headers=headers)


def no_addresses() -> httpx.Response:
    return httpx.Response(200, json={"items": []})


def client_of(service: UserService) -> user_client.UserServiceClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(service), base_url=BASE_URL)
    return user_client.UserServiceClient(http, bearer_auth="a-token")


async def list_addresses(
    service: UserService, *, pauses: Pauses | None = None, **policy: Any
) -> Any:
    client = client_of(service)
    user_id = uuid.uuid4()
    return await call(
        ClientPolicy(**{"backoff": 0.01, **policy}),
        lambda: client.list_addresses(user_id=user_id),
        "the addresses",
        service="the user service",
        sleep=pauses or Pauses(),
    )


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), problem(429), problem(500), problem(503)],
    ids=["refused", "429", "500", "503"],
)
async def test_a_failure_worth_retrying_is_retried_and_the_next_answer_used(
    failure: Answer,
) -> None:
    service = UserService(failure, no_addresses())

    answer = await list_addresses(service)

    assert answer.items == []
    assert len(service.requests) == 2
    assert service.requests[-1].headers["Authorization"] == "Bearer a-token"


@pytest.mark.parametrize("status", [401, 403, 404, 409])
async def test_a_problem_not_worth_retrying_is_passed_on_as_the_generated_problem_error(
    status: int,
) -> None:
    kind = "https://accord.example/problems/profile-pending"
    service = UserService(problem(status, kind, **{"Retry-After": "1"}))

    with pytest.raises(generated.client.ProblemError) as raised:
        await list_addresses(service, retries=3)

    assert isinstance(raised.value, user_client.ProblemError)
    assert raised.value.status == status
    assert raised.value.problem.type == kind
    assert raised.value.retry_after == 1
    assert len(service.requests) == 1


async def test_when_the_retries_are_spent_the_error_carries_the_last_retry_after() -> None:
    pauses = Pauses()
    service = UserService(problem(503, **{"Retry-After": "1"}))

    with pytest.raises(ServiceUnavailableError, match="the user service could not answer") as e:
        await list_addresses(service, retries=2, pauses=pauses)

    assert e.value.retry_after == 1.0
    assert pauses.taken == pytest.approx([1.0, 1.0])
    assert len(service.requests) == 3


async def test_a_retry_after_beyond_the_cap_ends_the_attempts_and_is_reported() -> None:
    service = UserService(problem(503, **{"Retry-After": "60"}))

    with pytest.raises(ServiceUnavailableError, match="retry after 60 s") as raised:
        await list_addresses(service, retries=3, max_pause=2.0)

    assert raised.value.retry_after == 60.0
    assert len(service.requests) == 1


async def test_an_attempt_that_outlasts_its_deadline_is_retried_then_unavailable() -> None:
    service = UserService(no_addresses(), delay=0.5)

    with pytest.raises(ServiceUnavailableError, match=r"no answer within 0\.05 s") as raised:
        await list_addresses(service, timeout=0.05, retries=1)

    assert raised.value.retry_after is None
    assert len(service.requests) == 2


async def test_an_answer_that_breaks_the_contract_is_unavailable_at_once() -> None:
    service = UserService(httpx.Response(200, text="<html>maintenance</html>"))

    with pytest.raises(ServiceUnavailableError, match="the user service's answer breaks"):
        await list_addresses(service, retries=3)

    assert len(service.requests) == 1
