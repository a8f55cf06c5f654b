"""The contracts' security, enforced the same way by every service.

The generated routers (`generated/<service>/server.py`) hand each request, with its
operation's `Security` as the contract states it, to an `Authenticator`
(`generated/security.py`). `ContractAuthenticator` is that authenticator for every service:

- *authentication* is the kit's: a bearer access token verified by the service's verifier
  (`bearerAuth`), or a service credential compared in constant time (`serviceApiKey` and any
  other `apiKey` scheme the service configures);
- *authorization* is the service's: its `RoleAuthority` decides, at request time, whether the
  caller may act as the requirement's roles, or as the owner named by the operation's
  `x-owner-parameter`. The auth service reads its own database; the others ask the auth
  service (`ConfirmedRoles`). So a demotion or a deactivation takes effect at once, not when
  a token expires.

Refusals are the problems the contracts document: 401 (no credential, a refused token), 403
(a credential without the right), 503 with `Retry-After` (the keys or the authority cannot be
reached).
"""

from __future__ import annotations

import functools
import hmac
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol

from starlette.requests import Request

from generated.security import Caller, Requirement, Security
from services.kit.http import (
    Problem,
    ProblemError,
    dependency_unavailable,
    require_bearer_token,
    unauthenticated,
)
from services.kit.tokens import AccessTokenClaims, InvalidTokenError, KeySourceUnavailableError

BEARER: Final = "bearerAuth"

# Every admitted request parses its token's subject and, for an owner's operation, the path's
# id: the same few strings again and again, so their parses are kept (a wrong one raises, and
# is not kept).
_parse_id = functools.lru_cache(maxsize=4096)(uuid.UUID)
ANONYMOUS: Final = Caller(scheme="", subject=None)


class AccessTokenVerifier(Protocol):
    async def verify(self, token: str) -> AccessTokenClaims: ...


class AuthorityUnavailableError(Exception):
    """The source of truth about roles cannot be reached (the caller is answered 503)."""


class RoleAuthority(Protocol):
    """Whether a caller with a verified token may act, decided from the source of truth."""

    async def authorize(
        self, caller: Caller, required: frozenset[str], *, owner: uuid.UUID | None
    ) -> None:
        """Return if `caller` holds every role in `required` now, or (when `owner` is given,
        from the operation's `x-owner-parameter`) is that owner; raise `ForbiddenError`
        otherwise, or `AuthorityUnavailableError`."""
        ...


class ForbiddenError(Exception):
    """The caller is known but may not do this (403); the message is the problem's detail."""


def forbidden(detail: str) -> ProblemError:
    return ProblemError(Problem.of(403, "forbidden", "Forbidden", detail))


