"""The versioned event schema catalog behind `accord schemas publish`.

Every message defined in the AsyncAPI documents under `contracts/asyncapi/` is an event whose
payload schema carries `x-schema-version`. Publishing bundles each payload schema (every
`$ref` inlined, so the published document stands alone), judges it against the versions
already in the catalog under the message's compatibility mode (`harness.evolution.versions`),
and, only when no event is refused, writes:

    <catalog>/<eventType>/<version>.json   one file per version, never changed afterwards
    <catalog>/index.json                   per event: its mode and versions in publication
                                           order, each with its sha256 and sequence number
    <catalog>/index.html                   an offline page of the whole catalog

The catalog directory is the record the compatibility check reads. `--registry glue` mirrors
it to AWS Glue Schema Registry (one Glue schema per event, Glue version N is the N-th catalog
version); Glue's own compatibility setting is NONE because the decision is Accord's.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.authoring.contracts import ContractLoadError, Resolver, iter_contract_files, join
from harness.evolution.events import EventSchema, EventSchemaError, event_schemas
from harness.evolution.modes import Mode, Schema, VersionedViolation
from harness.evolution.versions import SemVer, VersionProblem, VersionRule, judge
from harness.project import Project

if TYPE_CHECKING:
    from mypy_boto3_glue import GlueClient

INDEX = "index.json"
PAGE = "index.html"
INDEX_FORMAT = 1
DEFAULT_CATALOG = "schemas"
Progress = Callable[[str], None]


class CatalogError(Exception):
    """The catalog directory, the contracts or the registry cannot be used as they are."""


def render(document: Any) -> str:
    """The published text of a schema document (stable, so its checksum is too)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- the catalog -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogVersion:
    """One published version of one event's payload schema."""

    version: str
    sha256: str
    sequence: int
    compatibility: str

    def file(self, event_type: str) -> str:
        return f"{event_type}/{self.version}.json"


@dataclass(frozen=True)
class Catalog:
    """The published versions of every event (in memory; `write` stores it)."""

    directory: Path
    events: dict[str, tuple[CatalogVersion, ...]] = field(default_factory=dict)
    texts: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    # Each event's mode as its message declares it now (a version keeps the mode it was
    # published under); the index records it as the event's `compatibility`.
    modes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> Catalog:
        """Read `index.json` and every version file, checking each one's sha256."""
        index_path = directory / INDEX
        if not index_path.exists():
            return cls(directory)
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            raw_events = index["events"]
            events: dict[str, tuple[CatalogVersion, ...]] = {}
            modes: dict[str, str] = {}
            for event_type, record in raw_events.items():
                if isinstance(record.get("compatibility"), str):
                    modes[event_type] = record["compatibility"]
                events[event_type] = tuple(
                    CatalogVersion(
                        str(entry["version"]),
                        str(entry["sha256"]),
                        int(entry["sequence"]),
                        str(entry.get("compatibility", record.get("compatibility", "BACKWARD"))),
                    )
                    for entry in record["versions"]
                )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise CatalogError(f"{index_path} is not a valid catalog index: {error}") from None
        texts: dict[tuple[str, str], str] = {}
        for event_type, versions in events.items():
            for entry in versions:
                path = directory / entry.file(event_type)
                try:
                    text = path.read_text(encoding="utf-8")
                except OSError as error:
                    raise CatalogError(
                        f"{path} is listed in {INDEX} but cannot be read: {error.strerror}"
                    ) from None
                if sha256(text) != entry.sha256:
                    raise CatalogError(
                        f"{path} was changed after it was published (its sha256 no longer "
                        f"matches {INDEX}); published versions never change"
                    )
                texts[(event_type, entry.version)] = text
        return cls(directory, events, texts, modes)

    def versions(self, event_type: str) -> tuple[CatalogVersion, ...]:
        return self.events.get(event_type, ())

    def text(self, event_type: str, version: str) -> str | None:
        return self.texts.get((event_type, version))

    def document(self, event_type: str, version: str) -> Any:
        text = self.text(event_type, version)
        return None if text is None else json.loads(text)

    def history(self, event_type: str) -> list[tuple[SemVer, Schema]]:
        """The event's published versions as (version, schema), in publication order."""
        return [
            (
                SemVer.parse(entry.version),
                Schema.standalone(self.document(event_type, entry.version)),
            )
            for entry in self.versions(event_type)
        ]

    def next_sequence(self) -> int:
        return 1 + max((v.sequence for vs in self.events.values() for v in vs), default=0)

    def with_version(self, event_type: str, version: str, mode: Mode, text: str) -> Catalog:
        entry = CatalogVersion(version, sha256(text), self.next_sequence(), mode.value)
        events = {**self.events, event_type: (*self.versions(event_type), entry)}
        return replace(
            self,
            events=events,
            texts={**self.texts, (event_type, version): text},
            modes={**self.modes, event_type: mode.value},
        )

    def mode(self, event_type: str) -> str | None:
        """The event's mode as the catalog records it (its latest version's, by default)."""
        versions = self.versions(event_type)
        return self.modes.get(event_type) or (versions[-1].compatibility if versions else None)

    def with_mode(self, event_type: str, mode: Mode) -> Catalog:
        return replace(self, modes={**self.modes, event_type: mode.value})

    def index(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "events": {
                event_type: {
                    "compatibility": self.mode(event_type),
                    "versions": [
                        {
                            "version": v.version,
                            "file": v.file(event_type),
                            "sha256": v.sha256,
                            "sequence": v.sequence,
                            "compatibility": v.compatibility,
                        }
                        for v in versions
                    ],
                }
                for event_type, versions in sorted(self.events.items())
            },
        }

    def write(self) -> list[Path]:
        """Store new version files, then the index (the commit point), then the page.

        Returns the files written. Published files are not rewritten (`load` checked that
        they match); a file an interrupted run left behind, not yet in the index, is.
        """
        written: list[Path] = []
        for (event_type, version), text in sorted(self.texts.items()):
            path = self.directory / event_type / f"{version}.json"
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                written.append(path)
        for name, content in (
            (INDEX, json.dumps(self.index(), indent=2) + "\n"),
            (PAGE, page(self)),
        ):
            path = self.directory / name
            if not path.exists() or path.read_text(encoding="utf-8") != content:
                self.directory.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8")
                written.append(path)
        return written


