"""`accord check --base REF`: the one gate before a merge.

Three questions, one answer:

1. `accord diff`: which changes to the contracts since `REF` are breaking? Each breaking change
   is a conflict, attributed to the consumers it reaches: those whose pacts use the changed
   operation or event, and, for events, the services whose AsyncAPI documents receive it. A
   breaking HTTP change that no pact covers is still a conflict, for "clients without a pact".
2. The event schemas against the published catalog (`schemas/`), as `accord schemas publish`
   would check them: an incompatible schema without a new major version is a conflict.
3. The consumers' pacts (`pacts/`) against the contracts as they are now
   (`harness.evolution.pacts`): an interaction the contract no longer admits is a conflict with
   the consumer that holds the pact.

No conflicts: safe to merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.authoring.contracts import Resolver, iter_contract_files
from harness.evolution import catalog as event_catalog
from harness.evolution.changes import Change
from harness.evolution.diff import DiffReport, diff_contracts
from harness.evolution.pacts import (
    HTTP,
    MESSAGE,
    PACTS_DIRECTORY,
    Interaction,
    PactConflict,
    event_type,
    http_conflicts,
    load_interactions,
    message_conflicts,
    path_pattern,
)
from harness.project import Project

NO_PACT = "clients without a pact"


@dataclass(frozen=True)
class Conflict:
    """One reason not to merge, and who it breaks."""

    kind: str  # breaking-change, event-schema or pact
    consumers: tuple[str, ...]
    document: str
    subject: str
    rule: str
    pointer: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "consumers": list(self.consumers)}


@dataclass
class CheckReport:
    base: str
    diff: DiffReport
    events_checked: int = 0
    interactions_checked: int = 0
    pact_files: tuple[str, ...] = ()
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        return not self.conflicts

    def as_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "safe": self.safe,
            "checked": {
                "changes": len(self.diff.changes),
                "breakingChanges": len(self.diff.breaking),
                "eventSchemas": self.events_checked,
                "pacts": list(self.pact_files),
                "pactInteractions": self.interactions_checked,
            },
            "conflicts": [conflict.as_json() for conflict in self.conflicts],
        }


def check(project: Project, base: str, catalog: Path | None = None) -> CheckReport:
    """Run the three checks; raises `DiffError`, `CatalogError` or `PactError` when one of them
    cannot be made at all."""
    report = CheckReport(base=base, diff=diff_contracts(project, base))
    interactions = load_interactions(project.root / PACTS_DIRECTORY)
    report.pact_files = tuple(sorted({interaction.file for interaction in interactions}))
    receivers = _receivers(project)

    for change in report.diff.breaking:
        consumers = _consumers_of(change, interactions, receivers)
        report.conflicts.append(
            Conflict(
                "breaking-change",
                consumers,
                change.document,
                change.subject,
                str(change.rule),
                change.pointer,
                change.message,
            )
        )

    publication = event_catalog.plan(
        project, catalog or project.root / event_catalog.DEFAULT_CATALOG
    )
    report.events_checked = len(publication.outcomes)
    for outcome in publication.refused:
        for line in outcome.describe():
            report.conflicts.append(
                Conflict(
                    "event-schema",
                    tuple(sorted(receivers.get(outcome.event_type, ()))),
                    event_catalog.DEFAULT_CATALOG,
                    outcome.event_type,
                    "catalog-incompatible",
                    "",
                    line,
                )
            )

    resolver = Resolver()  # each contract is read once for all the interactions
    for interaction in interactions:
        report.interactions_checked += 1
        for found in _pact_conflicts(project, interaction, resolver):
            report.conflicts.append(
                Conflict(
                    "pact",
                    (found.consumer,),
                    found.document,
                    found.subject,
                    f"pact {found.file}: {found.interaction}",
                    found.pointer,
                    found.message,
                )
            )
    return report


def _pact_conflicts(
    project: Project, interaction: Interaction, resolver: Resolver
) -> list[PactConflict]:
    kind = "openapi" if interaction.kind == HTTP else "asyncapi"
    path = project.contracts_dir / kind / f"{interaction.provider}.yaml"
    shown = project.relative(path)
    if not path.is_file():
        message = f"the provider {interaction.provider!r} has no contract {shown}"
        return [
            PactConflict(
                interaction.consumer,
                interaction.provider,
                interaction.description,
                shown,
                interaction.provider,
                "",
                message,
                interaction.file,
            )
        ]
    if interaction.kind == MESSAGE:
        return message_conflicts(interaction, path, shown, resolver)
    return http_conflicts(interaction, path, shown, resolver)


def _receivers(project: Project) -> dict[str, set[str]]:
    """For each event type, the services whose AsyncAPI documents receive it (by title stem:
    `contracts/asyncapi/user-service.yaml` is `user-service`)."""
    resolver = Resolver()
    found: dict[str, set[str]] = {}
    for path in iter_contract_files(project.contracts_dir / "asyncapi"):
        data = resolver.document(path).data
        if not isinstance(data, dict):
            continue
        for operation in (data.get("operations") or {}).values():
            if (operation or {}).get("action") != "receive":
                continue
            for reference in operation.get("messages") or []:
                _, message = resolver.deref(path, reference)
                found.setdefault(str(message.get("name")), set()).add(path.stem)
    return found


def _consumers_of(
    change: Change, interactions: list[Interaction], receivers: dict[str, set[str]]
) -> tuple[str, ...]:
    """Who a breaking change reaches: pact holders that use its operation or event, and the
    receivers of an event."""
    provider = Path(change.document).stem
    is_http = "/openapi/" in f"/{change.document}"
    consumers: set[str] = set()
    for interaction in interactions:
        if interaction.provider != provider:
            continue
        if is_http and interaction.kind == HTTP and _same_operation(change.subject, interaction):
            consumers.add(interaction.consumer)
        is_event = interaction.kind == MESSAGE and event_type(interaction) == change.subject
        if not is_http and is_event:
            consumers.add(interaction.consumer)
    if not is_http:
        consumers |= receivers.get(change.subject, set())
    return tuple(sorted(consumers)) or (NO_PACT,)


def _same_operation(subject: str, interaction: Interaction) -> bool:
    method, _, template = subject.partition(" ")
    request = interaction.data.get("request") or {}
    if str(request.get("method", "")).upper() != method or not template:
        return False
    return path_pattern(template).match(str(request.get("path", ""))) is not None
