"""Reading a rendered CloudFormation template back: its resources by type, and the names
behind the `Ref`s and `Fn::GetAtt`s that point at its topics and queues."""

from __future__ import annotations

import json
from typing import Any

from harness.deploy.render import render
from harness.deploy.services import platform_services
from harness.project import Project


def rendered(project: Project, prefix: str = "") -> dict[str, Any]:
    """The template `accord deploy render` makes for `project`, parsed."""
    template: dict[str, Any] = json.loads(
        render(project, platform_services(project), "cloudformation", prefix)
    )
    return template


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """The properties of every resource of type `kind`, by logical id."""
    return {
        logical: resource.get("Properties", {})
        for logical, resource in template["Resources"].items()
        if resource["Type"] == kind
    }


def target(reference: Any) -> str:
    """The logical id a `Ref` or `Fn::GetAtt` points at."""
    if "Ref" in reference:
        return str(reference["Ref"])
    return str(reference["Fn::GetAtt"][0])


def name_of(template: dict[str, Any], reference: Any) -> str:
    """The topic or queue name of the resource a reference points at."""
    properties = template["Resources"][target(reference)]["Properties"]
    return str(properties.get("TopicName") or properties["QueueName"])