# --- planning a publication --------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What publishing does with one event: `unchanged`, `published` or `refused`."""

    event_type: str
    version: str
    mode: Mode
    action: str
    problems: tuple[VersionProblem, ...] = ()
    breaking: tuple[VersionedViolation, ...] = ()

    def describe(self) -> list[str]:
        """One line per problem, naming event, version, rule and JSON pointer."""
        lines = []
        for problem in self.problems:
            if not problem.violations:
                lines.append(f"{self.event_type} {self.version}: {problem.rule}: {problem.message}")
            for item in problem.violations:
                lines.append(
                    f"{self.event_type} {self.version}: {item.violation.rule} at "
                    f"#{item.violation.pointer} (against {item.version}, {self.mode}): "
                    f"{item.violation.message}"
                )
        return lines


@dataclass(frozen=True)
class Publication:
    """The outcome for every event, and the catalog as it is once published."""

    outcomes: tuple[Outcome, ...]
    catalog: Catalog
    modes_changed: tuple[str, ...] = ()  # events whose recorded mode the publication updates

    @property
    def refused(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.action == "refused")

    @property
    def published(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.action == "published")


def contract_events(project: Project, resolver: Resolver) -> list[EventSchema]:
    """Every event defined by the AsyncAPI documents under contracts/asyncapi (one each)."""
    events: dict[str, EventSchema] = {}
    directory = project.contracts_dir / "asyncapi"
    if not directory.is_dir():
        raise CatalogError(f"{directory} does not exist: there are no events to publish")
    for path in iter_contract_files(directory):
        try:
            data = resolver.document(path).data
        except ContractLoadError as error:
            line = f", line {error.line}" if error.line else ""
            raise CatalogError(f"{project.relative(path)}{line}: {error.reason}") from None
        if not isinstance(data, dict) or "asyncapi" not in data:
            continue
        try:
            found = event_schemas(path, resolver)
        except EventSchemaError as error:
            raise CatalogError(f"{project.relative(path)}: {error}") from None
        for event in found:
            if event.event_type in events:
                raise CatalogError(
                    f"{project.relative(path)}#{event.message_pointer}: event "
                    f"{event.event_type!r} is also defined in "
                    f"{project.relative(events[event.event_type].path)}"
                )
            events[event.event_type] = event
    return list(events.values())


