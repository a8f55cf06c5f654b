"""`accord generate`: deterministic output, and `--check` catches every kind of drift."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from harness.authoring import generate as generation
from harness.cli import app
from harness.project import Project
from tests.conftest import edit

runner = CliRunner()


def test_generating_twice_gives_byte_identical_files(project_copy: Project) -> None:
    first = generation.expected_files(project_copy)
    generation.write(project_copy, first)
    written = {path: (project_copy.root / path).read_bytes() for path in first}

    second = generation.expected_files(project_copy)
    results = generation.write(project_copy, second)

    assert second == first
    assert {status for _, status in results} == {"unchanged"}
    assert {path: (project_copy.root / path).read_bytes() for path in second} == written


def test_the_committed_generated_tree_matches_the_contracts(repository: Project) -> None:
    assert generation.check(repository) == []


def test_every_contract_in_pyproject_has_its_module(repository: Project) -> None:
    modules = {target.module.as_posix() for target in repository.targets}
    assert modules == {
        "generated/auth/models.py",
        "generated/user/models.py",
        "generated/notification/models.py",
        "generated/events/models.py",
        "generated/auth/events.py",
        "generated/user/events.py",
        "generated/notification/events.py",
        "generated/gateway/models.py",
    }


def test_an_openapi_contract_also_generates_its_server_client_and_responses(
    repository: Project,
) -> None:
    files = {path.as_posix() for path in generation.expected_files(repository)}

    for service in ("auth", "user", "notification"):
        assert {
            f"generated/{service}/server.py",
            f"generated/{service}/client.py",
            f"generated/{service}/responses.py",
        } <= files
    assert {"generated/security.py", "generated/client.py"} <= files


def test_check_fails_naming_the_contract_and_module_after_a_contract_edit(
    project_copy: Project,
) -> None:
    edit(
        project_copy.root / "contracts/asyncapi/user-events.yaml",
        "      description: Payload of `user.created`.\n",
        "      description: Payload of `user.created`, edited.\n",
    )

    result = runner.invoke(app, ["generate", "--check", "--root", str(project_copy.root)])

    assert result.exit_code == 1
    assert (
        "generated/events/models.py differs from what contracts/asyncapi/user-events.yaml "
        "generates" in result.output
    )
    assert "+    Payload of `user.created`, edited." in result.output


def test_check_fails_on_a_hand_edited_generated_module(project_copy: Project) -> None:
    module = project_copy.root / "generated/user/models.py"
    module.write_text(module.read_text() + "\n# a hand edit\n")

    result = runner.invoke(app, ["generate", "--check", "--root", str(project_copy.root)])

    assert result.exit_code == 1
    assert "generated/user/models.py differs from what" in result.output
    assert "contracts/openapi/user-service.yaml" in result.output


def test_check_fails_on_a_missing_or_unexpected_module(project_copy: Project) -> None:
    (project_copy.root / "generated/notification/models.py").unlink()
    (project_copy.root / "generated/events/stale.py").write_text("x = 1\n")

    drifts = generation.check(project_copy)

    assert {(d.module.as_posix(), d.kind) for d in drifts} == {
        ("generated/notification/models.py", "missing"),
        ("generated/events/stale.py", "unexpected"),
    }


def test_generate_repairs_drift_and_check_then_passes(project_copy: Project) -> None:
    (project_copy.root / "generated/auth/models.py").write_text("broken = True\n")

    generated = runner.invoke(app, ["generate", "--root", str(project_copy.root)])
    checked = runner.invoke(app, ["generate", "--check", "--root", str(project_copy.root)])

    assert generated.exit_code == 0, generated.output
    assert "updated generated/auth/models.py" in generated.output
    assert checked.exit_code == 0, checked.output


def test_a_contract_listed_but_absent_is_a_clear_error(project_copy: Project) -> None:
    (project_copy.root / "contracts/openapi/user-service.yaml").unlink()

    result = runner.invoke(app, ["generate", "--root", str(project_copy.root)])

    assert result.exit_code == 2
    assert "contracts/openapi/user-service.yaml: no such contract" in result.output


def test_a_directory_without_an_accord_project_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--root", str(tmp_path)])

    assert result.exit_code == 2
    assert "pyproject.toml does not exist" in result.output


def test_a_dangling_ref_inside_a_path_fails_generation_naming_file_line_and_reference(
    project_copy: Project,
) -> None:
    contract = project_copy.root / "contracts/openapi/user-service.yaml"
    edit(
        contract,
        "$ref: '#/components/schemas/ProfilePage'",
        "$ref: '#/components/schemas/ProfilePages'",
    )
    text = contract.read_text()
    line = text[: text.index("ProfilePages")].count("\n") + 1
    models = project_copy.root / "generated/user/models.py"
    before = models.read_bytes()

    for command in (["generate"], ["generate", "--check"]):
        result = runner.invoke(app, [*command, "--root", str(project_copy.root)])

        assert result.exit_code == 2, result.output
        assert (
            f"contracts/openapi/user-service.yaml:{line}: #/paths/~1api~1v1~1users/get/responses"
            in result.stderr
        )
        assert "dangling $ref '#/components/schemas/ProfilePages'" in result.stderr
        assert "Traceback" not in result.output
    assert models.read_bytes() == before


def test_a_dangling_ref_in_a_file_a_contract_refers_to_fails_generation(
    project_copy: Project,
) -> None:
    shared = project_copy.root / "contracts/openapi/shared.yaml"
    shared.write_text("components:\n  schemas:\n    Id:\n      $ref: '#/components/schemas/Nope'\n")
    edit(
        project_copy.root / "contracts/openapi/user-service.yaml",
        "$ref: '#/components/schemas/ProfilePage'",
        "$ref: './shared.yaml#/components/schemas/Id'",
    )

    result = runner.invoke(app, ["generate", "--root", str(project_copy.root)])

    assert result.exit_code == 2
    assert "contracts/openapi/shared.yaml:4: #/components/schemas/Id/$ref: dangling" in (
        result.stderr
    )
