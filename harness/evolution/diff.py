"""`accord diff --base REF`: every contract under contracts/ against its version at a git ref.

The documents at the ref are read with `git show REF:./path` into a temporary directory, so
`$ref`s between them resolve as they did at the ref. OpenAPI documents are compared by
`harness.evolution.http`; AsyncAPI documents message by message (payload schemas by the compat
engine under each message's mode, plus the version rules; the message attributes likewise)
and operation by operation: a send operation's channel and messages, a receive operation's
SNS subscriptions and filter policies (does each still deliver what the receiver handles?).
A change that concerns events carries their types (`Change.events`), and a receiver's own
change its service (`Change.services`), so that `accord check` names whom it reaches.
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
from harness.evolution.events import EventSchema, EventSchemaError, bundle, event_schemas
from harness.evolution.http import openapi_changes
from harness.evolution.modes import check
from harness.evolution.rules import Rule
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
    changed: tuple[str, ...] = ()  # the contract files whose text differs from the base

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
    for name, content in zip(names, _blobs(root, base, names), strict=True):
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return names


def _blobs(root: Path, base: str, names: list[str]) -> list[bytes]:
    """The contents of `names` at `base`, read by one `git cat-file --batch`."""
    if not names:
        return []
    request = "".join(f"{base}:{name}\n" for name in names).encode("utf-8")
    try:
        result = subprocess.run(  # noqa: S603 - fixed executable, arguments are not a shell
            ["git", "-C", str(root), "cat-file", "--batch"],  # noqa: S607 - git from PATH
            input=request,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        raise DiffError("git is not installed") from None
    if result.returncode != 0:
        raise DiffError(f"git cat-file --batch: {result.stderr.decode('utf-8', 'replace')}")
    output, found, position = result.stdout, [], 0
    for name in names:
        end = output.index(b"\n", position)
        header = output[position:end].split()
        if len(header) != 3 or header[1] != b"blob":
            raise DiffError(f"git cat-file: {name} at {base} is not a file")
        size = int(header[2])
        found.append(output[end + 1 : end + 1 + size])
        position = end + 1 + size + 1
    return found


def _kind(data: Any) -> str | None:
    if isinstance(data, dict):
        for kind in ("openapi", "asyncapi"):
            if kind in data:
                return kind
    return None


def diff_contracts(project: Project, base: str, new_resolver: Resolver | None = None) -> DiffReport:
    """Compare every OpenAPI and AsyncAPI document under contracts/ with its version at `base`.

    A document whose text is the same at `base` is not compared, unless it is an AsyncAPI
    document and another one changed (their `$ref`s lead into each other).
    """
    with tempfile.TemporaryDirectory(prefix="accord-diff-") as scratch:
        old_root = Path(scratch)
        old_names = set(checkout_contracts(project.root, base, old_root))
        new_names = {project.relative(path) for path in iter_contract_files(project.contracts_dir)}
        old_resolver, new_resolver = Resolver(), new_resolver or Resolver()
        changes: list[Change] = []
        compared: list[str] = []
        changed: list[str] = [
            name
            for name in sorted(new_names)
            if name not in old_names
            or (old_root / name).read_bytes() != (project.root / name).read_bytes()
        ]
        events_changed = any("/asyncapi/" in f"/{name}" for name in changed) or any(
            "/asyncapi/" in f"/{name}" for name in old_names - new_names
        )
        for name in sorted(old_names | new_names):
            unchanged = name in old_names and name in new_names and name not in changed
            if unchanged and not ("/asyncapi/" in f"/{name}" and events_changed):
                compared.append(name)
                continue
            old_data = (
                _load(old_resolver, old_root / name, f"{name} at {base}")
                if name in old_names
                else None
            )
            new_data = _load(new_resolver, project.root / name, name) if name in new_names else None
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
                try:
                    changes += asyncapi_changes(
                        name, old_root / name, project.root / name, old_resolver, new_resolver
                    )
                except ContractLoadError as error:  # a document a $ref leads to
                    line = f", line {error.line}" if error.line else ""
                    shown = _shown(error, old_root, project.root, base)
                    raise DiffError(f"{shown}{line}: {error.reason}") from None
    return DiffReport(base, tuple(compared), tuple(changes), tuple(changed))


def _load(resolver: Resolver, path: Path, shown: str) -> Any:
    try:
        return resolver.document(path).data
    except ContractLoadError as error:
        line = f", line {error.line}" if error.line else ""
        raise DiffError(f"{shown}{line}: {error.reason}") from None


def _shown(error: ContractLoadError, old_root: Path, new_root: Path, base: str) -> str:
    path = Path(error.path)
    for root, suffix in ((old_root, f" at {base}"), (new_root, "")):
        try:
            return f"{path.resolve().relative_to(root.resolve()).as_posix()}{suffix}"
        except ValueError:
            continue
    return str(path)


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


def _events(name: str, path: Path, resolver: Resolver) -> dict[str, EventSchema]:
    try:
        return {event.event_type: event for event in event_schemas(path, resolver)}
    except EventSchemaError as error:
        raise DiffError(f"{name}: {error}") from None


def asyncapi_changes(
    name: str, old_path: Path, new_path: Path, old_resolver: Resolver, new_resolver: Resolver
) -> list[Change]:
    """Messages removed, added and changed (payload, mode, version), and operation changes."""
    old_events = _events(f"{name} (base)", old_path, old_resolver)
    new_events = _events(name, new_path, new_resolver)
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
                (event_type,),
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
        event=True,
    )
    changes += _header_changes(name, old, new)
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
                (subject,),
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
                (subject,),
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
                (subject,),
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
                (subject,),
            )
        )
    if new_version.major != old_version.major:
        changes.append(
            Change(
                name,
                subject,
                DiffRule.MAJOR_VERSION_BUMPED,
                Severity.BREAKING,
                version_pointer,
                f"x-schema-version goes from {old_version} to {new_version}: the receivers "
                f"accept only the major they were built for ({old_version.major}.x.y, as their "
                "pacts' schemaVersion matchers say), so they refuse every new event; publish the "
                "new major as another event type, or upgrade the receivers first and let them "
                "accept both",
                (subject,),
            )
        )
    return changes


def _header_changes(name: str, old: EventSchema, new: EventSchema) -> list[Change]:
    """The message attributes (SNS headers) under the event's mode, as its payload is."""
    subject = new.event_type
    if old.headers is None and new.headers is None:
        return []
    where = new.headers.location if new.headers is not None else new.message_pointer
    if old.headers is None or new.headers is None:
        added = old.headers is None
        return [
            Change(
                name,
                subject,
                Rule.PROPERTY_ADDED.value if added else Rule.PROPERTY_REMOVED.value,
                Severity.NON_BREAKING if added else Severity.BREAKING,
                where,
                "the message attributes are now declared"
                if added
                else "the message attributes are no longer declared; receivers filter and "
                "decode by them",
                (subject,),
            )
        ]
    return schema_changes(
        name,
        subject,
        old.headers,
        new.headers,
        breaking=check(old.headers, new.headers, new.mode),
        safe_because=f"the message attributes are compatible under {new.mode}",
        event=True,
    )