def plan(project: Project, directory: Path, resolver: Resolver | None = None) -> Publication:
    """Judge every event schema against the catalog at `directory`; write nothing."""
    resolver = resolver or Resolver()
    catalog = Catalog.load(directory)
    outcomes: list[Outcome] = []
    modes_changed: list[str] = []
    for event in contract_events(project, resolver):
        raw_version = event.version
        where = f"{project.relative(event.path)}#{join(event.payload.location, 'x-schema-version')}"
        try:
            version = SemVer.parse(raw_version)
        except ValueError:
            problem = VersionProblem(
                VersionRule.VERSION_INVALID,
                f"{where}: x-schema-version {raw_version!r} is not a semantic version",
            )
            outcomes.append(
                Outcome(event.event_type, str(raw_version), event.mode, "refused", (problem,))
            )
            continue
        try:
            document = event.bundled(resolver)
        except EventSchemaError as error:
            raise CatalogError(f"{event.event_type}: {error}") from None
        text = render(document)
        published = catalog.document(event.event_type, str(version))
        verdict = judge(
            event.event_type,
            event.mode,
            catalog.history(event.event_type),
            version,
            Schema.standalone(document),
            same=published == document,
        )
        action = {"new": "published"}.get(verdict.action, verdict.action)
        outcomes.append(
            Outcome(
                event.event_type,
                str(version),
                event.mode,
                action,
                verdict.problems,
                verdict.breaking,
            )
        )
        if action == "published":
            catalog = catalog.with_version(event.event_type, str(version), event.mode, text)
        elif catalog.versions(event.event_type) and catalog.mode(event.event_type) != event.mode:
            catalog = catalog.with_mode(event.event_type, event.mode)  # recorded on publish
            modes_changed.append(event.event_type)
    return Publication(tuple(outcomes), catalog, tuple(modes_changed))


@dataclass(frozen=True)
class GlueTarget:
    """Where to mirror the catalog: a Glue client (made only when needed) and a registry."""

    client: Callable[[], GlueClient]
    registry: str


def apply(
    publication: Publication,
    *,
    glue: GlueTarget | None = None,
    progress: Progress = lambda line: None,
) -> None:
    """Carry out a publication that refused nothing: mirror to Glue (when asked), then write
    the catalog (so a failed Glue call leaves the catalog as it was, and a retry resumes)."""
    if publication.refused:
        raise CatalogError("a publication with refused schemas cannot be applied")
    if glue is not None:
        GlueMirror(glue.client(), glue.registry, progress).sync(publication.catalog)
    publication.catalog.write()


def publish(
    project: Project,
    directory: Path,
    *,
    glue: GlueTarget | None = None,
    progress: Progress = lambda line: None,
) -> Publication:
    """Plan, and apply the plan unless something is refused.

    An incompatible schema is refused before anything is written and before any Glue call
    (the Glue client is not even made).
    """
    publication = plan(project, directory)
    if not publication.refused:
        apply(publication, glue=glue, progress=progress)
    return publication


# --- AWS Glue Schema Registry ------------------------------------------------------------------


