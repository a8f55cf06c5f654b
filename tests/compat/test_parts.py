"""Issue 17: every part of a contract is compared, as the deployed consumers see it, and every
consumer is named. Each test: an old/new pair (the base and the edited working tree), the
verdict of `accord check`, the rule id and the pointer, and whom it names."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.project import Project
from tests.compat.corpus import cases as c
from tests.compat.test_diff import git
from tests.conftest import REPOSITORY, edit

runner = CliRunner()


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


def change(project: Project, file: str, old: str, new: str) -> None:
    edit(project.root / file, old, new)


def bump(project: Project, event_type: str, version: str) -> None:
    anchor = f"\n      description: Payload of `{event_type}`."
    change(
        project,
        c.EVENTS,
        f"x-schema-version: 1.0.0{anchor}",
        f"x-schema-version: {version}{anchor}",
    )


def gate(project: Project) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(
        app, ["check", "--base", "base", "--root", str(project.root), "--format", "json"]
    )
    return result.exit_code, json.loads(result.stdout)


def conflicts(answer: dict[str, Any], rule: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(subject, pointer, consumers) of each conflict with `rule`."""
    return [
        (item["subject"], item["pointer"], tuple(item["consumers"]))
        for item in answer["conflicts"]
        if item["rule"] == rule
    ]


def named(answer: dict[str, Any]) -> set[str]:
    return {name for item in answer["conflicts"] for name in item["consumers"]}


# --- HTTP: response headers --------------------------------------------------------------------


def test_a_removed_location_header_is_breaking(repo: Project) -> None:
    change(repo, c.USER_HTTP, c.LOCATION_HEADER, "")

    code, answer = gate(repo)

    assert code == 1
    assert conflicts(answer, "response-header-removed") == [
        (
            "POST /api/v1/users/{userId}/addresses",
            "/paths/~1api~1v1~1users~1{userId}~1addresses/post/responses/201/headers/Location",
            (c.NO_PACT,),
        )
    ]


def test_a_required_header_made_optional_is_breaking_for_the_pact_holders(repo: Project) -> None:
    change(repo, c.AUTH_HTTP, c.CACHE_CONTROL, c.CACHE_CONTROL.replace("true", "false"))

    code, answer = gate(repo)

    assert code == 1
    assert conflicts(answer, "response-header-required-removed") == [
        (
            "GET /.well-known/jwks.json",
            "/components/headers/CacheControl/required",
            c.ROLES,
        )
    ]


def test_an_added_response_header_is_safe(repo: Project) -> None:
    change(
        repo,
        c.AUTH_HTTP,
        c.JWKS_HEADERS,
        c.JWKS_HEADERS + "            ETag:\n              schema:\n                type: string\n",
    )

    assert gate(repo)[0] == 0


# --- HTTP: statuses ----------------------------------------------------------------------------


def test_a_single_use_token_error_moved_from_401_to_400_is_breaking(repo: Project) -> None:
    removed = "        '401':\n          $ref: '#/components/responses/InvalidToken'\n"
    change(repo, c.AUTH_HTTP, c.CONFIRM_RESET_401, c.CONFIRM_RESET_401.replace(removed, ""))

    code, answer = gate(repo)

    assert code == 1
    assert conflicts(answer, "response-status-removed") == [
        (
            "POST /api/v1/auth/password-reset/confirm",
            "/paths/~1api~1v1~1auth~1password-reset~1confirm/post/responses",
            (c.NO_PACT,),
        )
    ]


def test_a_removed_error_status_names_every_roles_client(repo: Project) -> None:
    gone = "        '404':\n          $ref: '#/components/responses/NotFound'\n"
    change(repo, c.AUTH_HTTP, c.ROLES_404, c.ROLES_404.replace(gone, ""))

    code, answer = gate(repo)

    assert code == 1
    assert conflicts(answer, "response-status-removed") == [
        (
            "GET /api/v1/auth/users/{userId}/roles",
            "/paths/~1api~1v1~1auth~1users~1{userId}~1roles/get/responses",
            c.ROLES,
        )
    ]
    assert named(answer) == set(c.ROLES)


def test_an_added_error_status_is_safe(repo: Project) -> None:
    change(
        repo,
        c.AUTH_HTTP,
        c.ROLES_404,
        c.ROLES_404.replace(
            "    put:\n",
            "        '429':\n          $ref: '#/components/responses/TooManyRequests'\n    put:\n",
        ),
    )

    assert gate(repo)[0] == 0


# --- events: FULL by default, headers, versions, subscriptions --------------------------------