@dataclass(frozen=True)
class _AsyncOperation:
    """What an AsyncAPI operation says: its action, channel address, messages (by event type,
    with their attribute schemas) and, for a receiver, its SNS subscriptions."""

    action: str
    address: str | None
    messages: dict[str, Any]  # event type -> the message's `headers` schema (or None)
    subscriptions: dict[str, Any]  # endpoint name -> the subscription binding

    @property
    def names(self) -> set[str]:
        return set(self.messages)

    def delivered(self) -> dict[str, set[str]]:
        """Per subscription, the received event types its filter policy lets through."""
        return {
            endpoint: {event for event in self.messages if _admits(binding, event, self.messages)}
            for endpoint, binding in self.subscriptions.items()
        }


def _admits(binding: Any, event: str, messages: dict[str, Any]) -> bool:
    """Does a subscription's filter policy let `event` through? Only `MessageAttributes`
    policies with exact string values are decided; anything else is taken to admit it."""
    policy = binding.get("filterPolicy") if isinstance(binding, dict) else None
    if not isinstance(policy, dict):
        return True
    if binding.get("filterPolicyScope", "MessageAttributes") != "MessageAttributes":
        return True
    headers = messages.get(event)
    declared = (headers or {}).get("properties") or {} if isinstance(headers, dict) else {}
    for key, allowed in policy.items():
        values = allowed if isinstance(allowed, list) else [allowed]
        if not all(isinstance(value, str) for value in values):
            continue  # a numeric, prefix or exists matcher: not decided here
        if key == "eventType":
            sent: Any = event
        elif isinstance(declared.get(key), dict) and "const" in declared[key]:
            sent = declared[key]["const"]
        elif key in declared:
            continue  # sent, with a value the contract does not fix
        else:
            return False  # an attribute no event carries: nothing passes
        if sent not in values:
            return False
    return True


