"""The HTTP API of `contracts/openapi/auth-service.yaml`, on the generated layer.

`generated.auth.server.build_router` binds every operation of the contract (method, path,
parameters, bodies, statuses, documented headers) and admits each caller as the operation's
`security` says; this module supplies what the contract cannot: `AuthApi`, the implementation
of `AuthServiceInterface` (generated request models → handlers → generated response models),
`DatabaseRoles`, the role authority that decides from the database at request time, and the
problem each domain error becomes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any, Final

from starlette.requests import Request

from generated.auth import models as api
from generated.auth.responses import GetJwksResponse, GetReadinessResponse
from generated.auth.server import AuthServiceInterface
from generated.security import Caller, current_request
from services.auth import handlers
from services.auth.domain import (
    Account,
    AccountDeactivatedError,
    AccountUnusableError,
    CheckPasswordReset,
    ConfirmEmailVerification,
    ConfirmPasswordReset,
    DeactivateUser,
    EmailAlreadyVerifiedError,
    EmailTakenError,
    EmailTooLongError,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    InvalidSingleUseTokenError,
    LogIn,
    LogOut,
    NotPermittedError,
    RateLimitedError,
    RefreshTokens,
    RegisterUser,
    RequestEmailVerification,
    RequestPasswordReset,
    SessionTokens,
    SetUserRoles,
    UserNotFoundError,
)
from services.kit.http import (
    Problem,
    ProblemError,
    ProblemFor,
    bearer_challenge,
    validation_problem,
)
from services.kit.metrics import Metrics
from services.kit.security import ForbiddenError, subject_of

# Shorter than the publish-ahead delay of a rotated key (60 s) less the verifiers' refetch
# interval (30 s), so that even a verifier behind an HTTP cache sees a new key before the
# first token it signs (`services/auth/keyring.py`).
JWKS_CACHE_CONTROL: Final = "public, max-age=25"


def _rate_limited(error: RateLimitedError) -> Problem:
    return Problem.of(
        429,
        "rate-limited",
        "Too many requests",
        error.detail,
        headers={"Retry-After": str(error.retry_after)},
    )


# Seconds a client is told to wait when the service's database cannot be reached.
RETRY_AFTER_SECONDS: Final = 5

# Each domain error → the problem of the contract that describes it.
DOMAIN_PROBLEMS: Final[Mapping[type[Exception], ProblemFor]] = {
    EmailTakenError: lambda e: Problem.of(409, "email-taken", "Email already registered", e.detail),
    EmailTooLongError: lambda e: validation_problem(
        [{"pointer": "/body/email", "message": e.detail}]
    ),
    InvalidCredentialsError: lambda e: Problem.of(
        401, "invalid-credentials", "Invalid credentials", e.detail, headers=bearer_challenge()
    ),
    AccountDeactivatedError: lambda e: Problem.of(
        403, "account-deactivated", "Account deactivated", e.detail
    ),
    InvalidRefreshTokenError: lambda e: Problem.of(
        401, "invalid-refresh-token", "Invalid refresh token", e.detail, headers=bearer_challenge()
    ),
    InvalidSingleUseTokenError: lambda e: Problem.of(
        401, "invalid-token", "Invalid token", e.detail, headers=bearer_challenge()
    ),
    EmailAlreadyVerifiedError: lambda e: Problem.of(
        409, "email-already-verified", "Email already verified", e.detail
    ),
    UserNotFoundError: lambda e: Problem.of(404, "not-found", "Not found", e.detail),
    NotPermittedError: lambda e: Problem.of(403, "forbidden", "Forbidden", e.detail),
    AccountUnusableError: lambda e: Problem.of(
        401,
        "unauthenticated",
        "Unauthenticated",
        e.detail,
        headers=bearer_challenge("invalid_token"),
    ),
    RateLimitedError: _rate_limited,
}


class ClientAddresses:
    """The address a request comes from, as rate limits see it: the connection's peer, unless
    the peer is a trusted proxy, in which case `X-Forwarded-For` is read from the right up to
    the first address that is not a trusted proxy (what a client sends itself is ignored).

    An IPv4 address stands for itself (an IPv4-mapped IPv6 peer is read as the IPv4 address);
    an IPv6 address stands for its /64, which one host typically holds whole, so that a host
    cannot get a fresh limit with every address of its network."""

    def __init__(self, trusted_proxies: Sequence[IPv4Network | IPv6Network] = ()) -> None:
        self._trusted = tuple(trusted_proxies)

    def __call__(self, request: Request) -> str:
        peer = _address(request.client.host) if request.client is not None else None
        if peer is None:
            return "unknown"
        client = peer
        if self._is_trusted(peer):
            forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
            for hop in reversed([hop for hop in forwarded.split(",") if hop.strip()]):
                address = _address(hop)
                if address is None:
                    break  # garbage from beyond our proxies: stop at the last good hop
                client = address
                if not self._is_trusted(address):
                    break
        if isinstance(client, IPv6Address):
            return str(IPv6Network(f"{client}/64", strict=False))
        return str(client)

    def _is_trusted(self, address: IPv4Address | IPv6Address) -> bool:
        return any(address in network for network in self._trusted)


def _address(text: str) -> IPv4Address | IPv6Address | None:
    """An address as peers and proxies write it (`1.2.3.4`, `1.2.3.4:5555`, `2001:db8::1`,
    `[2001:db8::1]:443`), IPv4-mapped IPv6 read as IPv4; None if it is none of these."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class DatabaseRoles:
    """`services.kit.security.RoleAuthority` of the service that owns the accounts: the
    caller's account, read from the database at request time (`handlers.authorize`), must be
    active and hold the required roles now, or own the account the operation names. A token's
    `roles` claim is never trusted: a demotion or a deactivation takes effect at once. A caller
    whose account is gone or deactivated is refused as unauthenticated (`AccountUnusableError`)."""

    def __init__(self, deps: handlers.Dependencies) -> None:
        self._deps = deps

    async def authorize(
        self, caller: Caller, required: frozenset[str], *, owner: uuid.UUID | None
    ) -> None:
        try:
            await handlers.authorize(subject_of(caller), self._deps, owner_of=owner, roles=required)
        except NotPermittedError as error:
            raise ForbiddenError(error.detail) from None