def test_a_relaxed_bound_breaks_existing_consumers_of_the_event(repo: Project) -> None:
    change(
        repo,
        c.EVENTS,
        c.VT_MAX,
        c.VT_MAX.replace("256", "512"),
    )
    bump(repo, "user.email.verification.requested", "1.1.0")

    code, answer = gate(repo)

    assert code == 1
    assert conflicts(answer, "constraint-relaxed")[0] == (
        "user.email.verification.requested",
        "/components/schemas/EmailVerificationRequestedPayload/properties/verificationToken"
        "/maxLength",
        (c.NOTIFICATION,),
    )
    assert c.NO_PACT not in named(answer)


def test_x_compatibility_still_overrides_the_default_per_message(repo: Project) -> None:
    change(
        repo,
        c.EVENTS,
        "      name: user.email.verification.requested\n",
        "      name: user.email.verification.requested\n      x-compatibility: BACKWARD\n",
    )
    change(repo, c.EVENTS, c.VT_MAX, c.VT_MAX.replace("256", "512"))
    bump(repo, "user.email.verification.requested", "1.1.0")

    code, answer = gate(repo)

    assert (code, answer["conflicts"]) == (0, [])


def test_a_required_message_attribute_made_optional_names_every_receiver(repo: Project) -> None:
    change(repo, c.EVENTS, c.ATTRIBUTES, "      required: [eventType, source]\n")

    code, answer = gate(repo)

    assert code == 1
    found = conflicts(answer, "required-removed")
    assert {subject for subject, _, _ in found} == {
        "user.created",
        "user.deactivated",
        "user.email.verification.requested",
        "user.password.reset.requested",
    }
    assert {pointer for _, pointer, _ in found} == {
        "/components/schemas/MessageAttributes/required"
    }
    assert named(answer) == {c.NOTIFICATION, c.USER}


def test_a_major_version_alone_is_breaking_for_the_receivers_and_their_pacts(
    repo: Project,
) -> None:
    bump(repo, "user.created", "2.0.0")

    code, answer = gate(repo)

    assert code == 1
    assert conflicts(answer, "major-version-bumped") == [
        (
            "user.created",
            "/components/schemas/UserCreatedPayload/x-schema-version",
            (c.USER,),
        )
    ]
    pact = [item for item in answer["conflicts"] if item["kind"] == "pact"]
    assert pact
    assert all("schemaVersion" in item["message"] for item in pact)


def test_a_minor_version_alone_is_safe(repo: Project) -> None:
    bump(repo, "user.created", "1.1.0")

    assert gate(repo)[0] == 0


def test_a_filter_policy_that_drops_a_handled_event_is_breaking(repo: Project) -> None:
    change(
        repo,
        c.NOTIFICATION_EVENTS,
        c.NOTIFICATION_FILTER,
        c.NOTIFICATION_FILTER.replace("                - user.deactivated\n", ""),
    )

    code, answer = gate(repo)

    assert code == 1
    assert conflicts(answer, "filter-policy-narrowed") == [
        (
            "receiveUserEvents",
            "/operations/receiveUserEvents/bindings/sns/consumers/0/filterPolicy",
            (c.NOTIFICATION,),
        )
    ]


def test_a_filter_policy_that_admits_an_unhandled_event_is_breaking(repo: Project) -> None:
    change(
        repo,
        c.USER_EVENTS,
        c.USER_FILTER,
        "              eventType: [user.created, user.deactivated,"
        " user.password.reset.requested]\n",
    )

    code, answer = gate(repo)

    assert code == 1
    assert conflicts(answer, "filter-policy-widened") == [
        (
            "receiveUserEvents",
            "/operations/receiveUserEvents/bindings/sns/consumers/0/filterPolicy",
            (c.USER,),
        )
    ]
    assert any(item["kind"] == "lint" for item in answer["conflicts"])  # lint agrees


def test_a_removed_subscription_is_breaking_for_its_receiver(repo: Project) -> None:
    change(repo, c.USER_EVENTS, c.USER_SUBSCRIPTION, "      sns:\n        bindingVersion: 0.1.0\n")

    code, answer = gate(repo)

    assert code == 1
    assert conflicts(answer, "subscription-removed") == [
        ("receiveUserEvents", "/operations/receiveUserEvents/bindings/sns/consumers", (c.USER,))
    ]


def test_a_send_operation_change_names_the_receivers_never_clients_without_a_pact(
    repo: Project,
) -> None:
    change(
        repo,
        c.AUTH_EVENTS,
        "    address: accord-user-events\n",
        "    address: accord-user-events-v2\n",
    )

    code, answer = gate(repo)

    assert code == 1
    assert named(answer) == {c.NOTIFICATION, c.USER}