class GlueMirror:
    """Mirrors the catalog to a Glue registry, in publication order, registering what is missing."""

    def __init__(self, client: GlueClient, registry: str, progress: Progress) -> None:
        self.client = client
        self.registry = registry
        self.progress = progress

    def sync(self, catalog: Catalog) -> list[tuple[str, str, int, str]]:
        """(event, version, Glue version number, action) for every catalog version."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._ensure_registry()
            results = []
            for event_type, versions in sorted(catalog.events.items()):
                results += self._sync_event(catalog, event_type, versions)
            return results
        except (BotoCoreError, ClientError) as error:
            raise CatalogError(f"Glue registry {self.registry}: {error}") from None

    def _ensure_registry(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.get_registry(RegistryId={"RegistryName": self.registry})
        except ClientError as error:
            if _code(error) != "EntityNotFoundException":
                raise
            self.client.create_registry(
                RegistryName=self.registry,
                Description="Accord event payload schemas (published by accord schemas publish)",
            )
            self.progress(f"created Glue registry {self.registry}")

    def _existing(self, event_type: str) -> list[str] | None:
        """The definitions of the Glue schema's versions, in order; None if it does not exist."""
        from botocore.exceptions import ClientError

        schema_id: Any = {"RegistryName": self.registry, "SchemaName": event_type}
        try:
            latest = self.client.get_schema(SchemaId=schema_id)["LatestSchemaVersion"]
        except ClientError as error:
            if _code(error) != "EntityNotFoundException":
                raise
            return None
        return [
            self.client.get_schema_version(
                SchemaId=schema_id, SchemaVersionNumber={"VersionNumber": number}
            )["SchemaDefinition"]
            for number in range(1, latest + 1)
        ]

    def _sync_event(
        self, catalog: Catalog, event_type: str, versions: Iterable[CatalogVersion]
    ) -> list[tuple[str, str, int, str]]:
        ordered = list(versions)
        texts = [catalog.text(event_type, v.version) or "" for v in ordered]
        existing = self._existing(event_type)
        schema_id: Any = {"RegistryName": self.registry, "SchemaName": event_type}
        results: list[tuple[str, str, int, str]] = []
        if existing is None:
            self.client.create_schema(
                RegistryId={"RegistryName": self.registry},
                SchemaName=event_type,
                DataFormat="JSON",
                Compatibility="NONE",
                Description=f"Payload of {event_type}; compatibility is checked by Accord",
                SchemaDefinition=texts[0],
            )
            self._label(schema_id, 1, ordered[0].version)
            existing = [texts[0]]
            results.append((event_type, ordered[0].version, 1, "registered"))
            self.progress(f"  {event_type} {ordered[0].version} → Glue version 1 (new schema)")
        if len(existing) > len(texts) or any(
            json.loads(glue) != json.loads(text)
            for glue, text in zip(existing, texts, strict=False)
        ):
            raise CatalogError(
                f"Glue schema {self.registry}/{event_type} has versions that are not the "
                "catalog's, in the catalog's order; it was changed outside Accord"
            )
        for number, (entry, text) in enumerate(zip(ordered, texts, strict=True), start=1):
            if number <= len(existing):
                if not results or results[-1][2] != number:
                    results.append((event_type, entry.version, number, "present"))
                continue
            answer = self.client.register_schema_version(SchemaId=schema_id, SchemaDefinition=text)
            if answer.get("VersionNumber") != number:
                raise CatalogError(
                    f"Glue registered {event_type} {entry.version} as version "
                    f"{answer.get('VersionNumber')}, expected {number}"
                )
            self._label(schema_id, number, entry.version)
            results.append((event_type, entry.version, number, "registered"))
            self.progress(f"  {event_type} {entry.version} → Glue version {number}")
        if all(action == "present" for *_, action in results):
            self.progress(f"  {event_type}: Glue already has all {len(existing)} versions")
        return results

    def _label(self, schema_id: Any, number: int, version: str) -> None:
        self.client.put_schema_version_metadata(
            SchemaId=schema_id,
            SchemaVersionNumber={"VersionNumber": number},
            MetadataKeyValue={"MetadataKey": "schemaVersion", "MetadataValue": version},
        )


def _code(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# --- the offline page --------------------------------------------------------------------------

_STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:2px 8px;"
    "text-align:left}code,pre{font:13px ui-monospace,monospace}pre{background:#f6f6f6;"
    "padding:8px;overflow:auto}nav a{margin-right:1rem}summary{cursor:pointer}"
)


def page(catalog: Catalog) -> str:
    """An offline HTML page of the catalog: each event, its versions, each schema."""
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>Accord event schemas</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Accord event schemas</h1>",
        "<p>Published by <code>accord schemas publish</code>. Within a major version every "
        "schema is compatible with the versions before it under the event's mode.</p><nav>",
    ]
    parts += [f"<a href='#{html.escape(e)}'>{html.escape(e)}</a>" for e in sorted(catalog.events)]
    parts.append("</nav>")
    for event_type, versions in sorted(catalog.events.items()):
        name = html.escape(event_type)
        parts.append(
            f"<h2 id='{name}'><code>{name}</code></h2>"
            f"<p>compatibility: <b>{html.escape(catalog.mode(event_type) or '')}</b></p>"
            "<table><tr><th>version</th><th>published (order)</th><th>sha256</th></tr>"
        )
        parts += [
            f"<tr><td><a href='#{name}@{html.escape(v.version)}'>{html.escape(v.version)}</a>"
            f"</td><td>{v.sequence}</td><td><code>{v.sha256}</code></td></tr>"
            for v in versions
        ]
        parts.append("</table>")
        for v in reversed(versions):
            text = catalog.text(event_type, v.version) or ""
            opened = " open" if v is versions[-1] else ""
            parts.append(
                f"<details id='{name}@{html.escape(v.version)}'{opened}><summary>"
                f"{name} {html.escape(v.version)}</summary><pre>{html.escape(text)}</pre>"
                "</details>"
            )
    parts.append("</body></html>\n")
    return "\n".join(parts)
