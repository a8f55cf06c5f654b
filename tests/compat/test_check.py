"""`accord check --base REF`, the merge gate, on a temporary git repository holding a copy of
the contracts, the published catalog and the consumers' pacts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from harness.cli import app
from harness.project import Project
from tests.compat.test_diff import git
from tests.conftest import REPOSITORY, edit

runner = CliRunner()
ROLES = "GET /api/v1/auth/users/{userId}/roles"


@pytest.fixture
def repo(project_copy: Project) -> Project:
    """The project copy, with the catalog and pacts, as a git repository tagged `base`."""
    for directory in ("schemas", "pacts"):
        shutil.copytree(REPOSITORY / directory, project_copy.root / directory)
    git(project_copy.root, "init", "-q")
    git(project_copy.root, "add", "-A")
    git(project_copy.root, "commit", "-q", "-m", "contracts")
    git(project_copy.root, "tag", "base")
    return project_copy


def check(project: Project, *args: str) -> Result:
    return runner.invoke(app, ["check", "--base", "base", "--root", str(project.root), *args])


def report(project: Project) -> tuple[int, dict[str, Any]]:
    result = check(project, "--format", "json")
    return result.exit_code, json.loads(result.stdout)


def auth_service(project: Project) -> Path:
    return project.contracts_dir / "openapi" / "auth-service.yaml"


def user_events(project: Project) -> Path:
    return project.contracts_dir / "asyncapi" / "user-events.yaml"


USER_ROLES = """\
    UserRoles:
      type: object
      description: A user's roles.
      required: [userId, roles]
      properties:
        userId:
          $ref: '#/components/schemas/UserId'
        roles:
"""


def test_an_unchanged_project_is_safe_to_merge_with_every_pact_checked(repo: Project) -> None:
    exit_code, answer = report(repo)

    assert (exit_code, answer["safe"], answer["conflicts"]) == (0, True, [])
    assert answer["checked"]["pactInteractions"] >= 4
    assert "user-service-auth-service.json" in answer["checked"]["pacts"]
    assert answer["checked"]["eventSchemas"] == 4


def test_a_removed_response_property_that_a_pact_uses_fails_naming_the_consumer(
    repo: Project,
) -> None:
    edit(
        auth_service(repo),
        USER_ROLES,
        USER_ROLES.replace("[userId, roles]", "[userId]").replace(
            "        roles:\n", "        x:\n"
        ),
    )

    exit_code, answer = report(repo)

    assert exit_code == 1
    assert answer["safe"] is False
    pact = [c for c in answer["conflicts"] if c["kind"] == "pact"]
    assert pact, answer["conflicts"]
    # Every service's roles client holds a pact for getUserRoles (the notification service's
    # since issue 17, the gateway's since issue 18).
    assert {tuple(c["consumers"]) for c in pact} == {
        ("gateway-service",),
        ("notification-service",),
        ("user-service",),
    }
    assert {c["subject"] for c in pact} == {ROLES}
    assert any("$.roles" in c["message"] for c in pact)
    breaking = {
        (c["subject"], tuple(c["consumers"]))
        for c in answer["conflicts"]
        if c["kind"] == "breaking-change"
    }
    # The same schema answers `setUserRoles`, which no pact covers.
    assert breaking == {
        (ROLES, ("gateway-service", "notification-service", "user-service")),
        ("PUT /api/v1/auth/users/{userId}/roles", ("clients without a pact",)),
    }


def test_the_text_answer_names_the_consumer_and_says_not_safe(repo: Project) -> None:
    edit(
        auth_service(repo),
        USER_ROLES,
        USER_ROLES.replace("[userId, roles]", "[userId]").replace(
            "        roles:\n", "        x:\n"
        ),
    )

    result = check(repo)

    assert result.exit_code == 1
    assert "breaks user-service" in result.stdout
    assert "not safe to merge" in result.stdout


def test_an_added_optional_response_property_is_safe_to_merge(repo: Project) -> None:
    roles_items = (
        "          type: array\n"
        "          items:\n"
        "            $ref: '#/components/schemas/Role'\n"
        "          uniqueItems: true\n"
    )
    edit(
        auth_service(repo),
        USER_ROLES + roles_items,
        USER_ROLES + roles_items + "        grantedBy:\n          type: string\n",
    )

    result = check(repo)

    assert result.exit_code == 0, result.stdout
    assert "0 breaking, 2 non-breaking" in result.stdout  # getUserRoles and setUserRoles
    assert "safe to merge" in result.stdout


def test_a_removed_operation_that_a_pact_calls_fails_naming_the_consumer(repo: Project) -> None:
    path = auth_service(repo)
    text = path.read_text()
    start = text.index("  /api/v1/auth/users/{userId}/roles:\n")
    end = text.index("\n  /", start + 1) + 1
    path.write_text(text[:start] + text[end:])

    exit_code, answer = report(repo)

    assert exit_code == 1
    pact = {(c["consumers"][0], c["message"]) for c in answer["conflicts"] if c["kind"] == "pact"}
    assert ("user-service", "the contract has no operation for it") in pact


def test_a_renamed_event_field_breaks_the_consumers_that_read_it(repo: Project) -> None:
    path = user_events(repo)
    text = path.read_text()
    start = text.index("    UserDeactivatedPayload:\n")
    renamed = text[start:].replace("userId", "accountId").replace("1.0.0", "2.0.0")
    path.write_text(text[:start] + renamed)

    exit_code, answer = report(repo)

    assert exit_code == 1
    pact_consumers = {c["consumers"][0] for c in answer["conflicts"] if c["kind"] == "pact"}
    assert {"user-service", "notification-service"} <= pact_consumers


ACCOUNT = """\
      required: [id, email, emailVerified, roles, status, createdAt]
      properties:
        id:
          $ref: '#/components/schemas/UserId'
        email:
          $ref: '#/components/schemas/Email'
        emailVerified:
