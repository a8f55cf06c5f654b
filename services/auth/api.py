"""The HTTP API of `contracts/openapi/auth-service.yaml`: routes from the generated request
models to the handlers and back to the generated response models, the security requirements
of each operation, and the problem each domain error becomes."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from generated.auth import models as api
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
    require_bearer_token,
    unauthenticated,
    validation_problem,
)
from services.kit.tokens import AccessTokenClaims, InvalidTokenError, TokenVerifier

PREFIX: Final = "/api/v1/auth"
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


UserIdPath = Annotated[uuid.UUID, Path(alias="userId")]


class Security:
    """The contract's security schemes: `bearerAuth` (our JWTs) and `serviceApiKey`.

    A token proves who the caller is; what the caller may do is read from the database at
    request time (`handlers.authorize`), so a demotion or a deactivation takes effect at once.
    """

    def __init__(
        self, verifier: TokenVerifier, service_api_key: str, deps: handlers.Dependencies
    ) -> None:
        self._verifier = verifier
        self._service_api_key = service_api_key.encode("utf-8")
        self._deps = deps

    async def bearer(self, request: Request) -> AccessTokenClaims:
        """Any authenticated user (`security: [{bearerAuth: []}]`)."""
        token = require_bearer_token(request.headers.get("authorization"))
        try:
            claims = await self._verifier.verify(token)
        except InvalidTokenError as error:
            raise unauthenticated(
                f"The access token was refused: {error.reason}.", invalid_token=True
            ) from None
        try:
            uuid.UUID(claims.subject)
        except ValueError:
            raise unauthenticated("The access token names no user.", invalid_token=True) from None
        return claims

    async def admin_or_owner(self, request: Request, user_id: UserIdPath) -> AccessTokenClaims:
        """`bearerAuth: [admin]` with `x-owner-parameter: userId`: an active admin, or the
        account's active owner."""
        claims = await self.bearer(request)
        await handlers.authorize(uuid.UUID(claims.subject), self._deps, owner_of=user_id)
        return claims

    async def admin(self, request: Request) -> AccessTokenClaims:
        """`bearerAuth: [admin]`: an account that is active and holds `admin` now."""
        claims = await self.bearer(request)
        await handlers.authorize(uuid.UUID(claims.subject), self._deps)
        return claims

    async def admin_or_service(self, request: Request) -> None:
        """`[{bearerAuth: [admin]}, {serviceApiKey: []}]`: either credential will do."""
        presented = request.headers.get("x-api-key")
        if presented is not None and self.is_service_key(presented):
            return
        if request.headers.get("authorization") is None:
            raise unauthenticated("Present an admin access token or the service API key.")
        await self.admin(request)

    def is_service_key(self, presented: str) -> bool:
        if not self._service_api_key:  # no key configured: no service is let in
            return False
        return hmac.compare_digest(presented.encode("utf-8"), self._service_api_key)


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


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """A generated response model, validated once when built, as the JSON body (FastAPI's
    `response_model` would validate it a second time on every request)."""
    return Response(model.model_dump_json(), status_code, media_type="application/json")


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


