"""An overview (`contracts/openapi/gateway-service.yaml`, schema `Overview`) composed from three
calls made concurrently through the generated clients: the account (auth service), the profile
and the addresses (user service).

Each call runs under the kit's client policy (`services.kit.calls.call`) within its part's
deadline, and all three within the deadline of the whole. The account is what an overview is
about: its refusal (401, 403, 404) is answered as the gateway's own problem, and its absence as
503 with `Retry-After`. The profile and the addresses are parts: a missing one makes the answer
partial, with a `PartProblem` saying why; a profile still pending (404 `profile-pending`) is
reported as such. Nothing that happens downstream becomes a 500.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import generated.client
from generated.auth import models as auth
from generated.gateway import models as api
from generated.user import models as user
from services.kit import calls
from services.kit.calls import ClientPolicy, ServiceUnavailableError
from services.kit.http import Problem, ProblemError, bearer_challenge, dependency_unavailable

log = logging.getLogger("accord.gateway")

T = TypeVar("T")

PROBLEMS: Final = "https://accord.example/problems/"
PROFILE_PENDING: Final = PROBLEMS + "profile-pending"


@dataclass(frozen=True)
class Deadlines:
    """How long a part may take (its retries included), and the whole answer (seconds)."""

    part: float
    whole: float


@dataclass(frozen=True)
class Calls:
    """The three calls of one overview, each a generated client's method bound to its
    arguments (and to the caller's token), and the statuses of the auth service's refusals of
    the account that the gateway answers as its own (those its operation documents)."""

    account: Callable[[], Awaitable[auth.Account]]
    profile: Callable[[], Awaitable[user.Profile]]
    addresses: Callable[[], Awaitable[user.AddressList]]
    refusals: frozenset[int] = frozenset({401, 403, 404})


class Composer:
    """Composes overviews under one client policy and one set of deadlines; `retry_after` is
    the `Retry-After` of a 503 when the account cannot be had and the auth service asked for
    no longer wait."""

    def __init__(self, policy: ClientPolicy, deadlines: Deadlines, *, retry_after: int) -> None:
        self._policy = policy
        self._deadlines = deadlines
        self._retry_after = retry_after

    async def overview(self, made: Calls, *, arrived: float | None = None) -> api.Overview:
        """The overview the three calls give; the gateway's problem when the account cannot
        be had. The whole deadline counts from `arrived` (the event loop's clock when the
        request arrived, so that the caller's admission counts too), or from now."""
        loop = asyncio.get_running_loop()
        deadline = (loop.time() if arrived is None else arrived) + self._deadlines.whole
        account = asyncio.create_task(self._part(made.account, "the account", "the auth service"))
        profile = asyncio.create_task(self._part(made.profile, "the profile", "the user service"))
        addresses = asyncio.create_task(
            self._part(made.addresses, "the addresses", "the user service")
        )
        tasks = (account, profile, addresses)
        try:
            composed = await self._account(account, deadline, made.refusals)
            # The parts have what is left of the whole deadline; what is still on its way then
            # is missing.
            await asyncio.wait((profile, addresses), timeout=max(0.0, deadline - loop.time()))
            had_profile = self._outcome(profile, api.Part.profile, _profile)
            had_addresses = self._outcome(addresses, api.Part.addresses, _addresses)
            return _compose(composed, had_profile, had_addresses)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _part(self, operation: Callable[[], Awaitable[T]], what: str, service: str) -> T:
        """One call under the policy, within the part's deadline."""
        try:
            async with asyncio.timeout(self._deadlines.part):
                return await calls.call(self._policy, operation, what, service=service)
        except TimeoutError:
            raise ServiceUnavailableError(
                f"{what}: no answer within the part deadline of {self._deadlines.part:g} s"
            ) from None

    async def _account(
        self, task: asyncio.Task[auth.Account], deadline: float, refusals: frozenset[int]
    ) -> api.Account:
        """The account, or the gateway's problem: the auth service's refusal passed through
        (a status in `refusals`), or 503 with `Retry-After`."""
        try:
            async with asyncio.timeout_at(deadline):
                return _account(await task)
        except TimeoutError:
            detail = f"The account: no answer within the deadline of {self._deadlines.whole:g} s."
            raise self._unavailable(detail) from None
        except ServiceUnavailableError as error:
            raise self._unavailable(_sentence(error.reason), error.retry_after) from None
        except generated.client.ProblemError as error:
            if error.status in refusals:
                raise _passed_through(error) from None
            log.error("the auth service answered %d for the account", error.status)
            detail = f"The account: the auth service answered {error.status}."
            raise self._unavailable(detail, error.retry_after) from None
        except Exception:  # an answer off the contract, or anything unforeseen: never a 500
            log.exception("the account could not be had")
            raise self._unavailable("The account could not be had.") from None

    def _unavailable(self, detail: str, retry_after: float | None = None) -> ProblemError:
        seconds = max(self._retry_after, math.ceil(retry_after or 0))
        return ProblemError(dependency_unavailable(detail, seconds))

    def _outcome(
        self, task: asyncio.Task[Any], part: api.Part, convert: Callable[[Any], Any]
    ) -> _Outcome:
        """What became of a part: its value, pending, or missing with the problem that says
        why (not done by the deadline, unavailable, refused, or anything unforeseen)."""
        what = f"The {part.value}"
        if not task.done():
            detail = f"{what}: no answer within the deadline of {self._deadlines.whole:g} s."
            return _Outcome(None, problem=_missing(part, detail))
        try:
            return _Outcome(convert(task.result()))
        except generated.client.ProblemError as error:
            if _pending(error):
                return _Outcome(None if part is api.Part.profile else [], pending=True)
            return _Outcome(None, problem=_refused_part(part, error))
        except ServiceUnavailableError as error:
            return _Outcome(None, problem=_missing(part, _sentence(error.reason)))
        except Exception:  # an answer off the contract, or anything unforeseen: never a 500
            log.exception("%s could not be had", what.lower())
            return _Outcome(None, problem=_missing(part, f"{what} could not be had."))


@dataclass(frozen=True)
class _Outcome:
    """What became of a part: its value (None if missing), whether it is pending, and the
    problem when it is missing."""

    value: Any
    pending: bool = False
    problem: api.PartProblem | None = None


def _compose(account: api.Account, profile: _Outcome, addresses: _Outcome) -> api.Overview:
    if profile.pending:
        # The profile is being created: it has no addresses yet, whatever their call said.
        status, addresses = api.ProfileAvailability.pending, _Outcome([])
    elif profile.problem is not None:
        status = api.ProfileAvailability.unavailable
    else:
        status = api.ProfileAvailability.available
    problems = [part.problem for part in (profile, addresses) if part.problem is not None]
    return api.Overview(
        account=account,
        profile=profile.value,
        profileStatus=status,
        addresses=addresses.value,
        partial=bool(problems),
        problems=problems,
    )


def _pending(error: generated.client.ProblemError[Any]) -> bool:
    return error.status == 404 and getattr(error.problem, "type", None) == PROFILE_PENDING


def _missing(part: api.Part, detail: str) -> api.PartProblem:
    return api.PartProblem(
        part=part,
        type=PROBLEMS + "dependency-unavailable",
        title="Service unavailable",
        status=503,
        detail=detail,
    )


def _refused_part(part: api.Part, error: generated.client.ProblemError[Any]) -> api.PartProblem:
    """The problem the user service answered for a part, as the part's problem."""
    problem = error.problem
    title = getattr(problem, "title", None) or "Unavailable"
    return api.PartProblem(
        part=part,
        type=getattr(problem, "type", None) or "about:blank",
        title=title,
        status=error.status,
        detail=getattr(problem, "detail", None) or title,
    )


def _passed_through(error: generated.client.ProblemError[Any]) -> ProblemError:
    """The auth service's refusal of the account (401, 403, 404) as the gateway's problem."""
    problem = error.problem
    title = getattr(problem, "title", None) or "Refused"
    headers = bearer_challenge("invalid_token") if error.status == 401 else {}
    return ProblemError(
        Problem(
            status=error.status,
            type=getattr(problem, "type", None) or "about:blank",
            title=title,
            detail=getattr(problem, "detail", None),
            headers=headers,
        )
    )


def _account(answer: auth.Account) -> api.Account:
    return api.Account.model_validate(answer.model_dump(mode="json"))


def _profile(answer: user.Profile) -> api.Profile:
    return api.Profile.model_validate(answer.model_dump(mode="json"))


def _addresses(answer: user.AddressList) -> list[api.Address]:
    return [api.Address.model_validate(item.model_dump(mode="json")) for item in answer.items]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(reason: str) -> str:
    """A policy's reason ("the profile: the user service could not answer (ConnectError)") as
    a problem's detail."""
    return _capital(reason).rstrip(".") + "."
