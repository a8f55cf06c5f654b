"""`AccessTokenVerifier` adapters: a cache in front of the kit's `TokenVerifier`.

A client sends the same access token with every request until it expires (15 minutes by
default). Checking its EdDSA signature and claims each time is most of what a profile read
costs, so a token verified once is remembered, by its exact text (signature included, so no
other token can hit its entry), until it expires or for `max_age` at most: a key withdrawn from
the auth service's key set stops being honoured within `max_age` for tokens already seen.
Refused tokens are not remembered.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from services.kit.tokens import AccessTokenClaims, now_utc
from services.user.ports import AccessTokenVerifier

MAX_ENTRIES: Final = 10_000


class CachingTokenVerifier:
    """Verifies a token once, then answers from memory until it expires (or `max_age`)."""

    def __init__(
        self,
        verifier: AccessTokenVerifier,
        *,
        max_age: timedelta = timedelta(seconds=60),
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._verifier = verifier
        self._max_age = max_age
        self._max_entries = max_entries
        self._clock = clock
        self._verified: OrderedDict[str, tuple[datetime, AccessTokenClaims]] = OrderedDict()

    async def verify(self, token: str) -> AccessTokenClaims:
        now = self._clock()
        entry = self._verified.get(token)
        if entry is not None:
            if now < entry[0]:
                return entry[1]
            del self._verified[token]
        claims = await self._verifier.verify(token)
        self._verified[token] = (min(claims.expires_at, now + self._max_age), claims)
        while len(self._verified) > self._max_entries:
            self._verified.popitem(last=False)  # the oldest first
        return claims
