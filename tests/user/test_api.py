"""Every endpoint of `contracts/openapi/user-service.yaml` over HTTP, on SQLite and PostgreSQL:
profiles, addresses, the admin list, problems, and the health probes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from services.kit.cursors import encode_cursor
from tests import factories
from tests.user.conftest import HOME, UserService

PROBLEMS = "https://accord.example/problems/"


def problem_type(response: Any) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    kind: str = response.json()["type"]
    return kind.removeprefix(PROBLEMS)


# --- profiles ---------------------------------------------------------------------------------


async def test_a_consumed_user_created_gives_the_owner_an_active_profile(
    service: UserService,
) -> None:
    user_id = await service.register(email="ada@example.com")

    response = await service.http.get(f"/api/v1/users/{user_id}", headers=service.owner(user_id))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["id"] == str(user_id)
    assert body["email"] == "ada@example.com"
    assert body["status"] == "active"
    assert body["displayName"] is None
    assert body["phone"] is None
    assert body["createdAt"] == body["updatedAt"]


async def test_the_owners_profile_before_user_created_is_pending_with_retry_after(
    service: UserService,
) -> None:
    user_id = uuid.uuid4()

    response = await service.http.get(f"/api/v1/users/{user_id}", headers=service.owner(user_id))

    assert response.status_code == 404
    assert problem_type(response) == "profile-pending"
    assert response.headers["retry-after"] == "1"
    assert response.json()["instance"] == f"/api/v1/users/{user_id}"


async def test_an_admin_reading_a_user_the_auth_service_knows_but_not_yet_consumed_sees_pending(
    service: UserService,
) -> None:
    registering = uuid.uuid4()
    service.roles.set(registering, ["user"])

    response = await service.http.get(f"/api/v1/users/{registering}", headers=service.admin())

    assert response.status_code == 404
    assert problem_type(response) == "profile-pending"
    assert response.headers["retry-after"] == "1"


async def test_an_admin_reading_a_user_nobody_knows_gets_not_found_without_retry_after(
    service: UserService,
) -> None:
    response = await service.http.get(f"/api/v1/users/{uuid.uuid4()}", headers=service.admin())

    assert response.status_code == 404
    assert problem_type(response) == "not-found"
    assert "retry-after" not in response.headers


async def test_a_deactivated_profile_reads_as_a_tombstone_without_personal_data(
    service: UserService,
) -> None:
    user_id = await service.register()
    await service.http.patch(
        f"/api/v1/users/{user_id}",
        json={"displayName": "Ada", "phone": "+447700900123"},
        headers=service.owner(user_id),
    )
    await service.add_address(user_id)

    await service.deactivate(user_id)

    profile = (
        await service.http.get(f"/api/v1/users/{user_id}", headers=service.owner(user_id))
    ).json()
    assert profile["status"] == "deactivated"
    assert [profile[k] for k in ("email", "displayName", "firstName", "lastName", "phone")] == [
        None
    ] * 5
    addresses = await service.http.get(
        f"/api/v1/users/{user_id}/addresses", headers=service.owner(user_id)
    )
    assert addresses.status_code == 200
    assert addresses.json() == {"items": []}


async def test_patch_changes_the_fields_sent_and_null_clears_one(service: UserService) -> None:
    user_id = await service.register(email="ada@example.com")
    url, owner = f"/api/v1/users/{user_id}", service.owner(user_id)
    first = await service.http.patch(
        url,
        json={"displayName": "Ada Lovelace", "firstName": "Ada", "phone": "+447700900123"},
        headers=owner,
    )
    assert first.status_code == 200, first.text

    second = await service.http.patch(url, json={"phone": None, "lastName": "L"}, headers=owner)

    assert second.status_code == 200
    body = second.json()
    assert body["displayName"] == "Ada Lovelace"
    assert body["firstName"] == "Ada"
    assert body["lastName"] == "L"
    assert body["phone"] is None
    assert body["email"] == "ada@example.com"
    assert body["updatedAt"] > body["createdAt"]
    assert (await service.http.get(url, headers=owner)).json() == body


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, "/body"),
        ({"email": "eve@example.com"}, "/body/email"),
        ({"phone": "07700 900123"}, "/body/phone"),
        ({"displayName": ""}, "/body/displayName"),
        ({"firstName": "x" * 101}, "/body/firstName"),
    ],
    ids=["empty", "email-is-not-changeable", "phone-not-e164", "blank-name", "long-name"],
)
async def test_patch_that_breaks_the_contract_is_422_pointing_at_the_value(
    service: UserService, body: dict[str, Any], pointer: str
) -> None:
    user_id = await service.register()

    response = await service.http.patch(
        f"/api/v1/users/{user_id}", json=body, headers=service.owner(user_id)
    )

    assert response.status_code == 422
    assert problem_type(response) == "validation-error"
    assert pointer in [error["pointer"] for error in response.json()["errors"]]


async def test_text_with_a_nul_character_is_refused_with_422_not_stored(
    service: UserService,
) -> None:
    user_id = await service.register()
    owner = service.owner(user_id)

    patched = await service.http.patch(
        f"/api/v1/users/{user_id}", json={"firstName": "A\u0000da"}, headers=owner
    )
    created = await service.http.post(
        f"/api/v1/users/{user_id}/addresses", json={**HOME, "city": "Lon\u0000don"}, headers=owner
    )

    assert patched.status_code == 422
    assert patched.json()["errors"][0]["pointer"] == "/body/firstName"
    assert created.status_code == 422
    assert created.json()["errors"][0]["pointer"] == "/body/city"


async def test_text_with_other_control_characters_is_stored_and_given_back(
    service: UserService,
) -> None:
    user_id = await service.register()
    owner = service.owner(user_id)
    # Every character but NUL is text the contract admits (`^[^\x00]*$`), C0 and C1 controls too.
    name = "A\u0001d\u001fa\u007f\u0085\u2028"

    patched = await service.http.patch(
        f"/api/v1/users/{user_id}", json={"firstName": name}, headers=owner
    )
    created = await service.http.post(
        f"/api/v1/users/{user_id}/addresses", json={**HOME, "city": name}, headers=owner
    )
    read = await service.http.get(f"/api/v1/users/{user_id}", headers=owner)

    assert patched.status_code == 200, patched.text
    assert created.status_code == 201, created.text
    assert created.json()["city"] == name
    assert read.json()["firstName"] == name


async def test_a_body_that_is_not_json_is_400_malformed_request(service: UserService) -> None:
    user_id = await service.register()

    response = await service.http.patch(
        f"/api/v1/users/{user_id}",
        content=b"{not json",
        headers={**service.owner(user_id), "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert problem_type(response) == "malformed-request"


async def test_a_path_id_that_is_not_a_uuid_is_422_pointing_at_it(service: UserService) -> None:
    response = await service.http.get("/api/v1/users/not-a-uuid", headers=service.admin())

    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/path/userId"


async def test_a_tombstone_cannot_be_patched(service: UserService) -> None:
    user_id = await service.register()
    await service.deactivate(user_id)

    response = await service.http.patch(
        f"/api/v1/users/{user_id}", json={"firstName": "Ada"}, headers=service.owner(user_id)
    )

    assert response.status_code == 409
    assert problem_type(response) == "profile-deactivated"


async def test_patching_a_profile_not_created_yet_is_pending(service: UserService) -> None:
    user_id = uuid.uuid4()

    response = await service.http.patch(
        f"/api/v1/users/{user_id}", json={"firstName": "Ada"}, headers=service.owner(user_id)
    )

    assert response.status_code == 404
    assert problem_type(response) == "profile-pending"


# --- the admin list ---------------------------------------------------------------------------


async def _all_pages(service: UserService, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await service.http.get("/api/v1/users", params=params, headers=service.admin())
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append([item["id"] for item in page["items"]])
        cursor = page["nextCursor"]
        if cursor is None:
            return pages


async def test_the_admin_list_pages_through_every_profile_in_creation_order(
    service: UserService,
) -> None:
    created = [await service.register() for _ in range(7)]
    await service.deactivate(created[3])

    pages = await _all_pages(service, limit=3)

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [item for page in pages for item in page] == [str(user) for user in created]


async def test_a_page_that_ends_exactly_at_the_last_profile_says_there_is_no_more(
    service: UserService,
) -> None:
    for _ in range(4):
        await service.register()

    pages = await _all_pages(service, limit=2)

    assert [len(page) for page in pages] == [2, 2]


async def test_profiles_created_while_paging_are_never_seen_twice_and_none_is_skipped(
    service: UserService,
) -> None:
    before = [str(await service.register()) for _ in range(6)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await service.http.get("/api/v1/users", params=params, headers=service.admin())
        ).json()
        seen.extend(item["id"] for item in page["items"])
        await service.register()  # inserted between two page reads
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen))
    assert seen[: len(before)] == before


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "bm90IGEgY3Vyc29y"},
        {"cursor": "eyJjIjoiMjAyNi0xMS0yNVQxMDowNTowMFoiLCJpIjoiMmM0ZTZhOGIifQ"},
        {"cursor": "AAZhFvW5SwAsTmqLDR9KPI5bfZ8bPV5+"},
        {"cursor": "AAZhFvW5SwAsTmqLDR9KPI5bfZ8bPV56A"},
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
    ],
    ids=[
        "too-short",
        "earlier-form",
        "not-base64url",
        "33-characters",
        "limit-0",
        "limit-101",
        "limit-text",
    ],
)
async def test_a_cursor_or_limit_outside_the_contract_is_422(
    service: UserService, params: dict[str, Any]
) -> None:
    response = await service.http.get("/api/v1/users", params=params, headers=service.admin())

    assert response.status_code == 422
    assert problem_type(response) == "validation-error"
    assert response.json()["errors"][0]["pointer"] == f"/query/{next(iter(params))}"


async def test_a_cursor_of_the_contracts_form_continues_after_the_position_it_names(
    service: UserService,
) -> None:
    for _ in range(3):
        await service.register()
    everyone = (await service.http.get("/api/v1/users", headers=service.admin())).json()["items"]
    second = everyone[1]
    # Made here rather than issued: the position of the second profile, as the service encodes it.
    cursor = encode_cursor(datetime.fromisoformat(second["createdAt"]), uuid.UUID(second["id"]))

    after_second = await service.http.get(
        "/api/v1/users", params={"cursor": cursor}, headers=service.admin()
    )
    from_the_start = await service.http.get(
        "/api/v1/users", params={"cursor": "A" * 32}, headers=service.admin()
    )
    past_the_end = await service.http.get(
        "/api/v1/users", params={"cursor": "_" * 32}, headers=service.admin()
    )

    assert after_second.status_code == 200
    assert [item["id"] for item in after_second.json()["items"]] == [
        item["id"] for item in everyone[2:]
    ]
    assert from_the_start.json()["items"] == everyone
    assert past_the_end.json() == {"items": [], "nextCursor": None}


# --- addresses --------------------------------------------------------------------------------


async def test_an_address_is_created_with_its_location_and_read_back(service: UserService) -> None:
    user_id = await service.register()
    owner = service.owner(user_id)

    created = await service.http.post(
        f"/api/v1/users/{user_id}/addresses", json={**HOME, "line2": "Flat 3"}, headers=owner
    )

    assert created.status_code == 201, created.text
    address = created.json()
    assert created.headers["location"] == f"/api/v1/users/{user_id}/addresses/{address['id']}"
    assert address["userId"] == str(user_id)
    assert address["line2"] == "Flat 3"
    assert address["region"] is None
    read = await service.http.get(created.headers["location"], headers=owner)
    assert read.status_code == 200
    assert read.json() == address


async def test_addresses_are_listed_oldest_first(service: UserService) -> None:
    user_id = await service.register()
    labels = ["Home", "Work", "Holiday"]
    for label in labels:
        await service.add_address(user_id, label=label)

    response = await service.http.get(
        f"/api/v1/users/{user_id}/addresses", headers=service.owner(user_id)
    )

    assert [item["label"] for item in response.json()["items"]] == labels


async def test_an_address_patch_changes_the_fields_sent_and_clears_line2(
    service: UserService,
) -> None:
    user_id = await service.register()
    address = await service.add_address(user_id, line2="Flat 3", region="Greater London")
    url = f"/api/v1/users/{user_id}/addresses/{address['id']}"

    response = await service.http.patch(
        url, json={"line2": None, "city": "Westminster"}, headers=service.owner(user_id)
    )

    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["line2"] is None
    assert changed["city"] == "Westminster"
    assert changed["region"] == "Greater London"
    assert changed["label"] == "Home"
    assert changed["updatedAt"] > changed["createdAt"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, "/body"),
        ({"label": None}, "/body/label"),
        ({"country": "gb"}, "/body/country"),
        ({"userId": str(uuid.uuid4())}, "/body/userId"),
    ],
    ids=["empty", "label-cleared", "lowercase-country", "unknown-field"],
)
async def test_an_address_patch_that_breaks_the_contract_is_422(
    service: UserService, body: dict[str, Any], pointer: str
) -> None:
    user_id = await service.register()
    address = await service.add_address(user_id)

    response = await service.http.patch(
        f"/api/v1/users/{user_id}/addresses/{address['id']}",
        json=body,
        headers=service.owner(user_id),
    )

    assert response.status_code == 422
    assert pointer in [error["pointer"] for error in response.json()["errors"]]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({key: value for key, value in HOME.items() if key != "city"}, "/body/city"),
        ({**HOME, "country": "GBR"}, "/body/country"),
        ({**HOME, "postalCode": ""}, "/body/postalCode"),
        ({**HOME, "id": str(uuid.uuid4())}, "/body/id"),
    ],
    ids=["missing-city", "three-letter-country", "blank-postal-code", "unknown-field"],
)
async def test_an_address_that_breaks_the_contract_is_422(
    service: UserService, body: dict[str, Any], pointer: str
) -> None:
    user_id = await service.register()

    response = await service.http.post(
        f"/api/v1/users/{user_id}/addresses", json=body, headers=service.owner(user_id)
    )

    assert response.status_code == 422
    assert pointer in [error["pointer"] for error in response.json()["errors"]]


async def test_a_deleted_address_is_gone(service: UserService) -> None:
    user_id = await service.register()
    address = await service.add_address(user_id)
    url, owner = f"/api/v1/users/{user_id}/addresses/{address['id']}", service.owner(user_id)

    deleted = await service.http.delete(url, headers=owner)
    again = await service.http.delete(url, headers=owner)

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert again.status_code == 404
    assert problem_type(again) == "not-found"
    assert (await service.http.get(url, headers=owner)).status_code == 404
    assert (await service.http.patch(url, json={"label": "x"}, headers=owner)).status_code == 404


async def test_another_users_address_id_is_not_found_under_this_user(
    service: UserService,
) -> None:
    ada, bob = await service.register(), await service.register()
    bobs = await service.add_address(bob)

    response = await service.http.get(
        f"/api/v1/users/{ada}/addresses/{bobs['id']}", headers=service.owner(ada)
    )

    assert response.status_code == 404


async def test_a_tombstone_cannot_get_an_address(service: UserService) -> None:
    user_id = await service.register()
    await service.deactivate(user_id)

    response = await service.http.post(
        f"/api/v1/users/{user_id}/addresses", json=HOME, headers=service.owner(user_id)
    )

    assert response.status_code == 409
    assert problem_type(response) == "profile-deactivated"


async def test_addresses_of_a_profile_not_created_yet_are_pending(service: UserService) -> None:
    user_id = uuid.uuid4()
    owner = service.owner(user_id)

    listed = await service.http.get(f"/api/v1/users/{user_id}/addresses", headers=owner)
    created = await service.http.post(
        f"/api/v1/users/{user_id}/addresses", json=HOME, headers=owner
    )

    assert (listed.status_code, problem_type(listed)) == (404, "profile-pending")
    assert (created.status_code, problem_type(created)) == (404, "profile-pending")
    assert created.headers["retry-after"] == "1"


# --- health -----------------------------------------------------------------------------------


async def test_the_probes_answer_ok_when_the_database_and_auth_service_are_up(
    service: UserService,
) -> None:
    live = await service.http.get("/health/live")
    ready = await service.http.get("/health/ready")

    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "authService": "ok"}}


async def test_readiness_names_the_auth_service_when_it_is_down(service: UserService) -> None:
    service.roles.down = True

    ready = await service.http.get("/health/ready")

    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": "ok", "authService": "unavailable"}


async def test_unknown_paths_and_methods_are_problems(service: UserService) -> None:
    missing = await service.http.get("/api/v1/nothing-here")
    wrong_method = await service.http.put(
        f"/api/v1/users/{uuid.uuid4()}", json={}, headers=service.admin()
    )

    assert (missing.status_code, problem_type(missing)) == (404, "not-found")
    assert wrong_method.status_code == 405


async def test_an_event_for_another_user_leaves_this_profile_alone(service: UserService) -> None:
    ada = await service.register(email="ada@example.com")

    await service.deliver(factories.user_deactivated(uuid.uuid4()))

    profile = (await service.http.get(f"/api/v1/users/{ada}", headers=service.owner(ada))).json()
    assert (profile["status"], profile["email"]) == ("active", "ada@example.com")
