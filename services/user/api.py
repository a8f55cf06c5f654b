"""The HTTP API of `contracts/openapi/user-service.yaml`: routes from the generated request
models to the handlers and back to the generated response models, the security requirements
of each operation, and the problem each domain error becomes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from generated.user import models as api
from services.kit.cursors import CURSOR_PATTERN, decode_cursor, encode_cursor
from services.kit.http import (
    Problem,
    ProblemError,
    ProblemFor,
    database_unavailable_problems,
    dependency_unavailable,
    require_bearer_token,
    unauthenticated,
    validation_problem,
)
from services.kit.tokens import InvalidTokenError, KeySourceUnavailableError
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
JSON: Final = "application/json"

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


# --- cursors ----------------------------------------------------------------------------------


def page_cursor(position: PagePosition) -> str:
    """The `nextCursor` of a page that ends at this profile."""
    return encode_cursor(position.created_at, position.id)


def page_position(cursor: str) -> PagePosition:
    """Where a `cursor` (already matched against the contract's pattern) continues."""
    return PagePosition(*decode_cursor(cursor))


# --- responses --------------------------------------------------------------------------------


def _json(
    model: BaseModel, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        model.model_dump_json(), status_code=status_code, headers=headers, media_type=JSON
    )


# Responses are built from stored values, which were validated on their way in: building the
# models without validating them again (`model_construct`) keeps the hot read path short.


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


# --- security ---------------------------------------------------------------------------------

UserIdPath = Annotated[uuid.UUID, Path(alias="userId")]
AddressIdPath = Annotated[uuid.UUID, Path(alias="addressId")]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(pattern=CURSOR_PATTERN)]


class Security:
    """The contract's `bearerAuth` requirements: authentication from the token, authorization
    by the handlers' rules (the owner, or an admin the auth service confirms)."""

    def __init__(
        self, verifier: AccessTokenVerifier, deps: handlers.Dependencies, retry_after: int
    ) -> None:
        self._verifier = verifier
        self._deps = deps
        self._retry_after = retry_after

    async def caller(self, request: Request) -> Caller:
        """Any authenticated user."""
        token = require_bearer_token(request.headers.get("authorization"))
        try:
            claims = await self._verifier.verify(token)
        except InvalidTokenError as error:
            raise unauthenticated(
                f"The access token was refused: {error.reason}.", invalid_token=True
            ) from None
        except KeySourceUnavailableError:
            raise ProblemError(
                dependency_unavailable(
                    "The keys that verify access tokens cannot be fetched from the auth service.",
                    self._retry_after,
                )
            ) from None
        try:
            user_id = uuid.UUID(claims.subject)
        except ValueError:
            raise unauthenticated("The access token names no user.", invalid_token=True) from None
        return Caller(user_id, frozenset(claims.roles))

    async def owner_or_admin(self, request: Request) -> Caller:
        """`bearerAuth: [admin]` with `x-owner-parameter: userId`."""
        caller = await self.caller(request)
        # Read from the path here rather than declared as a parameter, so that the credentials
        # are checked first; a `userId` that is not a UUID is left to the route's 422.
        try:
            user_id = uuid.UUID(request.path_params["userId"])
        except (KeyError, ValueError):
            return caller
        await handlers.authorize(caller, user_id, self._deps)
        return caller

    async def admin(self, request: Request) -> Caller:
        """`bearerAuth: [admin]`."""
        caller = await self.caller(request)
        await handlers.authorize_admin(caller, self._deps)
        return caller


# --- routes -----------------------------------------------------------------------------------


def build_router(
    deps: handlers.Dependencies,
    security: Security,
    database_ready: Callable[[], Awaitable[bool]],
    roles: RolesClient,
) -> APIRouter:
    """The routes of the contract, bound to the handlers' dependencies."""
    router = APIRouter()
    # Credentials are checked as dependencies, before the request body is validated. (Given
    # as defaults: annotations naming these local aliases could not be resolved by FastAPI.)
    owner_or_admin = Depends(security.owner_or_admin)
    admin = Depends(security.admin)

    @router.get(PREFIX)
    async def list_users(limit: Limit = 20, cursor: Cursor = None, _: Caller = admin) -> Response:
        after = None if cursor is None else page_position(cursor)
        page = await handlers.list_profiles(ListProfiles(limit, after), deps)
        return _json(
            api.ProfilePage(
                items=[profile_model(profile) for profile in page.items],
                nextCursor=None if page.next is None else page_cursor(page.next),
            )
        )

    @router.get(PREFIX + "/{userId}")
    async def get_user_profile(user_id: UserIdPath, caller: Caller = owner_or_admin) -> Response:
        return _json(profile_model(await handlers.get_profile(caller, user_id, deps)))

    @router.patch(PREFIX + "/{userId}")
    async def update_user_profile(
        user_id: UserIdPath, body: api.UpdateProfileRequest, caller: Caller = owner_or_admin
    ) -> Response:
        command = UpdateProfile(user_id, _changes(body, PROFILE_FIELD_NAMES))
        return _json(profile_model(await handlers.update_profile(caller, command, deps)))

    @router.get(PREFIX + "/{userId}/addresses")
    async def list_addresses(user_id: UserIdPath, caller: Caller = owner_or_admin) -> Response:
        found = await handlers.list_addresses(caller, user_id, deps)
        return _json(api.AddressList(items=[address_model(address) for address in found]))

    @router.post(PREFIX + "/{userId}/addresses", status_code=201)
    async def create_address(
        user_id: UserIdPath, body: api.CreateAddressRequest, caller: Caller = owner_or_admin
    ) -> Response:
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
        address = await handlers.create_address(caller, command, deps)
        return _json(address_model(address), 201, headers={"Location": address_location(address)})

    @router.get(PREFIX + "/{userId}/addresses/{addressId}")
    async def get_address(
        user_id: UserIdPath, address_id: AddressIdPath, _: Caller = owner_or_admin
    ) -> Response:
        return _json(address_model(await handlers.get_address(user_id, address_id, deps)))

    @router.patch(PREFIX + "/{userId}/addresses/{addressId}")
    async def update_address(
        user_id: UserIdPath,
        address_id: AddressIdPath,
        body: api.UpdateAddressRequest,
        _: Caller = owner_or_admin,
    ) -> Response:
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
        return _json(address_model(await handlers.update_address(command, deps)))

    @router.delete(PREFIX + "/{userId}/addresses/{addressId}", status_code=204)
    async def delete_address(
        user_id: UserIdPath, address_id: AddressIdPath, _: Caller = owner_or_admin
    ) -> Response:
        await handlers.delete_address(DeleteAddress(user_id, address_id), deps)
        return Response(status_code=204)

    @router.get("/health/live")
    async def get_liveness() -> Response:
        return _json(api.HealthStatus(status="ok"))

    @router.get("/health/ready")
    async def get_readiness() -> Response:
        checks = {
            "database": await database_ready(),
            "authService": await roles.reachable(),
        }
        ready = all(checks.values())
        readiness = api.Readiness(
            status=api.ReadinessStatus.ok if ready else api.ReadinessStatus.unavailable,
            checks={
                name: api.ReadinessStatus.ok if ok else api.ReadinessStatus.unavailable
                for name, ok in checks.items()
            },
        )
        return _json(readiness, 200 if ready else 503)

    return router
