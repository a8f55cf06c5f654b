"""`accord check --base REF`: the one gate before a merge.

Four questions, one answer:

1. `accord diff`: which changes to the contracts since `REF` are breaking? Each breaking change
   is a conflict, attributed to the consumers it reaches: those whose pacts use the changed
   operation or event, and, for events, the services whose AsyncAPI documents receive it (a
   receiver's own subscription names that receiver). A breaking HTTP change that no pact
   covers is still a conflict, for "clients without a pact"; an event change never is.
2. The event schemas against the published catalog (`schemas/`), as `accord schemas publish`
   would check them: an incompatible schema without a new major version is a conflict.
3. The consumers' pacts (`pacts/`) against the contracts as they are now
   (`harness.evolution.pacts`): an interaction the contract no longer admits (including an
   event version its `schemaVersion` matcher refuses) is a conflict with the consumer that
   holds the pact.
4. `accord lint` on the changed contracts (every AsyncAPI document when one of them changed,
   since senders and receivers are matched across them): each finding is a conflict.

No conflicts: safe to merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.authoring.contracts import ContractLoadError, Resolver, iter_contract_files, split
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

if TYPE_CHECKING:
    from harness.authoring.lint.report import Finding

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
    resolver = Resolver()  # each contract is read once for every check
    report = CheckReport(base=base, diff=diff_contracts(project, base, resolver))
    interactions = load_interactions(project.root / PACTS_DIRECTORY)
    report.pact_files = tuple(sorted({interaction.file for interaction in interactions}))
    receivers = _receivers(project, resolver)

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
        project, catalog or project.root / event_catalog.DEFAULT_CATALOG, resolver
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

    report.conflicts += _lint_conflicts(project, report.diff, interactions, receivers)

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


def _receivers(project: Project, resolver: Resolver) -> dict[str, set[str]]:
    """For each event type, the services whose AsyncAPI documents receive it (by title stem:
    `contracts/asyncapi/user-service.yaml` is `user-service`)."""
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
    """Who a breaking change reaches: for HTTP, the pact holders that call its operation (else
    "clients without a pact"); for events, the receivers of the events it concerns, the pact
    holders of those events, and the services it names outright."""
    provider = Path(change.document).stem
    if "/openapi/" in f"/{change.document}":
        return _http_consumers(provider, change.subject, interactions)
    events = set(change.events) or {change.subject}
    consumers = set(change.services)
    for event in events:
        consumers |= receivers.get(event, set())
    for interaction in interactions:
        if interaction.kind == MESSAGE and event_type(interaction) in events:
            consumers.add(interaction.consumer)
    return tuple(sorted(consumers))


def _http_consumers(
    provider: str, subject: str, interactions: list[Interaction]
) -> tuple[str, ...]:
    consumers = {
        interaction.consumer
        for interaction in interactions
        if interaction.provider == provider
        and interaction.kind == HTTP
        and _same_operation(subject, interaction)
    }
    return tuple(sorted(consumers)) or (NO_PACT,)


def _lint_conflicts(
    project: Project,
    diff: DiffReport,
    interactions: list[Interaction],
    receivers: dict[str, set[str]],
) -> list[Conflict]:
    """`accord lint` on the changed contract documents, each finding a conflict."""
    from harness.authoring.lint.run import lint_project

    changed = [project.root / name for name in diff.changed]
    if not changed:
        return []
    findings = set(lint_project(project, changed).findings)
    events = [path for path in changed if "asyncapi" in path.parts]
    if events:
        # Lint matched senders and receivers among the changed documents alone; match them
        # among all of them instead.
        findings -= _senders_and_receivers(project, events)
        findings |= _senders_and_receivers(
            project, list(iter_contract_files(project.contracts_dir / "asyncapi"))
        )
    resolver = Resolver()
    conflicts = []
    for finding in sorted(findings):
        consumers = _finding_consumers(
            project, resolver, finding.path, finding.pointer, interactions, receivers
        )
        conflicts.append(
            Conflict(
                "lint",
                consumers,
                finding.path,
                _finding_subject(finding.path, finding.pointer),
                "lint",
                finding.pointer,
                f"line {finding.line}: {finding.reason}" if finding.line else finding.reason,
            )
        )
    return conflicts


def _senders_and_receivers(project: Project, paths: list[Path]) -> set[Finding]:
    """Lint's one check across AsyncAPI documents (every receiver's message is sent, every
    filter policy lets through what its receiver handles), over `paths`."""
    from harness.authoring.lint.conventions import check_senders_and_receivers
    from harness.authoring.lint.report import Reporter

    resolver = Resolver()
    reporter = Reporter(project, resolver)
    documents = []
    for path in paths:
        try:
            document = resolver.document(path)
        except ContractLoadError:
            continue  # the changed file's own lint run reports it
        if isinstance(document.data, dict) and "asyncapi" in document.data:
            documents.append(document)
    try:
        check_senders_and_receivers(documents, resolver, reporter)
    except Exception as error:
        reporter.add(documents[0].path, "", f"matching senders and receivers stopped: {error}")
    return set(reporter.findings)


def _finding_subject(path: str, pointer: str) -> str:
    tokens = split(pointer) if pointer.startswith("/") else []
    if "/openapi/" in f"/{path}" and len(tokens) >= 3 and tokens[0] == "paths":
        return f"{tokens[2].upper()} {tokens[1]}"
    return ""


def _finding_consumers(
    project: Project,
    resolver: Resolver,
    path: str,
    pointer: str,
    interactions: list[Interaction],
    receivers: dict[str, set[str]],
) -> tuple[str, ...]:
    """Whom a lint finding concerns: the pact holders of an HTTP operation (else clients
    without a pact); in a receiver's own document, that receiver; in a message, its
    receivers."""
    stem = Path(path).stem
    if "/openapi/" in f"/{path}":
        subject = _finding_subject(path, pointer)
        return _http_consumers(stem, subject, interactions) if subject else (NO_PACT,)
    if any(stem in services for services in receivers.values()):
        return (stem,)
    tokens = split(pointer) if pointer.startswith("/") else []
    try:
        data = resolver.document(project.root / path).data
    except ContractLoadError:
        data = None
    messages = ((data if isinstance(data, dict) else {}).get("components") or {}).get(
        "messages"
    ) or {}
    if len(tokens) >= 3 and tokens[:2] == ["components", "messages"]:
        names = {str((messages.get(tokens[2]) or {}).get("name"))}
    else:
        names = {str((message or {}).get("name")) for message in messages.values()}
    found: set[str] = set()
    for name in names:
        found |= receivers.get(name, set())
    return tuple(sorted(found))


def _same_operation(subject: str, interaction: Interaction) -> bool:
    method, _, template = subject.partition(" ")
    request = interaction.data.get("request") or {}
    if str(request.get("method", "")).upper() != method or not template:
        return False
    return path_pattern(template).match(str(request.get("path", ""))) is not None
