"""`accord schemas publish` to a catalog directory: first publication, no-ops, compatible and
incompatible changes, immutable versions, and the offline page."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from jsonschema import Draft202012Validator
from typer.testing import CliRunner, Result

from harness.project import Project
from tests.compat.cli import app
from tests.compat.events import (
    add_property,
    events_contract,
    remove_property,
    require,
    set_mode,
    set_version,
)
from tests.conftest import edit

runner = CliRunner()
EVENTS = {
    "user.created",
    "user.email.verification.requested",
    "user.password.reset.requested",
    "user.deactivated",
}


def publish(project: Project, *args: str) -> Result:
    return runner.invoke(app, ["schemas", "publish", "--root", str(project.root), *args])


def catalog(project: Project) -> Path:
    return project.root / "schemas"


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def index(project: Project) -> dict[str, object]:
    data: dict[str, object] = json.loads((catalog(project) / "index.json").read_text())
    return data


def test_the_first_publish_writes_every_event_at_1_0_0_with_checksums(
    project_copy: Project,
) -> None:
    result = publish(project_copy)

    assert result.exit_code == 0, result.output
    assert "published 4 schema versions" in result.output
    events = index(project_copy)["events"]
    assert isinstance(events, dict)
    assert set(events) == EVENTS
    sequences = []
    for event_type, record in events.items():
        (entry,) = record["versions"]
        assert entry["version"] == "1.0.0"
        assert entry["compatibility"] == "FULL_TRANSITIVE"  # the default for events
        text = (catalog(project_copy) / event_type / "1.0.0.json").read_bytes()
        assert entry["sha256"] == hashlib.sha256(text).hexdigest()
        sequences.append(entry["sequence"])
    assert sorted(sequences) == [1, 2, 3, 4]


def test_the_published_schema_stands_alone_and_admits_the_contract_example(
    project_copy: Project,
) -> None:
    publish(project_copy)
    schema = json.loads((catalog(project_copy) / "user.created" / "1.0.0.json").read_text())
    example = {
        "eventId": "0b9e3c2a-5f0e-4a55-9a37-0a8c5f3e1d01",
        "eventType": "user.created",
        "schemaVersion": "1.0.0",
        "sequence": 1,
        "userId": "6f1c1e0e-8f3e-4c1a-9d3e-2b7f4a6c9e10",
        "email": "ada@example.com",
        "timestamp": "2026-11-25T10:00:00Z",
        "source": "auth-service",
    }

    assert "$ref" not in json.dumps(schema)
    assert schema["x-schema-version"] == "1.0.0"
    assert Draft202012Validator(schema).is_valid(example)
    assert not Draft202012Validator(schema).is_valid({**example, "eventType": "user.deleted"})


def test_publishing_the_same_versions_again_is_a_no_op_that_says_so(project_copy: Project) -> None:
    publish(project_copy)
    before = snapshot(catalog(project_copy))

    result = publish(project_copy)

    assert result.exit_code == 0, result.output
    assert "nothing to publish: all 4 event schemas are already published" in result.output
    assert snapshot(catalog(project_copy)) == before


def test_a_compatible_change_with_a_minor_bump_publishes_1_1_0(project_copy: Project) -> None:
    publish(project_copy)
    add_property(project_copy, "displayName")
    set_version(project_copy, "1.0.0", "1.1.0")

    result = publish(project_copy)

    assert result.exit_code == 0, result.output
    assert "published 1 schema version" in result.output
    record = index(project_copy)["events"]["user.created"]  # type: ignore[index]
    assert [(v["version"], v["sequence"]) for v in record["versions"]] == [
        ("1.0.0", 1),
        ("1.1.0", 5),
    ]
    published = json.loads((catalog(project_copy) / "user.created" / "1.1.0.json").read_text())
    assert published["properties"]["displayName"] == {"type": "string"}


def test_an_incompatible_change_without_a_major_bump_is_refused_and_nothing_is_written(
    project_copy: Project,
) -> None:
    publish(project_copy)
    add_property(project_copy, "displayName")
    require(project_copy, "displayName")
    set_version(project_copy, "1.0.0", "1.1.0")
    before = snapshot(catalog(project_copy))

    result = publish(project_copy)

    assert result.exit_code == 1
    assert (
        "user.created 1.1.0: required-added at #/required (against 1.0.0, FULL_TRANSITIVE)"
        in result.output
    )
    assert "'displayName' is required by the new schema" in result.output
    assert "nothing was published" in result.output
    assert snapshot(catalog(project_copy)) == before


def test_a_refusal_also_stops_compatible_events_from_being_published(
    project_copy: Project,
) -> None:
    publish(project_copy)
    require(project_copy, "displayName")
    add_property(project_copy, "displayName")
    set_version(project_copy, "1.0.0", "1.1.0")
    edit(
        events_contract(project_copy),
        "      x-schema-version: 1.0.0\n      description: Payload of `user.deactivated`.",
        "      x-schema-version: 1.0.1\n      description: Payload of `user.deactivated`, v1.0.1.",
    )

    result = publish(project_copy)

    assert result.exit_code == 1
    assert not (catalog(project_copy) / "user.deactivated" / "1.0.1.json").exists()


def test_a_breaking_change_with_a_major_bump_is_published_and_listed(project_copy: Project) -> None:
    publish(project_copy)
    add_property(project_copy, "displayName")
    require(project_copy, "displayName")
    set_version(project_copy, "1.0.0", "2.0.0")

    result = publish(project_copy)

    assert result.exit_code == 0, result.output
    assert "new major: 1 breaking change(s)" in result.output
    assert (catalog(project_copy) / "user.created" / "2.0.0.json").exists()


def test_changing_a_published_version_is_refused(project_copy: Project) -> None:
    publish(project_copy)
    add_property(project_copy, "displayName")
    before = snapshot(catalog(project_copy))

    result = publish(project_copy)

    assert result.exit_code == 1
    assert "user.created 1.0.0: version-already-published" in result.output
    assert snapshot(catalog(project_copy)) == before


def test_a_catalog_file_edited_by_hand_is_refused(project_copy: Project) -> None:
    publish(project_copy)
    published = catalog(project_copy) / "user.created" / "1.0.0.json"
    published.write_text(published.read_text().replace("Payload of", "The payload of"))

    result = publish(project_copy)

    assert result.exit_code == 1
    assert "was changed after it was published" in result.output


def test_a_version_lower_than_the_latest_is_refused(project_copy: Project) -> None:
    publish(project_copy)
    add_property(project_copy, "displayName")
    set_version(project_copy, "1.0.0", "1.2.0")
    publish(project_copy)
    set_version(project_copy, "1.2.0", "1.1.0")

    result = publish(project_copy)

    assert result.exit_code == 1
    assert "version-not-increasing" in result.output


def test_the_message_mode_decides_which_versions_are_checked(project_copy: Project) -> None:
    set_mode(project_copy, "BACKWARD_TRANSITIVE")
    add_property(project_copy, "nickname")
    publish(project_copy)
    remove_property(project_copy, "nickname")
    set_version(project_copy, "1.0.0", "1.1.0")
    assert publish(project_copy).exit_code == 0
    add_property(project_copy, "nickname", "type: integer")
    set_version(project_copy, "1.1.0", "1.2.0")

    result = publish(project_copy)

    assert result.exit_code == 1
    assert (
        "user.created 1.2.0: type-changed at #/properties/nickname/type "
        "(against 1.0.0, BACKWARD_TRANSITIVE)"
    ) in result.output


def test_an_unknown_compatibility_mode_names_the_message_and_the_choices(
    project_copy: Project,
) -> None:
    set_mode(project_copy, "SIDEWAYS")

    result = publish(project_copy)

    assert result.exit_code == 1
    assert "x-compatibility" in result.output
    assert "unknown compatibility mode 'SIDEWAYS'" in result.output


def test_the_offline_page_shows_every_event_and_version(project_copy: Project) -> None:
    publish(project_copy)
    add_property(project_copy, "displayName")
    set_version(project_copy, "1.0.0", "1.1.0")
    publish(project_copy)

    page = (catalog(project_copy) / "index.html").read_text()

    assert "<script" not in page
    assert "http" not in page.replace("https://json-schema.org", "")
    for event_type in EVENTS:
        assert f"id='{event_type}'" in page
    assert "id='user.created@1.0.0'" in page
    assert "id='user.created@1.1.0'" in page
    assert "&quot;displayName&quot;: {" in page


def test_to_publishes_to_another_directory(project_copy: Project, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"

    result = publish(project_copy, "--to", str(target))

    assert result.exit_code == 0, result.output
    assert (target / "user.deactivated" / "1.0.0.json").is_file()
    assert not catalog(project_copy).exists()


def test_a_version_file_left_by_an_interrupted_run_is_replaced(project_copy: Project) -> None:
    stray = catalog(project_copy) / "user.created" / "1.0.0.json"
    stray.parent.mkdir(parents=True)
    stray.write_text("{}\n")

    assert publish(project_copy).exit_code == 0
    result = publish(project_copy)

    assert result.exit_code == 0, result.output
    assert json.loads(stray.read_text())["x-schema-version"] == "1.0.0"
