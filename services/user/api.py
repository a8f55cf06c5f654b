"""The HTTP API of `contracts/openapi/user-service.yaml`: `UserApi` implements the generated
`UserServiceInterface`, from the generated request models to the handlers and back to the
generated response models; the generated router binds it to the contract's routes and admits
each caller by the operation's `security` (`authenticator`); each domain error becomes the
problem the contract describes (`domain_problems`)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from fastapi import APIRouter
from pydantic import BaseModel

from generated.security import Caller as ContractCaller
from generated.user import models as api
from generated.user import server
from generated.user.responses import CreateAddressResponse, GetReadinessResponse
from services.kit.cursors import decode_cursor, encode_cursor
from services.kit.http import (
    Problem,
    ProblemError,
    ProblemFor,
    database_unavailable_problems,
    dependency_unavailable,
    validation_problem,
)
from services.kit.metrics import Metrics
from services.kit.security import (
    AuthorityUnavailableError,
    ConfirmedRoles,
    ContractAuthenticator,
    subject_of,
)
from services.user import handlers
from services.user.domain import (
    CLEARABLE_ADDRESS_FIELDS,
    Address,
    AddressNotFoundError,
    Caller,
    CreateAddress,
    DeleteAddress,
    DependencyUnavailableError,
    ForbiddenError,
    ListProfiles,
    PagePosition,
    Profile,
    ProfileDeactivatedError,
    ProfileNotFoundError,
    ProfilePendingError,
    UpdateAddress,
    UpdateProfile,
)
from services.user.ports import AccessTokenVerifier, RolesClient

PREFIX: Final = "/api/v1/users"

# Contract field → domain field.
PROFILE_FIELD_NAMES: Final = {
    "displayName": "display_name",
    "firstName": "first_name",
    "lastName": "last_name",
    "phone": "phone",
}
ADDRESS_FIELD_NAMES: Final = {
    "label": "label",
    "line1": "line1",
    "line2": "line2",
    "city": "city",
    "region": "region",
    "postalCode": "postal_code",
    "country": "country",
}


def domain_problems(
    *, pending_retry_after: int, unavailable_retry_after: int
) -> Mapping[type[Exception], ProblemFor]:
    """Each domain error → the problem of the contract that describes it."""
    return {
        ForbiddenError: lambda e: Problem.of(403, "forbidden", "Forbidden", e.detail),
        ProfileNotFoundError: lambda e: Problem.of(404, "not-found", "Not found", e.detail),
        ProfilePendingError: lambda e: Problem.of(
            404,
            "profile-pending",
            "Profile not created yet",
            e.detail,
            headers={"Retry-After": str(pending_retry_after)},
        ),
        ProfileDeactivatedError: lambda e: Problem.of(
            409, "profile-deactivated", "Profile deactivated", e.detail
        ),
        AddressNotFoundError: lambda e: Problem.of(404, "not-found", "Not found", e.detail),
        DependencyUnavailableError: lambda e: dependency_unavailable(
            e.detail, unavailable_retry_after
        ),
    } | database_unavailable_problems(unavailable_retry_after)


# --- security ---------------------------------------------------------------------------------


def authenticator(
    verifier: AccessTokenVerifier, roles: RolesClient, *, retry_after: int
) -> ContractAuthenticator:
    """The contract's `bearerAuth` requirements: the token verified here, the roles confirmed
    by the auth service (the owner of the `x-owner-parameter` acts from the token alone)."""

    async def lookup(user_id: uuid.UUID) -> frozenset[str] | None:
        try:
            return await roles.roles(user_id)
        except DependencyUnavailableError:
            raise AuthorityUnavailableError from None

    return ContractAuthenticator(verifier, ConfirmedRoles(lookup), retry_after=retry_after)


def _caller(caller: ContractCaller) -> Caller:
    """The domain's caller: the token's user and roles (authorized already)."""
    return Caller(subject_of(caller), caller.roles)


# --- cursors ----------------------------------------------------------------------------------


def page_cursor(position: PagePosition) -> str:
    """The `nextCursor` of a page that ends at this profile."""
    return encode_cursor(position.created_at, position.id)


def page_position(cursor: str) -> PagePosition:
    """Where a `cursor` (already matched against the contract's pattern) continues."""
    return PagePosition(*decode_cursor(cursor))


# --- responses --------------------------------------------------------------------------------

# Responses are built from stored values, which were validated on their way in: building the
# models without validating them again (`model_construct`) keeps the hot read path short. The
# keyword arguments are checked all the same, by mypy against the generated models.


def profile_model(profile: Profile) -> api.Profile:
    return api.Profile.model_construct(
        id=profile.id,
        email=profile.email,
        displayName=profile.display_name,
        firstName=profile.first_name,
        lastName=profile.last_name,
        phone=profile.phone,
        status=api.ProfileStatus(profile.status.value),
        createdAt=profile.created_at,
        updatedAt=profile.updated_at,
    )


def address_model(address: Address) -> api.Address:
    return api.Address.model_construct(
        id=address.id,
        userId=address.user_id,
        label=address.label,
        line1=address.line1,
        line2=address.line2,
        city=address.city,
        region=address.region,
        postalCode=address.postal_code,
        country=address.country,
        createdAt=address.created_at,
        updatedAt=address.updated_at,
    )


def address_location(address: Address) -> str:
    return f"{PREFIX}/{address.user_id}/addresses/{address.id}"


def _changes(body: BaseModel, names: Mapping[str, str]) -> dict[str, Any]:
    """The fields the client sent (a `null` included), by domain name; at least one."""
    sent = body.model_fields_set
    if not sent:
        raise ProblemError(
            validation_problem(
                [{"pointer": "/body", "message": "At least one field must be given"}]
            )
        )
    return {names[name]: getattr(body, name) for name in sent}


# --- the operations ---------------------------------------------------------------------------


class UserApi(server.UserServiceInterface):
    """The operations of the contract over the handlers. The generated router has admitted the
    caller already (the owner, or a confirmed admin, as each operation's `security` says)."""

    def __init__(
        self,
        deps: handlers.Dependencies,
        database_ready: Callable[[], Awaitable[bool]],
        roles: RolesClient,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._deps = deps
        self._database_ready = database_ready
        self._roles = roles
        self._metrics = metrics or Metrics.disabled()

    async def list_users(
        self, *, caller: ContractCaller, limit: int, cursor: str | None
    ) -> api.ProfilePage:
        after = None if cursor is None else page_position(cursor)
        page = await handlers.list_profiles(ListProfiles(limit, after), self._deps)
        return api.ProfilePage(
            items=[profile_model(profile) for profile in page.items],
            nextCursor=None if page.next is None else page_cursor(page.next),
        )

    async def get_user_profile(self, *, caller: ContractCaller, user_id: uuid.UUID) -> api.Profile:
        return profile_model(await handlers.get_profile(_caller(caller), user_id, self._deps))

    async def update_user_profile(
        self, *, caller: ContractCaller, user_id: uuid.UUID, body: api.UpdateProfileRequest
    ) -> api.Profile:
        command = UpdateProfile(user_id, _changes(body, PROFILE_FIELD_NAMES))
        return profile_model(await handlers.update_profile(_caller(caller), command, self._deps))

    async def list_addresses(
        self, *, caller: ContractCaller, user_id: uuid.UUID
    ) -> api.AddressList:
        found = await handlers.list_addresses(_caller(caller), user_id, self._deps)
        return api.AddressList(items=[address_model(address) for address in found])

    async def create_address(
        self, *, caller: ContractCaller, user_id: uuid.UUID, body: api.CreateAddressRequest
    ) -> CreateAddressResponse:
        command = CreateAddress(
            user_id=user_id,
            label=body.label,
            line1=body.line1,
            line2=body.line2,
            city=body.city,
            region=body.region,
            postal_code=body.postalCode,
            country=body.country,
        )
        address = await handlers.create_address(_caller(caller), command, self._deps)
        return CreateAddressResponse(address_model(address), address_location(address))

    async def get_address(
        self, *, caller: ContractCaller, user_id: uuid.UUID, address_id: uuid.UUID
    ) -> api.Address:
        return address_model(await handlers.get_address(user_id, address_id, self._deps))

    async def delete_address(
        self, *, caller: ContractCaller, user_id: uuid.UUID, address_id: uuid.UUID
    ) -> None:
        await handlers.delete_address(DeleteAddress(user_id, address_id), self._deps)

    async def update_address(
        self,
        *,
        caller: ContractCaller,
        user_id: uuid.UUID,
        address_id: uuid.UUID,
        body: api.UpdateAddressRequest,
    ) -> api.Address:
        changes = _changes(body, ADDRESS_FIELD_NAMES)
        cleared = [
            name
            for name, field in ADDRESS_FIELD_NAMES.items()
            if field in changes and changes[field] is None and field not in CLEARABLE_ADDRESS_FIELDS
        ]
        if cleared:
            raise ProblemError(
                validation_problem(
                    {"pointer": f"/body/{name}", "message": "This field cannot be cleared"}
                    for name in sorted(cleared)
                )
            )
        command = UpdateAddress(user_id, address_id, changes)
        return address_model(await handlers.update_address(command, self._deps))

    async def get_liveness(self) -> api.HealthStatus:
        return api.HealthStatus(status="ok")

    async def get_metrics(self) -> str:
        return await self._metrics.exposition()

    async def get_readiness(self) -> GetReadinessResponse:
        checks = {
            "database": await self._database_ready(),
            "authService": await self._roles.reachable(),
        }
        ready = all(checks.values())
        readiness = api.Readiness(
            status=api.ReadinessStatus.ok if ready else api.ReadinessStatus.unavailable,
            checks={
                name: api.ReadinessStatus.ok if ok else api.ReadinessStatus.unavailable
                for name, ok in checks.items()
            },
        )
        return GetReadinessResponse(200 if ready else 503, readiness)


def build_router(
    deps: handlers.Dependencies,
    verifier: AccessTokenVerifier,
    database_ready: Callable[[], Awaitable[bool]],
    *,
    retry_after: int,
    metrics: Metrics | None = None,
) -> APIRouter:
    """The contract's routes (generated), bound to `UserApi` and admitted by `authenticator`."""
    return server.build_router(
        UserApi(deps, database_ready, deps.roles, metrics=metrics),
        authenticator(verifier, deps.roles, retry_after=retry_after),
    )