def build_router(
    deps: handlers.Dependencies,
    security: Security,
    jwks: Callable[[], Mapping[str, Any]],
    ready: Callable[[], Awaitable[bool]],
    client_address: ClientAddresses | None = None,
) -> APIRouter:
    """The routes of the contract, bound to the handlers' dependencies."""
    router = APIRouter()
    client_address = client_address or ClientAddresses()
    # Credentials are checked as dependencies, so before the request body is validated.
    admin = Depends(security.admin)
    admin_or_owner = Depends(security.admin_or_owner)
    admin_or_service = Depends(security.admin_or_service)

    @router.post(f"{PREFIX}/register", status_code=201)
    async def register_user(request: Request, body: api.RegisterRequest) -> Response:
        command = RegisterUser(body.email, body.password, client_address(request))
        return model_response(_token_pair(await handlers.register_user(command, deps)), 201)

    @router.post(f"{PREFIX}/login")
    async def login_user(request: Request, body: api.LoginRequest) -> Response:
        command = LogIn(body.email, body.password, client_address(request))
        return model_response(_token_pair(await handlers.log_in(command, deps)))

    @router.post(f"{PREFIX}/refresh")
    async def refresh_tokens(body: api.RefreshRequest) -> Response:
        tokens = await handlers.refresh_tokens(RefreshTokens(body.refreshToken), deps)
        return model_response(_token_pair(tokens))

    @router.post(f"{PREFIX}/logout", status_code=204)
    async def logout_user(body: api.LogoutRequest) -> Response:
        await handlers.log_out(LogOut(body.refreshToken), deps)
        return Response(status_code=204)

    @router.get(f"{PREFIX}/me")
    async def get_current_account(request: Request) -> Response:
        claims = await security.bearer(request)
        account = await handlers.get_account(uuid.UUID(claims.subject), deps)
        return model_response(_account(account))

    @router.post(f"{PREFIX}/email-verification", status_code=202)
    async def request_email_verification(request: Request) -> Response:
        claims = await security.bearer(request)
        command = RequestEmailVerification(uuid.UUID(claims.subject))
        await handlers.request_email_verification(command, deps)
        return Response(status_code=202)

    @router.post(f"{PREFIX}/email-verification/confirm", status_code=204)
    async def confirm_email_verification(body: api.ConfirmEmailVerificationRequest) -> Response:
        await handlers.confirm_email_verification(ConfirmEmailVerification(body.token), deps)
        return Response(status_code=204)

    @router.post(f"{PREFIX}/password-reset", status_code=202)
    async def request_password_reset(request: Request, body: api.PasswordResetRequest) -> Response:
        command = RequestPasswordReset(body.email, client_address(request))
        await handlers.request_password_reset(command, deps)
        return Response(status_code=202)

    @router.post(f"{PREFIX}/password-reset/confirm", status_code=204)
    async def confirm_password_reset(body: api.ConfirmPasswordResetRequest) -> Response:
        command = ConfirmPasswordReset(body.token, body.newPassword)
        await handlers.confirm_password_reset(command, deps)
        return Response(status_code=204)

    @router.post(f"{PREFIX}/password-reset/check", status_code=204)
    async def check_password_reset(body: api.CheckPasswordResetRequest) -> Response:
        await handlers.check_password_reset(CheckPasswordReset(body.token), deps)
        return Response(status_code=204)

    @router.post(
        f"{PREFIX}/users/{{userId}}/deactivate", status_code=204, dependencies=[admin_or_owner]
    )
    async def deactivate_user(user_id: UserIdPath) -> Response:
        await handlers.deactivate_user(DeactivateUser(user_id), deps)
        return Response(status_code=204)

    @router.get(f"{PREFIX}/users/{{userId}}/roles", dependencies=[admin_or_service])
    async def get_user_roles(user_id: UserIdPath) -> Response:
        return model_response(_user_roles(user_id, await handlers.get_user_roles(user_id, deps)))

    @router.put(f"{PREFIX}/users/{{userId}}/roles", dependencies=[admin])
    async def set_user_roles(user_id: UserIdPath, body: api.SetUserRolesRequest) -> Response:
        roles = frozenset(role.value for role in body.roles)
        if len(roles) != len(body.roles):  # `uniqueItems`, which the model cannot say
            raise ProblemError(
                validation_problem([{"pointer": "/body/roles", "message": "roles must not repeat"}])
            )
        command = SetUserRoles(user_id, roles)
        return model_response(_user_roles(user_id, await handlers.set_user_roles(command, deps)))

    @router.get("/.well-known/jwks.json")
    async def get_jwks() -> JSONResponse:
        # Read for each request: a key rotation changes the set (`services/auth/keyring.py`).
        key_set = api.JWKS.model_validate(jwks()).model_dump(mode="json", exclude_none=True)
        return JSONResponse(key_set, headers={"Cache-Control": JWKS_CACHE_CONTROL})

    @router.get("/health/live")
    async def get_liveness() -> Response:
        return model_response(api.HealthStatus(status="ok"))

    @router.get("/health/ready")
    async def get_readiness() -> JSONResponse:
        database = api.ReadinessStatus.ok if await ready() else api.ReadinessStatus.unavailable
        readiness = api.Readiness(status=database, checks={"database": database})
        return JSONResponse(
            readiness.model_dump(mode="json"),
            status_code=200 if database is api.ReadinessStatus.ok else 503,
        )

    return router