def _operations(path: Path, resolver: Resolver) -> dict[str, _AsyncOperation]:
    """Each operation of an AsyncAPI document."""
    document = resolver.document(path)
    found: dict[str, _AsyncOperation] = {}
    for op_name, operation in (document.data.get("operations") or {}).items():
        if not isinstance(operation, dict):
            continue
        try:
            _, channel = resolver.deref(document.path, operation.get("channel"))
            listed = operation.get("messages")
            if listed is None:
                listed = list(((channel or {}).get("messages") or {}).values())
            messages: dict[str, Any] = {}
            for reference in listed:
                base, message = resolver.deref(document.path, reference)
                if isinstance(message, dict) and isinstance(message.get("name"), str):
                    headers = message.get("headers")
                    if headers is not None:
                        headers = bundle(resolver, base, headers)
                    messages[message["name"]] = headers
        except (DanglingReferenceError, EventSchemaError) as error:
            raise DiffError(f"{path.name}#/operations/{op_name}: {error}") from None
        address = channel.get("address") if isinstance(channel, dict) else None
        sns = (
            ((operation.get("bindings") or {}).get("sns") or {})
            if isinstance(operation.get("bindings"), dict)
            else {}
        )
        subscriptions: dict[str, Any] = {}
        for index, consumer in enumerate(
            (sns.get("consumers") or []) if isinstance(sns, dict) else []
        ):
            if isinstance(consumer, dict):
                endpoint = (consumer.get("endpoint") or {}).get("name") or f"#{index}"
                subscriptions[str(endpoint)] = consumer
        found[op_name] = _AsyncOperation(
            str(operation.get("action")), address, messages, subscriptions
        )
    return found


def _operation_changes(
    name: str, old_path: Path, new_path: Path, old_resolver: Resolver, new_resolver: Resolver
) -> list[Change]:
    old_ops, new_ops = _operations(old_path, old_resolver), _operations(new_path, new_resolver)
    changes: list[Change] = []
    service = (Path(name).stem,)  # a receiver's document is named after its service
    for op_name in sorted(old_ops.keys() | new_ops.keys()):
        pointer = join("", "operations", op_name)
        old, new = old_ops.get(op_name), new_ops.get(op_name)
        if old is not None and (new is None or new.action != old.action):
            sends = old.action == "send"
            changes.append(
                Change(
                    name,
                    op_name,
                    DiffRule.OPERATION_REMOVED,
                    Severity.BREAKING if sends else Severity.NON_BREAKING,
                    pointer,
                    f"{old.action} operation {op_name} was removed"
                    + (f"; receivers of {', '.join(sorted(old.names))} lose it" if sends else ""),
                    tuple(sorted(old.names)) if sends else (),
                    () if sends else service,
                )
            )
        if new is not None and (old is None or new.action != old.action):
            changes.append(
                Change(
                    name,
                    op_name,
                    DiffRule.OPERATION_ADDED,
                    Severity.NON_BREAKING,
                    pointer,
                    f"{new.action} operation {op_name} was added",
                )
            )
        if old is None or new is None or new.action != old.action:
            continue
        sends = new.action == "send"
        reached = tuple(sorted(old.names)) if sends else ()
        if old.address != new.address:
            changes.append(
                Change(
                    name,
                    op_name,
                    DiffRule.CHANNEL_ADDRESS_CHANGED,
                    Severity.BREAKING,
                    join(pointer, "channel"),
                    f"the channel address changed from {old.address!r} to {new.address!r}",
                    reached,
                    () if sends else service,
                )
            )
        for message in sorted(old.names - new.names):
            changes.append(
                Change(
                    name,
                    op_name,
                    DiffRule.OPERATION_MESSAGE_REMOVED,
                    Severity.BREAKING if sends else Severity.NON_BREAKING,
                    join(pointer, "messages"),
                    f"{op_name} no longer {'sends' if sends else 'receives'} {message}",
                    (message,) if sends else (),
                    () if sends else service,
                )
            )
        for message in sorted(new.names - old.names):
            changes.append(
                Change(
                    name,
                    op_name,
                    DiffRule.OPERATION_MESSAGE_ADDED,
                    Severity.NON_BREAKING,
                    join(pointer, "messages"),
                    f"{op_name} now {'sends' if sends else 'receives'} {message}",
                )
            )
        if not sends:
            changes += _subscription_changes(name, op_name, pointer, old, new, service)
    return changes


