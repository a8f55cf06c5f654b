"""`accord lint`: each kind of broken contract is rejected with its file and pointer."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from harness.authoring.lint import Finding, lint_project
from harness.cli import app
from harness.project import Project
from tests.conftest import edit

runner = CliRunner()

USER_EVENTS = "contracts/asyncapi/user-events.yaml"
AUTH_EVENTS = "contracts/asyncapi/auth-service.yaml"
USER_ASYNC = "contracts/asyncapi/user-service.yaml"
USER_HTTP = "contracts/openapi/user-service.yaml"
AUTH_HTTP = "contracts/openapi/auth-service.yaml"


def findings(project: Project) -> list[Finding]:
    return lint_project(project).findings


def test_the_repository_contracts_have_no_problems(repository: Project) -> None:
    report = lint_project(repository)

    assert report.findings == []
    assert len(report.documents) >= 7


def test_a_dangling_local_ref_is_reported_with_its_pointer(project_copy: Project) -> None:
    edit(
        project_copy.root / USER_HTTP,
        "$ref: '#/components/schemas/ProfilePage'",
        "$ref: '#/components/schemas/ProfilePages'",
    )

    found = findings(project_copy)

    dangling = [f for f in found if "dangling" in f.reason]
    assert len(dangling) == 1
    assert dangling[0].path == USER_HTTP
    assert dangling[0].pointer.endswith("/content/application~1json/schema/$ref")
    assert "has nothing at #/components/schemas/ProfilePages" in dangling[0].reason


def test_a_dangling_ref_into_another_file_is_reported(project_copy: Project) -> None:
    edit(
        project_copy.root / USER_ASYNC,
        "$ref: './user-events.yaml#/components/messages/UserCreated'",
        "$ref: './user-events.yaml#/components/messages/UserMade'",
    )

    found = findings(project_copy)

    assert (
        Finding(
            USER_ASYNC,
            found[0].line,
            "/channels/userEvents/messages/UserCreated/$ref",
            "dangling $ref './user-events.yaml#/components/messages/UserMade': "
            "user-events.yaml has nothing at #/components/messages/UserMade",
        )
        in found
    )


def test_an_asyncapi_document_breaking_the_official_schema_is_rejected(
    project_copy: Project,
) -> None:
    edit(project_copy.root / USER_ASYNC, "    action: receive\n", "    action: listen\n")

    found = findings(project_copy)

    schema_errors = [f for f in found if f.reason.startswith("AsyncAPI 3.0 schema")]
    assert [(f.path, f.pointer) for f in schema_errors] == [
        (USER_ASYNC, "/operations/receiveUserEvents/action")
    ]
    assert "'listen' is not one of ['send', 'receive']" in schema_errors[0].reason


def test_an_invalid_sqs_binding_is_rejected_by_the_official_schema(
    project_copy: Project,
) -> None:
    edit(
        project_copy.root / USER_ASYNC,
        "            visibilityTimeout: 30\n",
        "            visibilityTimeout: forever\n",
    )

    found = findings(project_copy)

    assert any(
        f.pointer == "/operations/receiveUserEvents/bindings/sqs/queues/0/visibilityTimeout"
        and "'forever' is not of type 'integer'" in f.reason
        for f in found
    ), found


def test_an_operation_without_an_operation_id_is_rejected(project_copy: Project) -> None:
    edit(project_copy.root / USER_HTTP, "      operationId: listUsers\n", "")

    found = findings(project_copy)

    assert [(f.path, f.pointer, f.reason) for f in found] == [
        (USER_HTTP, "/paths/~1api~1v1~1users/get", "GET /api/v1/users has no operationId")
    ]


def test_a_message_without_a_versioned_schema_is_rejected(project_copy: Project) -> None:
    edit(
        project_copy.root / USER_EVENTS,
        "      title: UserCreated\n      x-schema-version: 1.0.0\n",
        "      title: UserCreated\n",
    )

    found = findings(project_copy)

    assert [(f.path, f.pointer) for f in found] == [
        (USER_EVENTS, "/components/messages/UserCreated/payload")
    ]
    assert "has no versioned payload schema" in found[0].reason


def test_a_schema_version_property_that_refuses_the_declared_version_is_rejected(
    project_copy: Project,
) -> None:
    edit(
        project_copy.root / USER_EVENTS,
        "      title: UserDeactivated\n      x-schema-version: 1.0.0\n",
        "      title: UserDeactivated\n      x-schema-version: '1.0'\n",
    )

    found = findings(project_copy)

    assert [f.pointer for f in found] == ["/components/messages/UserDeactivated/payload"]


def test_a_receiver_expecting_an_event_nobody_sends_is_rejected(project_copy: Project) -> None:
    auth = project_copy.root / AUTH_EVENTS
    text = auth.read_text()
    start = text.index("  sendUserDeactivated:")
    auth.write_text(text[:start])

    found = findings(project_copy)

    assert {(f.path, f.pointer, f.reason) for f in found} == {
        (
            USER_ASYNC,
            "/operations/receiveUserEvents/messages/1",
            "receives 'user.deactivated' but no application sends it",
        ),
        (
            "contracts/asyncapi/notification-service.yaml",
            "/operations/receiveUserEvents/messages/2",
            "receives 'user.deactivated' but no application sends it",
        ),
    }


def test_a_filter_policy_that_keeps_out_a_received_event_is_rejected(
    project_copy: Project,
) -> None:
    edit(
        project_copy.root / USER_ASYNC,
        "eventType: [user.created, user.deactivated]",
        "eventType: [user.created]",
    )

    found = findings(project_copy)

    assert [(f.pointer, f.reason) for f in found] == [
        (
            "/operations/receiveUserEvents/bindings/sns/consumers/0/filterPolicy",
            "the filter policy keeps out 'user.deactivated', which it receives",
        )
    ]


def test_an_example_that_contradicts_its_schema_is_rejected(project_copy: Project) -> None:
    edit(
        project_copy.root / USER_EVENTS,
        "            sequence: 4\n",
        "            sequence: 0\n",
    )

    found = findings(project_copy)

    assert [(f.path, f.pointer) for f in found] == [
        (USER_EVENTS, "/components/messages/UserDeactivated/examples/0/payload")
    ]
    assert "at /sequence: 0 is less than the minimum of 1" in found[0].reason


def test_invalid_yaml_is_reported_with_its_line(project_copy: Project) -> None:
    (project_copy.root / USER_ASYNC).write_text("asyncapi: 3.0.0\ninfo: [unclosed\n")

    found = findings(project_copy)

    assert any(f.path == USER_ASYNC and f.line == 3 and "not valid YAML" in f.reason for f in found)


def test_the_command_prints_file_line_pointer_and_reason_and_exits_non_zero(
    project_copy: Project,
) -> None:
    edit(project_copy.root / USER_HTTP, "      operationId: listUsers\n", "")

    result = runner.invoke(app, ["lint", "--root", str(project_copy.root)])

    assert result.exit_code == 1
    line = next(f.line for f in findings(project_copy))
    assert (
        f"{USER_HTTP}:{line}: #/paths/~1api~1v1~1users/get: GET /api/v1/users has no operationId"
        in result.output
    )
    assert "1 problem in" in result.output


def test_the_command_exits_zero_on_the_repository(repository: Project) -> None:
    result = runner.invoke(app, ["lint", "--root", str(repository.root)])

    assert result.exit_code == 0, result.output
    assert "no problems" in result.output


def test_an_operation_taking_a_body_without_a_413_response_is_rejected(
    project_copy: Project,
) -> None:
    edit(
        project_copy.root / USER_HTTP,
        "          description: The profile is deactivated (a tombstone) and cannot be changed.\n"
        "        '413':\n"
        "          $ref: '#/components/responses/PayloadTooLarge'\n",
        "          description: The profile is deactivated (a tombstone) and cannot be changed.\n",
    )

    found = findings(project_copy)

    assert [(f.path, f.pointer, f.reason) for f in found] == [
        (
            USER_HTTP,
            "/paths/~1api~1v1~1users~1{userId}/patch/responses",
            "PATCH /api/v1/users/{userId} takes a request body but does not document a 413 "
            "response",
        )
    ]


EVENT_PROPERTY = (
    "          const: auth-service\n        schemaVersion:\n"
    "          $ref: '#/components/schemas/SchemaVersion'\n"
)
RESPONSE = (
    "        '404':\n          $ref: '#/components/responses/ProfileNotFound'\n"
    "        '409':\n          $ref: '#/components/responses/Conflict'\n"
    "          description: The profile is deactivated (a tombstone) and cannot be changed.\n"
    "        '413':\n"
)
# A `$ref` indented two spaces too little: the key above it is left `null` and the `$ref`
# becomes its sibling. Each of these once crashed `accord lint` with a traceback.
MIS_INDENTED = [
    pytest.param(
        AUTH_HTTP,
        "      schema:\n        $ref: '#/components/schemas/UserId'\n"
        "      example: 6f1c1e0e-8f3e-4c1a-9d3e-2b7f4a6c9e10\n",
        "      schema:\n      $ref: '#/components/schemas/UserId'\n"
        "      example: 6f1c1e0e-8f3e-4c1a-9d3e-2b7f4a6c9e10\n",
        "/components/parameters/UserId/schema",
        id="a parameter's schema",
    ),
    pytest.param(
        AUTH_HTTP,
        "      properties:\n        email:\n          $ref: '#/components/schemas/Email'\n"
        "        password:\n          $ref: '#/components/schemas/NewPassword'\n"
        "    LoginRequest:\n",
        "      properties:\n        email:\n        $ref: '#/components/schemas/Email'\n"
        "        password:\n          $ref: '#/components/schemas/NewPassword'\n"
        "    LoginRequest:\n",
        "/components/schemas/RegisterRequest/properties/email",
        id="a request body property",
    ),
    pytest.param(
        USER_HTTP,
        RESPONSE,
        RESPONSE.replace(
            "          $ref: '#/components/responses/ProfileNotFound'",
            "        $ref: '#/components/responses/ProfileNotFound'",
        ),
        "/responses/404",
        id="a response",
    ),
    pytest.param(
        USER_EVENTS,
        EVENT_PROPERTY,
        EVENT_PROPERTY.replace("          $ref", "        $ref"),
        "/components/schemas/MessageAttributes/properties/schemaVersion",
        id="an event schema property",
    ),
]


@pytest.mark.parametrize(("contract", "old", "new", "pointer"), MIS_INDENTED)
def test_a_null_left_by_a_mis_indented_ref_is_a_finding_on_its_line_not_a_crash(
    project_copy: Project, contract: str, old: str, new: str, pointer: str
) -> None:
    path = project_copy.root / contract
    edit(path, old, new)
    null_line = new.splitlines().index(next(line for line in new.splitlines() if "$ref" in line))

    found = findings(project_copy)

    nulls = [f for f in found if "is null where a value belongs" in f.reason]
    assert len(nulls) == 1, found
    assert nulls[0].path == contract
    assert nulls[0].pointer.endswith(pointer)
    # The line of the key left empty: the one just above the mis-indented `$ref`.
    text = path.read_text()
    assert nulls[0].line == text[: text.index(new)].count("\n") + null_line
    assert "indented too little" in nulls[0].reason


def test_a_null_parameter_is_a_finding_not_a_crash(project_copy: Project) -> None:
    edit(
        project_copy.root / AUTH_HTTP,
        "  /api/v1/auth/users/{userId}/deactivate:\n    parameters:\n"
        "      - $ref: '#/components/parameters/UserId'\n",
        "  /api/v1/auth/users/{userId}/deactivate:\n    parameters:\n      - null\n",
    )

    found = findings(project_copy)

    assert any(
        f.pointer == "/paths/~1api~1v1~1auth~1users~1{userId}~1deactivate/parameters/0"
        and f.reason.startswith("item 0 of 'parameters' is null")
        for f in found
    ), found


def test_the_command_prints_a_null_schema_as_file_line_and_exits_1_without_a_traceback(
    project_copy: Project,
) -> None:
    edit(
        project_copy.root / USER_EVENTS,
        EVENT_PROPERTY,
        EVENT_PROPERTY.replace("          $ref", "        $ref"),
    )

    result = runner.invoke(app, ["lint", "--root", str(project_copy.root)])

    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert (
        f"{USER_EVENTS}:146: #/components/schemas/MessageAttributes/properties/schemaVersion:"
        in (result.output)
    )


def test_a_check_that_cannot_finish_on_a_malformed_document_is_a_finding(
    project_copy: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.authoring.lint import conventions

    def broken(*_: object) -> None:
        raise KeyError("name")

    monkeypatch.setattr(conventions, "check_openapi_rules", broken)

    found = findings(project_copy)

    # Every OpenAPI document: each registered service's (`[[tool.accord.service]]`).
    assert {f.path for f in found} == {s.openapi.as_posix() for s in project_copy.services}
    assert {AUTH_HTTP, USER_HTTP} < {f.path for f in found}
    assert all("the project's rules stopped on a malformed part" in f.reason for f in found)