class AuthApi(AuthServiceInterface):
    """The operations of the auth contract, on the handlers' dependencies. The generated router
    calls each method once the caller is admitted and the request is valid."""

    def __init__(
        self,
        deps: handlers.Dependencies,
        *,
        jwks: Callable[[], Mapping[str, Any]],
        ready: Callable[[], Awaitable[bool]],
        client_address: ClientAddresses | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._deps = deps
        self._jwks = jwks
        self._ready = ready
        self._client_address = client_address or ClientAddresses()
        self._metrics = metrics or Metrics.disabled()

    def _client(self) -> str:
        """The address the rate limits count for the request being served."""
        return self._client_address(current_request())

    async def register_user(self, *, body: api.RegisterRequest) -> api.TokenPair:
        command = RegisterUser(body.email, body.password, self._client())
        return _token_pair(await handlers.register_user(command, self._deps))

    async def login_user(self, *, body: api.LoginRequest) -> api.TokenPair:
        command = LogIn(body.email, body.password, self._client())
        return _token_pair(await handlers.log_in(command, self._deps))

    async def refresh_tokens(self, *, body: api.RefreshRequest) -> api.TokenPair:
        tokens = await handlers.refresh_tokens(RefreshTokens(body.refreshToken), self._deps)
        return _token_pair(tokens)

    async def logout_user(self, *, body: api.LogoutRequest) -> None:
        await handlers.log_out(LogOut(body.refreshToken), self._deps)

    async def get_current_account(self, *, caller: Caller) -> api.Account:
        return _account(await handlers.get_account(subject_of(caller), self._deps))

    async def request_email_verification(self, *, caller: Caller) -> None:
        command = RequestEmailVerification(subject_of(caller))
        await handlers.request_email_verification(command, self._deps)

    async def confirm_email_verification(
        self, *, body: api.ConfirmEmailVerificationRequest
    ) -> None:
        await handlers.confirm_email_verification(ConfirmEmailVerification(body.token), self._deps)

    async def request_password_reset(self, *, body: api.PasswordResetRequest) -> None:
        command = RequestPasswordReset(body.email, self._client())
        await handlers.request_password_reset(command, self._deps)

    async def confirm_password_reset(self, *, body: api.ConfirmPasswordResetRequest) -> None:
        command = ConfirmPasswordReset(body.token, body.newPassword)
        await handlers.confirm_password_reset(command, self._deps)

    async def check_password_reset(self, *, body: api.CheckPasswordResetRequest) -> None:
        await handlers.check_password_reset(CheckPasswordReset(body.token), self._deps)

    async def get_account(self, *, caller: Caller, user_id: uuid.UUID) -> api.Account:
        return _account(await handlers.get_user_account(user_id, self._deps))

    async def deactivate_user(self, *, caller: Caller, user_id: uuid.UUID) -> None:
        await handlers.deactivate_user(DeactivateUser(user_id), self._deps)

    async def get_user_roles(self, *, caller: Caller, user_id: uuid.UUID) -> api.UserRoles:
        return _user_roles(user_id, await handlers.get_user_roles(user_id, self._deps))

    async def set_user_roles(
        self, *, caller: Caller, user_id: uuid.UUID, body: api.SetUserRolesRequest
    ) -> api.UserRoles:
        roles = frozenset(role.value for role in body.roles)
        if len(roles) != len(body.roles):  # `uniqueItems`, which the model cannot say
            raise ProblemError(
                validation_problem([{"pointer": "/body/roles", "message": "roles must not repeat"}])
            )
        command = SetUserRoles(user_id, roles)
        return _user_roles(user_id, await handlers.set_user_roles(command, self._deps))

    async def get_jwks(self) -> GetJwksResponse:
        # Read for each request: a key rotation changes the set (`services/auth/keyring.py`).
        return GetJwksResponse(api.JWKS.model_validate(self._jwks()), JWKS_CACHE_CONTROL)

    async def get_liveness(self) -> api.HealthStatus:
        return api.HealthStatus(status="ok")

    async def get_metrics(self) -> str:
        return await self._metrics.exposition()

    async def get_readiness(self) -> GetReadinessResponse:
        database = (
            api.ReadinessStatus.ok if await self._ready() else api.ReadinessStatus.unavailable
        )
        readiness = api.Readiness(status=database, checks={"database": database})
        return GetReadinessResponse(200 if database is api.ReadinessStatus.ok else 503, readiness)


def _token_pair(tokens: SessionTokens) -> api.TokenPair:
    return api.TokenPair(
        accessToken=tokens.access_token,
        refreshToken=tokens.refresh_token,
        tokenType="Bearer",
        expiresIn=tokens.expires_in,
        userId=tokens.user_id,
    )


def _account(account: Account) -> api.Account:
    return api.Account(
        id=account.id,
        email=account.email,
        emailVerified=account.email_verified,
        roles=[api.Role(role) for role in account.sorted_roles()],
        status=api.AccountStatus(account.status.value),
        createdAt=account.created_at,
    )


def _user_roles(user_id: uuid.UUID, roles: frozenset[str]) -> api.UserRoles:
    return api.UserRoles(userId=user_id, roles=[api.Role(role) for role in sorted(roles)])
