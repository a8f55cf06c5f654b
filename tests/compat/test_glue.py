"""`accord schemas publish --registry glue` against a moto server: versions arrive in the
registry in publication order, and an incompatible schema is refused before any call."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from typer.testing import CliRunner

from harness.evolution import catalog
from harness.project import Project
from tests.compat.cli import app
from tests.compat.events import add_property, require, set_version

if TYPE_CHECKING:
    from mypy_boto3_glue import GlueClient

pytestmark = pytest.mark.emulator
runner = CliRunner()


class CallCounter:
    """Counts the Glue API calls a client makes (a botocore `before-call` hook)."""

    def __init__(self, client: GlueClient) -> None:
        self.operations: list[str] = []
        client.meta.events.register("before-call.glue.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)


@pytest.fixture
def glue(moto_endpoint: str) -> GlueClient:
    client: GlueClient = boto3.client(
        "glue",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    return client


@pytest.fixture
def registry(glue: GlueClient, unique_prefix: str) -> Iterator[str]:
    name = f"{unique_prefix}events"
    yield name
    # moto allows only a few registries per account: leave none behind
    with contextlib.suppress(glue.exceptions.EntityNotFoundException):
        glue.delete_registry(RegistryId={"RegistryName": name})


def publish(project: Project, glue: GlueClient, registry: str) -> catalog.Publication:
    return catalog.publish(
        project, project.root / "schemas", glue=catalog.GlueTarget(lambda: glue, registry)
    )


def glue_versions(glue: GlueClient, registry: str, event_type: str) -> list[dict[str, Any]]:
    schema_id: Any = {"RegistryName": registry, "SchemaName": event_type}
    latest = glue.get_schema(SchemaId=schema_id)["LatestSchemaVersion"]
    return [
        json.loads(
            glue.get_schema_version(
                SchemaId=schema_id, SchemaVersionNumber={"VersionNumber": number}
            )["SchemaDefinition"]
        )
        for number in range(1, latest + 1)
    ]


def test_versions_appear_in_the_registry_in_publication_order(
    project_copy: Project, glue: GlueClient, registry: str
) -> None:
    publish(project_copy, glue, registry)
    add_property(project_copy, "displayName")
    set_version(project_copy, "1.0.0", "1.1.0")
    publish(project_copy, glue, registry)
    set_version(project_copy, "1.1.0", "1.1.1")
    publish(project_copy, glue, registry)

    versions = glue_versions(glue, registry, "user.created")
    assert [v["x-schema-version"] for v in versions] == ["1.0.0", "1.1.0", "1.1.1"]
    catalog = project_copy.root / "schemas" / "user.created"
    assert versions[1] == json.loads((catalog / "1.1.0.json").read_text())
    schema = glue.get_schema(SchemaId={"RegistryName": registry, "SchemaName": "user.created"})
    assert (schema["DataFormat"], schema["Compatibility"]) == ("JSON", "NONE")
    for event_type in ("user.deactivated", "user.email.verification.requested"):
        assert [v["x-schema-version"] for v in glue_versions(glue, registry, event_type)] == [
            "1.0.0"
        ]


def test_an_incompatible_schema_is_refused_before_any_glue_call(
    project_copy: Project, glue: GlueClient, registry: str
) -> None:
    publish(project_copy, glue, registry)
    calls = CallCounter(glue)
    clients_made: list[str] = []

    def make_client() -> GlueClient:
        clients_made.append("glue")
        return glue

    add_property(project_copy, "displayName")
    require(project_copy, "displayName")
    set_version(project_copy, "1.0.0", "1.1.0")
    publication = catalog.publish(
        project_copy, project_copy.root / "schemas", glue=catalog.GlueTarget(make_client, registry)
    )

    assert [o.event_type for o in publication.refused] == ["user.created"]
    assert calls.operations == []
    assert clients_made == []
    assert [v["x-schema-version"] for v in glue_versions(glue, registry, "user.created")] == [
        "1.0.0"
    ]


def test_publishing_again_to_glue_registers_nothing(
    project_copy: Project, glue: GlueClient, registry: str
) -> None:
    publish(project_copy, glue, registry)
    calls = CallCounter(glue)

    publish(project_copy, glue, registry)

    assert "RegisterSchemaVersion" not in calls.operations
    assert "CreateSchema" not in calls.operations
    assert len(glue_versions(glue, registry, "user.created")) == 1


def test_a_catalog_published_to_a_directory_first_is_mirrored_to_glue_later(
    project_copy: Project, glue: GlueClient, registry: str
) -> None:
    catalog.publish(project_copy, project_copy.root / "schemas")
    add_property(project_copy, "displayName")
    set_version(project_copy, "1.0.0", "1.1.0")
    catalog.publish(project_copy, project_copy.root / "schemas")

    publish(project_copy, glue, registry)

    versions = glue_versions(glue, registry, "user.created")
    assert [v["x-schema-version"] for v in versions] == ["1.0.0", "1.1.0"]


def test_the_cli_publishes_to_glue_with_progress_per_event(
    project_copy: Project, moto_endpoint: str, registry: str, glue: GlueClient
) -> None:
    args = ["schemas", "publish", "--root", str(project_copy.root), "--registry", "glue"]
    args += ["--endpoint", moto_endpoint, "--glue-registry", registry]

    result = runner.invoke(app, args)

    assert result.exit_code == 0, result.output
    assert f"created Glue registry {registry}" in result.output
    for event_type in ("user.created", "user.deactivated"):
        assert f"{event_type} 1.0.0 → Glue version 1" in result.output
    add_property(project_copy, "displayName")
    require(project_copy, "displayName")
    set_version(project_copy, "1.0.0", "1.1.0")

    refused = runner.invoke(app, args)

    assert refused.exit_code == 1
    assert "required-added at #/required" in refused.output
    assert "no Glue call was made" in refused.output
    assert len(glue_versions(glue, registry, "user.created")) == 1
