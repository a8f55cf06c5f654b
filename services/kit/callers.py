"""What a service that admits callers by the auth service's access tokens reads and builds,
written once for any new service (`accord new service` scaffolds onto it).

- `CallerSettings`: the settings of such a service (a subclass sets the `env_prefix`): where
  the auth service and its keys are, the issuer and audience a token must name, and the service
  credential with which the auth service confirms a caller's roles (`getUserRoles`).
- `caller_security(settings)`: the `ContractAuthenticator` for the generated router (tokens
  verified locally with the auth service's published keys; roles confirmed with the auth
  service at request time, `ConfirmedRoles`), the `AuthClient` it uses, the HTTP client to the
  auth service, and what closes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

import httpx
from pydantic import AfterValidator, Field, SecretStr, field_validator

from services.kit.auth_client import (
    JWKS_PATH,
    AuthClient,
    AuthServiceUnavailableError,
    ClientPolicy,
    jwks_base_url,
)
from services.kit.composition import Close, closing
from services.kit.security import AuthorityUnavailableError, ConfirmedRoles, ContractAuthenticator
from services.kit.settings import (
    BaseServiceSettings,
    is_placeholder,
    not_blank,
    require_https,
    require_strong_secret,
)
from services.kit.tokens import JwksKeySource, TokenVerifier, now_utc
from services.kit.tracing import Tracing

Seconds = Annotated[float, Field(gt=0)]
NotBlank = Annotated[str, AfterValidator(not_blank)]


def http_url(value: str) -> str:
    """`value` if it is an http(s) URL with a host; `ValueError` otherwise."""
    try:
        url = httpx.URL(value)
    except Exception:
        raise ValueError(f"not a URL: {value!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value


class CallerSettings(BaseServiceSettings):
    """The settings of a service whose callers present the auth service's access tokens."""

    # The auth service: roles (`getUserRoles`, with the service credential) and its keys.
    auth_service_url: str = "http://127.0.0.1:3001"
    auth_service_api_key: SecretStr = SecretStr("changethis")
    auth_service_timeout_seconds: Seconds = 1.0
    # Attempts after the first, for a timeout, a connection error or a 5xx.
    auth_service_retries: Annotated[int, Field(ge=0, le=5)] = 2
    # How long a roles answer is trusted: a revoked admin is refused at most this much later.
    roles_cache_seconds: Annotated[float, Field(ge=0)] = 10.0

    # Access tokens: where the public keys are (default: the auth service's JWKS), and the
    # issuer and audience they must name (the auth service's defaults).
    jwks_url: str | None = None
    jwks_refetch_seconds: Seconds = 30.0
    issuer: NotBlank = "http://127.0.0.1:3001"
    audience: NotBlank = "accord"
    # The longest lifetime (`exp - iat`) a token may claim: at least the auth service's
    # AUTH_ACCESS_TOKEN_TTL_SECONDS (900 by default), or its own tokens are refused.
    access_token_max_lifetime_seconds: Annotated[int, Field(ge=1)] = 900

    # `Retry-After` when the keys or the roles cannot be had (503).
    unavailable_retry_after_seconds: Annotated[int, Field(ge=0)] = 5
    # Request bodies over this many bytes are refused with 413 before they are read.
    max_request_body_bytes: Annotated[int, Field(ge=1)] = 64 * 1024

    @property
    def jwks_endpoint(self) -> str:
        return self.jwks_url or self.auth_service_url.rstrip("/") + JWKS_PATH

    @property
    def local_defaults(self) -> list[str]:
        """The local-mode defaults in use, for the start-up warning when `ACCORD_ENV` is unset."""
        prefix, defaults = self.prefix(), []
        if is_placeholder(self.auth_service_api_key):
            defaults.append(f"a placeholder service key ({prefix}AUTH_SERVICE_API_KEY)")
        if not self.auth_service_url.startswith("https://"):
            defaults.append(
                f"the auth service over plain HTTP at {self.auth_service_url} "
                f"({prefix}AUTH_SERVICE_URL)"
            )
        return defaults

    @field_validator("auth_service_url", "jwks_url")
    @classmethod
    def _usable_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    def check_production(self, where: str) -> None:
        prefix = self.prefix()
        require_strong_secret(
            f"{prefix}AUTH_SERVICE_API_KEY (the auth service's AUTH_SERVICE_API_KEY)",
            self.auth_service_api_key.get_secret_value(),
            where,
        )
        require_https(f"{prefix}AUTH_SERVICE_URL", self.auth_service_url, where)
        if self.jwks_url is not None:
            require_https(f"{prefix}JWKS_URL", self.jwks_url, where)