# --- lint in the gate --------------------------------------------------------------------------


def test_the_gate_lints_the_changed_contracts(repo: Project) -> None:
    change(
        repo,
        c.EVENTS,
        "          const: user.deactivated\n",
        "          const: user.removed\n",
    )
    bump(repo, "user.deactivated", "2.0.0")

    code, answer = gate(repo)

    assert code == 1
    lint = [item for item in answer["conflicts"] if item["kind"] == "lint"]
    assert lint
    assert all(item["document"] == c.EVENTS for item in lint)
    assert any("eventType must be const 'user.deactivated'" in item["message"] for item in lint)


def test_a_payload_refactored_into_all_of_passes_the_gate_and_lint(repo: Project) -> None:
    change(
        repo,
        c.EVENTS,
        c.UD_PAYLOAD,
        "    UserDeactivatedPayload:\n"
        "      title: UserDeactivated\n"
        "      x-schema-version: 1.1.0\n"
        "      description: Payload of `user.deactivated`.\n"
        "      allOf:\n"
        "        - $ref: '#/components/schemas/UserDeactivatedFields'\n"
        "    UserDeactivatedFields:\n"
        "      type: object\n",
    )

    code, answer = gate(repo)

    assert (code, answer["conflicts"]) == (0, [])


# --- errors -------------------------------------------------------------------------------------


def test_a_yaml_error_names_the_file_and_line_and_json_stays_json(repo: Project) -> None:
    path = repo.root / c.USER_EVENTS
    lines = path.read_text().splitlines(keepends=True)
    lines[9] = "  : : [unclosed\n"
    path.write_text("".join(lines))

    code, answer = gate(repo)

    assert code == 2
    assert answer["error"]["kind"] == "diff"
    assert answer["error"]["message"].startswith(f"{c.USER_EVENTS}, line 10: not valid YAML")


def test_an_unknown_base_is_a_json_error(repo: Project) -> None:
    result = runner.invoke(
        app, ["check", "--base", "nope", "--root", str(repo.root), "--format", "json"]
    )

    assert result.exit_code == 2
    assert "'nope' is not a commit" in json.loads(result.stdout)["error"]["message"]


# --- messages -----------------------------------------------------------------------------------


def test_a_non_breaking_event_change_shows_the_keyword_and_the_values(repo: Project) -> None:
    change(
        repo,
        c.EVENTS,
        "      name: user.email.verification.requested\n",
        "      name: user.email.verification.requested\n      x-compatibility: BACKWARD\n",
    )
    change(repo, c.EVENTS, c.VT_MAX, c.VT_MAX.replace("256", "512"))
    bump(repo, "user.email.verification.requested", "1.1.0")
    result = runner.invoke(
        app, ["diff", "--base", "base", "--root", str(repo.root), "--format", "json"]
    )

    messages = [
        item["message"]
        for item in json.loads(result.stdout)["changes"]
        if item["rule"] == "constraint-relaxed"
    ]
    assert messages == ["maxLength raised: old 256, new 512; compatible under BACKWARD"]


def test_lint_accepts_a_payload_refactored_into_all_of(project_copy: Project) -> None:
    from harness.authoring.lint.run import lint_project

    change(
        project_copy,
        c.EVENTS,
        c.UD_PAYLOAD,
        "    UserDeactivatedPayload:\n"
        "      title: UserDeactivated\n"
        "      x-schema-version: 1.0.0\n"
        "      description: Payload of `user.deactivated`.\n"
        "      allOf:\n"
        "        - $ref: '#/components/schemas/UserDeactivatedFields'\n"
        "    UserDeactivatedFields:\n"
        "      type: object\n",
    )

    assert lint_project(project_copy).findings == []


def test_lint_still_refuses_an_all_of_payload_without_schema_version(
    project_copy: Project,
) -> None:
    from harness.authoring.lint.run import lint_project

    change(
        project_copy,
        c.EVENTS,
        c.UD_PAYLOAD,
        "    UserDeactivatedPayload:\n"
        "      title: UserDeactivated\n"
        "      x-schema-version: 1.0.0\n"
        "      description: Payload of `user.deactivated`.\n"
        "      allOf:\n"
        "        - type: object\n"
        "          properties:\n"
        "            eventType: {const: user.deactivated}\n"
        "    UserDeactivatedFields:\n"
        "      type: object\n",
    )

    reasons = [finding.reason for finding in lint_project(project_copy).findings]
    assert "message 'user.deactivated': the payload has no schemaVersion property" in reasons