"""
DISPLAY_NAME = """\
      required: [id, email, displayName, firstName, lastName, phone, status, createdAt, updatedAt]
"""


def test_a_renamed_account_field_the_gateway_reads_fails_naming_the_gateway(
    repo: Project,
) -> None:
    edit(auth_service(repo), ACCOUNT, ACCOUNT.replace("emailVerified", "emailConfirmed"))

    exit_code, answer = report(repo)

    assert exit_code == 1
    pact = [c for c in answer["conflicts"] if c["kind"] == "pact"]
    # Only the gateway reads accounts (`getCurrentAccount`, `getAccount`).
    assert {tuple(c["consumers"]) for c in pact} == {("gateway-service",)}
    assert {c["subject"] for c in pact} == {
        "GET /api/v1/auth/me",
        "GET /api/v1/auth/users/{userId}",
    }
    read = {c["subject"] for c in pact if "$.emailVerified: the consumer reads it" in c["message"]}
    assert read == {"GET /api/v1/auth/me", "GET /api/v1/auth/users/{userId}"}
    assert "breaks gateway-service" in check(repo).stdout


def test_a_removed_profile_field_the_gateway_reads_fails_naming_the_gateway(
    repo: Project,
) -> None:
    path = repo.contracts_dir / "openapi" / "user-service.yaml"
    edit(path, DISPLAY_NAME, DISPLAY_NAME.replace(" displayName,", ""))
    text = path.read_text()
    start = text.index("    Profile:\n")
    field = text.index("        displayName:\n", start)
    end = text.index("        firstName:\n", field)
    path.write_text(text[:field] + text[end:])

    exit_code, answer = report(repo)

    assert exit_code == 1
    pact = [c for c in answer["conflicts"] if c["kind"] == "pact"]
    assert {tuple(c["consumers"]) for c in pact} == {("gateway-service",)}
    assert {c["subject"] for c in pact} == {"GET /api/v1/users/{userId}"}
    assert any("$.displayName: the consumer reads it" in c["message"] for c in pact), pact
    assert "breaks gateway-service" in check(repo).stdout


def test_an_unreadable_pact_is_a_clear_error(repo: Project) -> None:
    (repo.root / "pacts" / "broken.json").write_text("{ not json")

    result = check(repo)

    assert result.exit_code == 2
    assert "broken.json: not a readable pact" in result.stderr


def write_pact(project: Project, consumer: str, interactions: list[dict[str, Any]]) -> None:
    pact = {
        "consumer": {"name": consumer},
        "provider": {"name": "auth-service"},
        "interactions": interactions,
        "metadata": {"pactSpecification": {"version": "4.0"}},
    }
    path = project.root / "pacts" / f"{consumer}-auth-service.json"
    path.write_text(json.dumps(pact))


def login(body: dict[str, Any] | None) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "POST", "path": "/api/v1/auth/login"}
    if body is not None:
        request["body"] = {"content": body, "contentType": "application/json", "encoded": False}
    return {
        "type": "Synchronous/HTTP",
        "description": f"a login with {sorted(body or {})}",
        "request": request,
        "response": {"status": 200},
    }


def test_a_request_the_contract_refuses_is_a_conflict_with_its_own_pointer(repo: Project) -> None:
    write_pact(
        repo,
        "mobile-app",
        [
            login(None),
            login({"email": "ada@example.com"}),
            login({"email": "a@b.co", "password": "p" * 12}),
        ],
    )
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "a new consumer")

    exit_code, answer = report(repo)

    assert exit_code == 1
    found = {
        (c["rule"].split(": ", 1)[1], c["message"], c["pointer"])
        for c in answer["conflicts"]
        if c["consumers"] == ["mobile-app"]
    }
    body = "/paths/~1api~1v1~1auth~1login/post/requestBody"
    assert found == {
        ("a login with []", "the request has no body; the contract requires one", body),
        (
            "a login with ['email']",
            "request body $: 'password' is a required property",
            body,
        ),
    }