class ContractAuthenticator:
    """`generated.security.Authenticator` for a service: its token verifier, its role
    authority, and the service credentials it accepts (scheme → (header, secret); a blank
    secret admits nobody)."""

    def __init__(
        self,
        verifier: AccessTokenVerifier,
        authority: RoleAuthority,
        *,
        api_keys: Mapping[str, tuple[str, str]] | None = None,
        retry_after: int = 5,
    ) -> None:
        self._verifier = verifier
        self._authority = authority
        self._api_keys = {
            scheme: (header.lower(), secret.encode("utf-8"))
            for scheme, (header, secret) in (api_keys or {}).items()
        }
        self._retry_after = retry_after

    async def authenticate(self, request: Request, security: Security) -> Caller:
        bearer = None
        for requirement in security.alternatives:
            if requirement.scheme == BEARER:
                bearer = requirement
            elif self._presents_key(request, requirement.scheme):
                return Caller(scheme=requirement.scheme, subject=None)
        if bearer is None:  # only service credentials would do, and none was right
            if not security.alternatives:
                return ANONYMOUS
            raise unauthenticated("Present the service API key.")
        if request.headers.get("authorization") is None and len(security.alternatives) > 1:
            raise unauthenticated("Present an access token or the service API key.")
        caller = await self._caller(request)
        await self._authorize(request, caller, bearer, security.owner_parameter)
        return caller

    def _presents_key(self, request: Request, scheme: str) -> bool:
        configured = self._api_keys.get(scheme)
        if configured is None:
            return False
        header, secret = configured
        presented = request.headers.get(header)
        if presented is None or not secret:
            return False
        return hmac.compare_digest(presented.encode("utf-8"), secret)

    async def _caller(self, request: Request) -> Caller:
        token = require_bearer_token(request.headers.get("authorization"))
        try:
            claims = await self._verifier.verify(token)
        except InvalidTokenError as error:
            raise unauthenticated(
                f"The access token was refused: {error.reason}.", invalid_token=True
            ) from None
        except KeySourceUnavailableError:
            raise self._unavailable(
                "The keys that verify access tokens cannot be fetched from the auth service."
            ) from None
        try:
            _parse_id(claims.subject)
        except ValueError:
            raise unauthenticated("The access token names no user.", invalid_token=True) from None
        return Caller(BEARER, claims.subject, frozenset(claims.roles), claims)

    async def _authorize(
        self,
        request: Request,
        caller: Caller,
        requirement: Requirement,
        owner_parameter: str | None,
    ) -> None:
        owner = None
        if owner_parameter is not None and owner_parameter in request.path_params:
            try:
                owner = _parse_id(str(request.path_params[owner_parameter]))
            except ValueError:
                return  # not an id: the route refuses it (422) before anything is read
        # An owner parameter the path does not have owns nothing: the roles are required.
        if not requirement.roles and owner is None:
            return
        try:
            await self._authority.authorize(caller, requirement.roles, owner=owner)
        except ForbiddenError as error:
            raise forbidden(str(error)) from None
        except AuthorityUnavailableError:
            raise self._unavailable(
                "The roles of the caller cannot be confirmed now; try again shortly."
            ) from None

    def _unavailable(self, detail: str) -> ProblemError:
        return ProblemError(dependency_unavailable(detail, self._retry_after))


class PublicOnly:
    """`generated.security.Authenticator` of a service whose contract declares no security
    scheme: every operation is public, and nobody is admitted to anything else."""

    async def authenticate(self, request: Request, security: Security) -> Caller:
        if security.alternatives:
            raise unauthenticated("This service accepts no credential.")
        return ANONYMOUS


PUBLIC_ONLY: Final = PublicOnly()


def subject_of(caller: Caller) -> uuid.UUID:
    """The user id of a caller admitted by an access token."""
    if caller.subject is None:
        raise ValueError("the caller was admitted by a service credential, not a user's token")
    return _parse_id(caller.subject)


class ConfirmedRoles:
    """`RoleAuthority` of a service that does not own the accounts: the owner may act on what
    is theirs; anyone else must claim the roles in the token *and* have the auth service
    confirm them now (`lookup`: the user's roles, None for no such user; raises
    `AuthorityUnavailableError` when the auth service cannot answer). With no `lookup`, the
    token's claim is trusted (local mode with no service credential)."""

    def __init__(
        self,
        lookup: Callable[[uuid.UUID], Awaitable[frozenset[str] | None]] | None,
    ) -> None:
        self._lookup = lookup

    async def authorize(
        self, caller: Caller, required: frozenset[str], *, owner: uuid.UUID | None
    ) -> None:
        subject = subject_of(caller)
        if owner is not None and subject == owner:
            return
        missing = required - caller.roles
        if missing:
            raise ForbiddenError(_needs(required, owner))
        if self._lookup is None:
            return
        held = await self._lookup(subject)
        if held is None or not required <= held:
            raise ForbiddenError("The auth service does not confirm the roles of this token.")


def _needs(required: frozenset[str], owner: uuid.UUID | None) -> str:
    roles = " and ".join(sorted(required))
    if owner is not None:
        return f"Only the owner or a caller with the {roles} role may do this."
    return f"This operation requires the {roles} role."
