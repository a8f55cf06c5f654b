"""The one client policy under which a service calls another through its generated client
(`generated/<service>/client.py`, whose errors share the base `generated.client.ProblemError`).

- Each attempt has a deadline (`ClientPolicy.timeout`; the answer read and decoded included).
- A timeout, a transport error (refused, reset), a 429 or a 5xx is tried again, at most
  `retries` times, after a pause that doubles from `backoff` up to `max_pause`. A `Retry-After`
  the service sends is honoured: the pause is at least that long, and when it asks for longer
  than `max_pause` the policy stops there rather than ask again too early.
- Any other problem the service answers (401, 403, 404, 409, 422, …) is the caller's to judge:
  `call` raises the generated `ProblemError` as it came, so a caller can pass it through.
- An answer that breaks the contract (a body or a required header off it) is not tried again:
  no retry can fix it.
- Otherwise the answer is `ServiceUnavailableError`, with the reason and the `Retry-After` the
  service last asked for, if any.

`services.kit.auth_client.AuthClient` is this policy around the auth client, with the auth
service's own refinements (a roles cache, coalescing, the key set).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from generated.client import ProblemError

log = logging.getLogger("accord.calls")

T = TypeVar("T")


class ServiceUnavailableError(Exception):
    """The service gave no usable answer within the policy: `reason` says what happened,
    `retry_after` the seconds it last asked to wait (None if it did not say)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class ClientPolicy:
    """How hard, and how often, a service asks another (seconds throughout)."""

    timeout: float = 1.0
    """The deadline of one attempt."""
    retries: int = 2
    """Attempts after the first, for the failures worth trying again."""
    backoff: float = 0.05
    """The pause before the first retry; it doubles before each next one."""
    max_pause: float = 2.0
    """The longest pause, and the longest `Retry-After` waited for."""
    cache_seconds: float = 10.0
    """How long an answer may be reused, where a client caches (the auth client's roles);
    0 asks every time."""

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"the timeout must be positive, not {self.timeout}")
        if self.retries < 0:
            raise ValueError(f"the retries cannot be negative, not {self.retries}")
        for name in ("backoff", "max_pause", "cache_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative, not {getattr(self, name)}")

    def pause(self, retry: int) -> float:
        """The pause before retry number `retry` (1 for the first)."""
        return float(min(self.backoff * 2 ** (retry - 1), self.max_pause))


def retried(status: int) -> bool:
    """Whether an answer with this status is worth asking again: 429 and every 5xx."""
    return status == httpx.codes.TOO_MANY_REQUESTS or status >= 500


async def call(
    policy: ClientPolicy,
    operation: Callable[[], Awaitable[T]],
    what: str,
    *,
    service: str = "the service",
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`operation` (one call of a generated client) under `policy`: its answer; the generated
    `ProblemError` for a status not worth retrying; or `ServiceUnavailableError` naming what was
    asked (`what`) of whom (`service`)."""
    failure = "no attempt was made"
    retry_after: float | None = None
    for attempt in range(1, policy.retries + 2):
        pause = policy.pause(attempt)
        try:
            async with asyncio.timeout(policy.timeout):
                return await operation()
        except TimeoutError:
            failure = f"no answer within {policy.timeout:g} s"
        except httpx.TransportError as error:  # refused, reset, the transport's timeouts
            failure = type(error).__name__
        except ProblemError as error:
            if not retried(error.status):
                raise
            failure = f"status {error.status}"
            asked = error.retry_after
            retry_after = None if asked is None else float(asked)
            if retry_after is not None:
                if retry_after > policy.max_pause:
                    failure += f", asked to retry after {asked} s"
                    break
                pause = max(pause, retry_after)
        except httpx.HTTPError as error:
            raise ServiceUnavailableError(f"{what}: {type(error).__name__}") from None
        except (ValueError, LookupError):  # a body or a required header off the contract
            log.error("%s's answer to %s breaks its contract", service, what)
            raise ServiceUnavailableError(
                f"{what}: {service}'s answer breaks its contract"
            ) from None
        if attempt <= policy.retries:
            log.warning("%s: attempt %d failed (%s)", what, attempt, failure)
            await sleep(pause)
    raise ServiceUnavailableError(f"{what}: {service} could not answer ({failure})", retry_after)