@dataclass(frozen=True)
class CallerSecurity:
    """What `caller_security` builds; `close` closes the HTTP clients."""

    authenticator: ContractAuthenticator
    auth: AuthClient
    http: httpx.AsyncClient
    close: Close


@dataclass(frozen=True)
class AuthService:
    """The auth service as a service that admits its callers sees it: the verifier of its
    tokens (with its published keys), its client under the kit's policy (roles, liveness), and
    the HTTP client to it; `close` closes the HTTP clients."""

    verifier: TokenVerifier
    auth: AuthClient
    http: httpx.AsyncClient
    close: Close


def auth_service(
    settings: CallerSettings,
    *,
    user_agent: str,
    clock: Callable[[], datetime] = now_utc,
    tracing: Tracing | None = None,
) -> AuthService:
    """The auth service for a service with `settings`: its keys fetched and its roles asked
    under the kit's client policy, with `user_agent` as User-Agent and the trace context on
    every call."""
    prefix = settings.prefix()
    policy = ClientPolicy(
        timeout=settings.auth_service_timeout_seconds,
        retries=settings.auth_service_retries,
        cache_seconds=settings.roles_cache_seconds,
    )
    headers = {"User-Agent": user_agent}
    tracing = tracing or Tracing.off()  # the calls carry the trace context even when off
    http = httpx.AsyncClient(
        base_url=settings.auth_service_url, headers=headers, transport=tracing.transport("auth")
    )
    keys_http = httpx.AsyncClient(
        base_url=jwks_base_url(settings.jwks_endpoint, f"{prefix}JWKS_URL"),
        headers=headers,
        transport=tracing.transport("auth"),
    )
    keys = JwksKeySource(
        AuthClient.over(keys_http, policy).jwks,
        min_refetch_interval=timedelta(seconds=settings.jwks_refetch_seconds),
        clock=clock,
    )
    verifier = TokenVerifier(
        keys,
        issuer=settings.issuer,
        audience=settings.audience,
        max_lifetime=timedelta(seconds=settings.access_token_max_lifetime_seconds),
        clock=clock,
    )
    auth = AuthClient.over(
        http,
        policy,
        service_api_key=settings.auth_service_api_key.get_secret_value(),
        credential=f"{prefix}AUTH_SERVICE_API_KEY (the auth service's AUTH_SERVICE_API_KEY)",
    )
    return AuthService(verifier, auth, http, closing(keys_http.aclose, http.aclose))


def caller_security(
    settings: CallerSettings,
    *,
    user_agent: str,
    clock: Callable[[], datetime] = now_utc,
    tracing: Tracing | None = None,
) -> CallerSecurity:
    """The contract's security for a service with `settings`: tokens verified with the auth
    service's keys, roles confirmed with the auth service under the kit's client policy.
    `http` (the auth service's base URL, `user_agent` as User-Agent) is there for the
    service's own calls to the auth service, through its generated client."""
    service = auth_service(settings, user_agent=user_agent, clock=clock, tracing=tracing)
    auth = service.auth

    async def confirmed(user_id: uuid.UUID) -> frozenset[str] | None:
        try:
            return await auth.roles(user_id)
        except AuthServiceUnavailableError as error:
            raise AuthorityUnavailableError(error.reason) from None

    authenticator = ContractAuthenticator(
        service.verifier,
        ConfirmedRoles(confirmed),
        retry_after=settings.unavailable_retry_after_seconds,
    )
    return CallerSecurity(authenticator, auth, service.http, service.close)
