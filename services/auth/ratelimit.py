"""`RateLimiter` in process memory: a sliding-window log per (limit, subject).

Each replica counts on its own, so N replicas allow up to N times the configured rate; a
shared store (PostgreSQL, Redis) would make the limits global. That is acceptable for
throttling password guessing, whose real defence is Argon2id.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from services.auth import handlers
from services.auth.settings import Settings


@dataclass(frozen=True)
class Limit:
    """At most `count` attempts in any `window` seconds."""

    count: int
    window: float


def limits_from_settings(settings: Settings) -> dict[str, Limit]:
    return {
        handlers.LOGIN_FAILURES_PER_ACCOUNT: Limit(
            settings.login_failures_per_account, settings.login_failure_window_seconds
        ),
        handlers.LOGIN_FAILURES_PER_ADDRESS: Limit(
            settings.login_failures_per_address, settings.login_failure_window_seconds
        ),
        handlers.REGISTRATIONS_PER_ADDRESS: Limit(
            settings.registrations_per_address, settings.registration_window_seconds
        ),
        handlers.RESET_REQUESTS_PER_EMAIL: Limit(
            settings.reset_requests_per_email, settings.reset_request_window_seconds
        ),
        handlers.RESET_REQUESTS_PER_ADDRESS: Limit(
            settings.reset_requests_per_address, settings.reset_request_window_seconds
        ),
        handlers.VERIFICATION_REQUESTS_PER_ACCOUNT: Limit(
            settings.verification_requests_per_account,
            settings.verification_request_window_seconds,
        ),
    }


class InMemoryRateLimiter:
    """Counts attempts per (limit, subject) in a sliding window, in this process."""

    # Past this many subjects, expired ones are swept so memory stays bounded.
    SWEEP_AT = 10_000

    def __init__(
        self, limits: Mapping[str, Limit], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._attempts: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _limit(self, limit: str) -> Limit:
        try:
            return self._limits[limit]
        except KeyError:
            raise ValueError(f"no rate limit named {limit!r}") from None

    def _recent(self, key: tuple[str, str], window: float, now: float) -> deque[float]:
        attempts = self._attempts.get(key)
        if attempts is None:
            return deque()
        while attempts and attempts[0] <= now - window:
            attempts.popleft()
        return attempts

    def retry_after(self, limit: str, subject: str) -> float | None:
        rule = self._limit(limit)
        now = self._clock()
        with self._lock:
            attempts = self._recent((limit, subject), rule.window, now)
            if len(attempts) < rule.count:
                return None
            # Allowed again once enough of the oldest attempts have left the window.
            return attempts[len(attempts) - rule.count] + rule.window - now

    def hit(self, limit: str, subject: str) -> None:
        rule = self._limit(limit)
        now = self._clock()
        with self._lock:
            key = (limit, subject)
            attempts = self._recent(key, rule.window, now)
            attempts.append(now)
            # Only the newest `count` matter for the decision.
            while len(attempts) > rule.count:
                attempts.popleft()
            self._attempts[key] = attempts
            if len(self._attempts) > self.SWEEP_AT:
                self._sweep(now)

    def reset(self, limit: str, subject: str) -> None:
        with self._lock:
            self._attempts.pop((limit, subject), None)

    def _sweep(self, now: float) -> None:
        for key in list(self._attempts):
            rule = self._limits[key[0]]
            if not self._recent(key, rule.window, now):
                del self._attempts[key]