def _subscription_changes(
    name: str,
    op_name: str,
    pointer: str,
    old: _AsyncOperation,
    new: _AsyncOperation,
    service: tuple[str, ...],
) -> list[Change]:
    """A receiver's SNS subscriptions: does each still deliver what the receiver handles, and
    only that?"""
    changes: list[Change] = []
    where = join(pointer, "bindings", "sns", "consumers")
    old_delivered, new_delivered = old.delivered(), new.delivered()
    for endpoint in sorted(old_delivered.keys() - new_delivered.keys()):
        lost = sorted(old_delivered[endpoint] & new.names)
        changes.append(
            Change(
                name,
                op_name,
                DiffRule.SUBSCRIPTION_REMOVED,
                Severity.BREAKING if lost else Severity.NON_BREAKING,
                where,
                f"the subscription of {endpoint} was removed"
                + (f": {', '.join(lost)} no longer reach it" if lost else ""),
                (),
                service,
            )
        )
    for endpoint in sorted(new_delivered.keys() - old_delivered.keys()):
        changes.append(
            Change(
                name,
                op_name,
                DiffRule.SUBSCRIPTION_ADDED,
                Severity.NON_BREAKING,
                where,
                f"{endpoint} is now subscribed",
            )
        )
    for endpoint in sorted(old_delivered.keys() & new_delivered.keys()):
        before, after = old_delivered[endpoint], new_delivered[endpoint]
        at = join(where, list(new.subscriptions).index(endpoint), "filterPolicy")
        lost = sorted((new.names & before) - after)
        if lost or (after < before):
            changes.append(
                Change(
                    name,
                    op_name,
                    DiffRule.FILTER_POLICY_NARROWED,
                    Severity.BREAKING if lost else Severity.NON_BREAKING,
                    at,
                    f"the filter policy of {endpoint} no longer lets through "
                    f"{', '.join(lost or sorted(before - after))}"
                    + ("; the receiver handles it and never gets it" if lost else ""),
                    (),
                    service,
                )
            )
        unhandled = sorted(_all_events_admitted(new, endpoint) - new.names)
        old_unhandled = sorted(_all_events_admitted(old, endpoint) - old.names)
        if unhandled and unhandled != old_unhandled:
            changes.append(
                Change(
                    name,
                    op_name,
                    DiffRule.FILTER_POLICY_WIDENED,
                    Severity.BREAKING,
                    at,
                    f"the filter policy of {endpoint} now lets through {', '.join(unhandled)}, "
                    "which the receiver does not handle: each one fails and ends in the "
                    "dead-letter queue",
                    (),
                    service,
                )
            )
    return changes


def _all_events_admitted(operation: _AsyncOperation, endpoint: str) -> set[str]:
    """The event types named by the `eventType` values of a subscription's filter policy."""
    binding = operation.subscriptions.get(endpoint) or {}
    policy = binding.get("filterPolicy") if isinstance(binding, dict) else None
    if not isinstance(policy, dict) or "eventType" not in policy:
        return set()
    allowed = policy["eventType"]
    values = allowed if isinstance(allowed, list) else [allowed]
    return {value for value in values if isinstance(value, str)}
