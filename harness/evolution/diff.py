"""`accord diff --base REF`: every contract under contracts/ against its version at a git ref.

The documents at the ref are read with `git show REF:./path` into a temporary directory, so
`$ref`s between them resolve as they did at the ref. OpenAPI documents are compared by
`harness.evolution.http`; AsyncAPI documents message by message (payload schemas by the compat
engine under each message's mode, plus the version rules) and operation by operation.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.authoring.contracts import (
    CONTRACT_SUFFIXES,
    ContractLoadError,
    DanglingReferenceError,
    Resolver,
    iter_contract_files,
    join,
)
from harness.evolution.changes import Change, DiffRule, Severity, schema_changes
from harness.evolution.events import EventSchema, EventSchemaError, event_schemas
from harness.evolution.http import openapi_changes
from harness.evolution.modes import check
from harness.evolution.versions import SemVer, VersionRule
from harness.project import Project


class DiffError(Exception):
    """The comparison cannot be made: not a git repository, an unknown ref, a broken contract."""


@dataclass(frozen=True)
class DiffReport:
    """The changes between the contracts at `base` and in the working tree."""

    base: str
    documents: tuple[str, ...]
    changes: tuple[Change, ...]

    @property
    def breaking(self) -> tuple[Change, ...]:
        return tuple(change for change in self.changes if change.breaking)

    def as_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "documents": list(self.documents),
            "breaking": len(self.breaking),
            "nonBreaking": len(self.changes) - len(self.breaking),
            "changes": [change.as_json() for change in self.changes],
        }


def _git(root: Path, *args: str) -> bytes:
    try:
        result = subprocess.run(  # noqa: S603 - fixed executable, arguments are not a shell
            ["git", "-C", str(root), *args],  # noqa: S607 - git from PATH, as a developer runs it
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        raise DiffError("git is not installed") from None
    if result.returncode != 0:
        reason = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DiffError(f"git {' '.join(args)}: {reason[-1] if reason else 'failed'}")
    return result.stdout


def checkout_contracts(root: Path, base: str, target: Path) -> list[str]:
    """Write the contract files at `base` under `target` (same relative paths); their names."""
    try:
        _git(root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    except DiffError:
        raise DiffError(f"{base!r} is not a commit in the git repository at {root}") from None
    listing = _git(root, "ls-tree", "-r", "--name-only", base, "--", "contracts")
    names = [
        name for name in listing.decode("utf-8").splitlines() if name.endswith(CONTRACT_SUFFIXES)
    ]
    for name in names:
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_git(root, "show", f"{base}:./{name}"))
    return names


def _kind(data: Any) -> str | None:
    if isinstance(data, dict):
        for kind in ("openapi", "asyncapi"):
            if kind in data:
                return kind
    return None


def diff_contracts(project: Project, base: str) -> DiffReport:
    """Compare every OpenAPI and AsyncAPI document under contracts/ with its version at `base`."""
    with tempfile.TemporaryDirectory(prefix="accord-diff-") as scratch:
        old_root = Path(scratch)
        old_names = set(checkout_contracts(project.root, base, old_root))
        new_names = {project.relative(path) for path in iter_contract_files(project.contracts_dir)}
        old_resolver, new_resolver = Resolver(), Resolver()
        changes: list[Change] = []
        compared: list[str] = []
        for name in sorted(old_names | new_names):
            old_data = _load(old_resolver, old_root / name) if name in old_names else None
            new_data = _load(new_resolver, project.root / name) if name in new_names else None
            old_kind, new_kind = _kind(old_data), _kind(new_data)
            if old_kind is None and new_kind is None:
                continue
            compared.append(name)
            if old_kind != new_kind:
                if old_kind is not None:
                    changes.append(_document_removed(name, old_kind, old_data))
                if new_kind is not None:
                    changes.append(
                        Change(
                            name,
                            "",
                            DiffRule.DOCUMENT_ADDED,
                            Severity.NON_BREAKING,
                            "",
                            f"new {new_kind} document",
                        )
                    )
                continue
            if new_kind == "openapi":
                changes += openapi_changes(name, old_data, new_data)
            else:
                changes += asyncapi_changes(
                    name, old_root / name, project.root / name, old_resolver, new_resolver
                )
    return DiffReport(base, tuple(compared), tuple(changes))


def _load(resolver: Resolver, path: Path) -> Any:
    try:
        return resolver.document(path).data
    except ContractLoadError as error:
        raise DiffError(f"{path.name}: {error.reason}") from None


def _document_removed(name: str, kind: str, data: Any) -> Change:
    if kind == "openapi":
        count = sum(
            1
            for item in (data.get("paths") or {}).values()
            if isinstance(item, dict)
            for method in item
            if method in ("get", "put", "post", "delete", "options", "head", "patch", "trace")
        )
        what = f"{count} operation{'s' * (count != 1)}"
    else:
        what = f"{len(data.get('operations') or {})} operation(s) and its messages"
    return Change(
        name,
        "",
        DiffRule.DOCUMENT_REMOVED,
        Severity.BREAKING,
        "",
        f"the {kind} document was deleted, with {what}",
    )


# --- AsyncAPI ----------------------------------------------------------------------------------


def _events(path: Path, resolver: Resolver) -> dict[str, EventSchema]:
    try:
        return {event.event_type: event for event in event_schemas(path, resolver)}
    except EventSchemaError as error:
        raise DiffError(f"{path.name}: {error}") from None


def asyncapi_changes(
    name: str, old_path: Path, new_path: Path, old_resolver: Resolver, new_resolver: Resolver
) -> list[Change]:
    """Messages removed, added and changed (payload, mode, version), and operation changes."""
    old_events, new_events = _events(old_path, old_resolver), _events(new_path, new_resolver)
    changes: list[Change] = []
    for event_type in sorted(old_events.keys() - new_events.keys()):
        changes.append(
            Change(
                name,
                event_type,
                DiffRule.MESSAGE_REMOVED,
                Severity.BREAKING,
                old_events[event_type].message_pointer,
                f"message {event_type} was removed (the pointer is into the old document)",
            )
        )
    for event_type in sorted(new_events.keys() - old_events.keys()):
        changes.append(
            Change(
                name,
                event_type,
                DiffRule.MESSAGE_ADDED,
                Severity.NON_BREAKING,
                new_events[event_type].message_pointer,
                f"message {event_type} was added",
            )
        )
    for event_type in sorted(old_events.keys() & new_events.keys()):
        changes += _event_changes(
            name, old_events[event_type], new_events[event_type], old_resolver, new_resolver
        )
    changes += _operation_changes(name, old_path, new_path, old_resolver, new_resolver)
    return changes


def _event_changes(
    name: str, old: EventSchema, new: EventSchema, old_resolver: Resolver, new_resolver: Resolver
) -> list[Change]:
    subject = new.event_type
    changes: list[Change] = []
    if old.mode != new.mode:
        changes.append(
            Change(
                name,
                subject,
                DiffRule.COMPATIBILITY_MODE_CHANGED,
                Severity.NON_BREAKING,
                join(new.message_pointer, "x-compatibility"),
                f"compatibility mode changed from {old.mode} to {new.mode}",
            )
        )
    breaking = check(old.payload, new.payload, new.mode)
    changes += schema_changes(
        name,
        subject,
        old.payload,
        new.payload,
        breaking=breaking,
        safe_because=f"compatible under {new.mode}",
    )
    version_pointer = join(new.payload.location, "x-schema-version")
    try:
        old_version, new_version = SemVer.parse(old.version), SemVer.parse(new.version)
    except ValueError as error:
        return [
            *changes,
            Change(
                name,
                subject,
                VersionRule.VERSION_INVALID,
                Severity.BREAKING,
                version_pointer,
                str(error),
            ),
        ]
    try:
        same = old.bundled(old_resolver) == new.bundled(new_resolver)
    except (EventSchemaError, DanglingReferenceError) as error:
        raise DiffError(f"{name}: {subject}: {error}") from None
    if new_version < old_version:
        changes.append(
            Change(
                name,
                subject,
                VersionRule.VERSION_NOT_INCREASING,
                Severity.BREAKING,
                version_pointer,
                f"x-schema-version went down from {old_version} to {new_version}",
            )
        )
    elif new_version == old_version and not same:
        changes.append(
            Change(
                name,
                subject,
                DiffRule.VERSION_NOT_BUMPED,
                Severity.BREAKING,
                version_pointer,
                f"the payload schema changed but x-schema-version is still {new_version}; "
                "published versions never change, so `accord schemas publish` would refuse it",
            )
        )
    if breaking and new_version.major == old_version.major:
        first = breaking[0]
        changes.append(
            Change(
                name,
                subject,
                VersionRule.MAJOR_BUMP_MISSING,
                Severity.BREAKING,
                version_pointer,
                f"the change is not {new.mode} compatible ({first.rule} at #{first.pointer}) "
                f"but the version goes from {old_version} to {new_version}; a breaking change "
                f"needs {old_version.next_major()}",
            )
        )
    return changes


def _operations(path: Path, resolver: Resolver) -> dict[str, tuple[str, str | None, set[str]]]:
    """(action, channel address, message names) for each operation of an AsyncAPI document."""
    document = resolver.document(path)
    found: dict[str, tuple[str, str | None, set[str]]] = {}
    for op_name, operation in (document.data.get("operations") or {}).items():
        if not isinstance(operation, dict):
            continue
        try:
            _, channel = resolver.deref(document.path, operation.get("channel"))
            listed = operation.get("messages")
            if listed is None:
                listed = list(((channel or {}).get("messages") or {}).values())
            names = set()
            for reference in listed:
                _, message = resolver.deref(document.path, reference)
                if isinstance(message, dict) and isinstance(message.get("name"), str):
                    names.add(message["name"])
        except DanglingReferenceError as error:
            raise DiffError(f"{path.name}#/operations/{op_name}: {error}") from None
        address = channel.get("address") if isinstance(channel, dict) else None
        found[op_name] = (str(operation.get("action")), address, names)
    return found


def _operation_changes(
    name: str, old_path: Path, new_path: Path, old_resolver: Resolver, new_resolver: Resolver
) -> list[Change]:
    old_ops, new_ops = _operations(old_path, old_resolver), _operations(new_path, new_resolver)
    changes: list[Change] = []
    for op_name in sorted(old_ops.keys() | new_ops.keys()):
        pointer = join("", "operations", op_name)
        old, new = old_ops.get(op_name), new_ops.get(op_name)
        if old is not None and (new is None or new[0] != old[0]):
            sends = old[0] == "send"
            changes.append(
                Change(
                    name,
                    op_name,
                    DiffRule.OPERATION_REMOVED,
                    Severity.BREAKING if sends else Severity.NON_BREAKING,
                    pointer,
                    f"{old[0]} operation {op_name} was removed"
                    + (f"; receivers of {', '.join(sorted(old[2]))} lose it" if sends else ""),
                )
            )
        if new is not None and (old is None or new[0] != old[0]):
            changes.append(
                Change(
                    name,
                    op_name,
                    DiffRule.OPERATION_ADDED,
                    Severity.NON_BREAKING,
                    pointer,
                    f"{new[0]} operation {op_name} was added",
                )
            )
        if old is None or new is None or new[0] != old[0]:
            continue
        action, sends = new[0], new[0] == "send"
        if old[1] != new[1]:
            changes.append(
                Change(
                    name,
                    op_name,
                    DiffRule.CHANNEL_ADDRESS_CHANGED,
                    Severity.BREAKING,
                    join(pointer, "channel"),
                    f"the channel address changed from {old[1]!r} to {new[1]!r}",
                )
            )
        for message in sorted(old[2] - new[2]):
            changes.append(
                Change(
                    name,
                    op_name,
                    DiffRule.OPERATION_MESSAGE_REMOVED,
                    Severity.BREAKING if sends else Severity.NON_BREAKING,
                    join(pointer, "messages"),
                    f"{op_name} no longer {'sends' if sends else 'receives'} {message}",
                )
            )
        for message in sorted(new[2] - old[2]):
            changes.append(
                Change(
                    name,
                    op_name,
                    DiffRule.OPERATION_MESSAGE_ADDED,
                    Severity.NON_BREAKING,
                    join(pointer, "messages"),
                    f"{op_name} now {'sends' if action == 'send' else 'receives'} {message}",
                )
            )
    return changes
