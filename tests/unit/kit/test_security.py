"""The kit's `ContractAuthenticator`: an operation's `security`, as the generated router hands
it over, admits a caller by a verified access token (its roles confirmed by the service's
`RoleAuthority`, or the caller being the owner the path names) or by a service credential,
and refuses with the contracts' problems: 401, 403, 503 with `Retry-After`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request

from generated.security import Caller, Requirement, Security
from services.kit.http import ProblemError
from services.kit.security import (
    ANONYMOUS,
    AuthorityUnavailableError,
    ConfirmedRoles,
    ContractAuthenticator,
    ForbiddenError,
    subject_of,
)
from services.kit.tokens import AccessTokenClaims, InvalidTokenError, KeySourceUnavailableError

USER = uuid.UUID("00000000-0000-4000-8000-000000000001")
OTHER = uuid.UUID("00000000-0000-4000-8000-000000000002")
SERVICE_KEY = "s3rvice-key"

ANY_USER = Security((Requirement("bearerAuth"),))
ADMIN = Security((Requirement("bearerAuth", frozenset({"admin"})),))
ADMIN_OR_OWNER = Security((Requirement("bearerAuth", frozenset({"admin"})),), "userId")
ADMIN_OR_SERVICE = Security(
    (Requirement("bearerAuth", frozenset({"admin"})), Requirement("serviceApiKey"))
)
SERVICE_ONLY = Security((Requirement("serviceApiKey"),))


def claims(subject: str = str(USER), roles: tuple[str, ...] = ("user",)) -> AccessTokenClaims:
    now = datetime.now(UTC)
    return AccessTokenClaims(
        subject, roles, "issuer", "audience", now, now + timedelta(minutes=5), "jti"
    )


class Verifier:
    """Tokens are looked up by their text; anything else is refused, or the keys are gone."""

    def __init__(self, tokens: Mapping[str, AccessTokenClaims], *, keys_gone: bool = False):
        self.tokens = dict(tokens)
        self.keys_gone = keys_gone

    async def verify(self, token: str) -> AccessTokenClaims:
        if self.keys_gone:
            raise KeySourceUnavailableError("the JWKS cannot be fetched")
        if token not in self.tokens:
            raise InvalidTokenError("bad signature")
        return self.tokens[token]


class Authority:
    """Records what it is asked; refuses or is unreachable on demand."""

    def __init__(self, *, refuse: str | None = None, unreachable: bool = False) -> None:
        self.asked: list[tuple[Caller, frozenset[str], uuid.UUID | None]] = []
        self.refuse = refuse
        self.unreachable = unreachable

    async def authorize(
        self, caller: Caller, required: frozenset[str], *, owner: uuid.UUID | None
    ) -> None:
        self.asked.append((caller, required, owner))
        if self.unreachable:
            raise AuthorityUnavailableError
        if self.refuse is not None:
            raise ForbiddenError(self.refuse)


def request(
    headers: Mapping[str, str] | None = None, path_params: Mapping[str, str] | None = None
) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [
            (name.lower().encode(), value.encode()) for name, value in (headers or {}).items()
        ],
        "path_params": dict(path_params or {}),
    }
    return Request(scope)


def authenticator(
    authority: Authority | None = None,
    *,
    service_key: str = SERVICE_KEY,
    keys_gone: bool = False,
    tokens: Mapping[str, AccessTokenClaims] | None = None,
) -> ContractAuthenticator:
    return ContractAuthenticator(
        Verifier(tokens or {"good": claims()}, keys_gone=keys_gone),
        authority or Authority(),
        api_keys={"serviceApiKey": ("X-API-Key", service_key)},
        retry_after=7,
    )


BEARER = {"Authorization": "Bearer good"}


async def refusal(
    auth: ContractAuthenticator, security: Security, incoming: Request
) -> tuple[int, str | None, Mapping[str, str]]:
    with pytest.raises(ProblemError) as raised:
        await auth.authenticate(incoming, security)
    problem = raised.value.problem
    return problem.status, problem.detail, problem.headers


async def test_an_operation_without_security_admits_anyone() -> None:
    assert await authenticator().authenticate(request(), Security(())) == ANONYMOUS


async def test_a_valid_token_admits_any_user_without_asking_the_authority() -> None:
    authority = Authority(refuse="never asked")

    caller = await authenticator(authority).authenticate(request(BEARER), ANY_USER)

    assert (caller.scheme, caller.subject, caller.roles) == (
        "bearerAuth",
        str(USER),
        frozenset({"user"}),
    )
    assert isinstance(caller.credential, AccessTokenClaims)
    assert authority.asked == []


@pytest.mark.parametrize(
    ("headers", "detail", "challenge"),
    [
        ({}, "An access token is required.", 'Bearer realm="accord"'),
        (
            {"Authorization": "Basic abc"},
            "Present the access token as `Bearer <token>`.",
            'Bearer realm="accord"',
        ),
        (
            {"Authorization": "Bearer forged"},
            "The access token was refused: bad signature.",
            'Bearer realm="accord", error="invalid_token"',
        ),
    ],
)
async def test_no_usable_token_is_401_with_the_bearer_challenge(
    headers: dict[str, str], detail: str, challenge: str
) -> None:
    status, said, sent = await refusal(authenticator(), ANY_USER, request(headers))

    assert (status, said, sent["WWW-Authenticate"]) == (401, detail, challenge)


async def test_a_token_naming_no_user_is_refused() -> None:
    auth = authenticator(tokens={"good": claims(subject="service-x")})

    status, detail, _ = await refusal(auth, ANY_USER, request(BEARER))

    assert (status, detail) == (401, "The access token names no user.")


async def test_keys_that_cannot_be_fetched_are_503_with_retry_after_not_401() -> None:
    status, _, headers = await refusal(authenticator(keys_gone=True), ANY_USER, request(BEARER))

    assert (status, headers["Retry-After"]) == (503, "7")


async def test_required_roles_are_confirmed_by_the_authority_not_read_from_the_token() -> None:
    authority = Authority()
    # The token claims admin; only the authority's answer counts, and it is asked.
    auth = authenticator(authority, tokens={"good": claims(roles=("admin",))})

    caller = await auth.authenticate(request(BEARER), ADMIN)

    assert authority.asked == [(caller, frozenset({"admin"}), None)]


async def test_a_refusal_of_the_authority_is_403_with_its_reason() -> None:
    auth = authenticator(Authority(refuse="This operation requires the admin role."))

    status, detail, _ = await refusal(auth, ADMIN, request(BEARER))

    assert (status, detail) == (403, "This operation requires the admin role.")


async def test_an_authority_that_cannot_answer_is_503_with_retry_after() -> None:
    status, _, headers = await refusal(
        authenticator(Authority(unreachable=True)), ADMIN, request(BEARER)
    )

    assert (status, headers["Retry-After"]) == (503, "7")


async def test_the_owner_parameter_is_handed_to_the_authority_as_an_id() -> None:
    authority = Authority()

    await authenticator(authority).authenticate(
        request(BEARER, {"userId": str(OTHER)}), ADMIN_OR_OWNER
    )

    assert [(required, owner) for _, required, owner in authority.asked] == [
        (frozenset({"admin"}), OTHER)
    ]


async def test_an_owner_parameter_that_is_not_an_id_is_left_to_the_route_to_refuse() -> None:
    authority = Authority(refuse="never asked")

    await authenticator(authority).authenticate(
        request(BEARER, {"userId": "not-a-uuid"}), ADMIN_OR_OWNER
    )

    assert authority.asked == []


async def test_an_owner_parameter_missing_from_the_path_still_requires_the_roles() -> None:
    authority = Authority(refuse="This operation requires the admin role.")

    status, _, _ = await refusal(authenticator(authority), ADMIN_OR_OWNER, request(BEARER))

    assert status == 403
    assert [(required, owner) for _, required, owner in authority.asked] == [
        (frozenset({"admin"}), None)
    ]


@pytest.mark.parametrize("header", ["X-API-Key", "x-api-key"])
async def test_the_service_key_admits_a_service_without_a_token(header: str) -> None:
    authority = Authority(refuse="never asked")

    caller = await authenticator(authority).authenticate(
        request({header: SERVICE_KEY}), ADMIN_OR_SERVICE
    )

    assert caller == Caller(scheme="serviceApiKey", subject=None)
    assert authority.asked == []


async def test_a_wrong_service_key_falls_back_to_the_token() -> None:
    authority = Authority()
    headers = {"X-API-Key": "wrong", **BEARER}

    caller = await authenticator(authority).authenticate(request(headers), ADMIN_OR_SERVICE)

    assert caller.scheme == "bearerAuth"
    assert len(authority.asked) == 1


@pytest.mark.parametrize(
    ("security", "detail"),
    [
        (ADMIN_OR_SERVICE, "Present an access token or the service API key."),
        (SERVICE_ONLY, "Present the service API key."),
    ],
)
async def test_neither_credential_is_401(security: Security, detail: str) -> None:
    status, said, _ = await refusal(authenticator(), security, request({"X-API-Key": "wrong"}))

    assert (status, said) == (401, detail)


async def test_a_blank_service_key_admits_nobody() -> None:
    auth = authenticator(service_key="")

    status, _, _ = await refusal(auth, SERVICE_ONLY, request({"X-API-Key": ""}))

    assert status == 401


async def test_a_scheme_the_service_did_not_configure_admits_nobody() -> None:
    security = Security((Requirement("partnerKey"),))

    status, _, _ = await refusal(authenticator(), security, request({"X-API-Key": SERVICE_KEY}))

    assert status == 401


def test_the_subject_of_a_user_is_their_id_and_a_service_has_none() -> None:
    assert subject_of(Caller("bearerAuth", str(USER))) == USER
    with pytest.raises(ValueError, match="service credential"):
        subject_of(Caller("serviceApiKey", None))


def user(roles: tuple[str, ...] = ("user",), subject: uuid.UUID = USER) -> Caller:
    return Caller("bearerAuth", str(subject), frozenset(roles))


class Lookup:
    def __init__(self, roles: frozenset[str] | None) -> None:
        self.roles = roles
        self.asked: list[uuid.UUID] = []

    async def __call__(self, user_id: uuid.UUID) -> frozenset[str] | None:
        self.asked.append(user_id)
        return self.roles


async def test_confirmed_roles_let_the_owner_act_without_asking() -> None:
    lookup = Lookup(None)

    await ConfirmedRoles(lookup).authorize(user(), frozenset({"admin"}), owner=USER)

    assert lookup.asked == []


async def test_confirmed_roles_refuse_a_token_that_does_not_claim_the_role_without_asking() -> None:
    lookup = Lookup(frozenset({"admin"}))

    with pytest.raises(ForbiddenError, match="owner or a caller with the admin role"):
        await ConfirmedRoles(lookup).authorize(user(), frozenset({"admin"}), owner=OTHER)
    with pytest.raises(ForbiddenError, match="requires the admin role"):
        await ConfirmedRoles(lookup).authorize(user(), frozenset({"admin"}), owner=None)
    assert lookup.asked == []


@pytest.mark.parametrize(
    ("held", "admitted"),
    [(frozenset({"admin", "user"}), True), (frozenset({"user"}), False), (None, False)],
)
async def test_confirmed_roles_ask_the_auth_service_about_a_claimed_role(
    held: frozenset[str] | None, admitted: bool
) -> None:
    lookup = Lookup(held)
    authority = ConfirmedRoles(lookup)
    admin = user(("admin", "user"))

    if admitted:
        await authority.authorize(admin, frozenset({"admin"}), owner=None)
    else:
        with pytest.raises(ForbiddenError, match="does not confirm"):
            await authority.authorize(admin, frozenset({"admin"}), owner=None)
    assert lookup.asked == [USER]


async def test_confirmed_roles_without_a_lookup_trust_the_token() -> None:
    await ConfirmedRoles(None).authorize(user(("admin",)), frozenset({"admin"}), owner=None)
