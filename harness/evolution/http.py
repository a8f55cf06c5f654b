"""HTTP contract changes: one OpenAPI document against its previous version.

Data flows two ways, so schemas are checked two ways: a request written by an old client must
still be accepted (old ⊆ new, as BACKWARD), and a response read by an old client must still
be understood (new ⊆ old, as FORWARD). A response property that disappears is breaking even
when it was optional: clients that read it lose it. Response headers are read as response
bodies are (one removed or made optional is breaking), and a documented status removed is
breaking whether it is a success or an error: clients branch on the statuses they were told
about (docs/compatibility.md, "Responses").
"""

from __future__ import annotations

import re
from typing import Any

from harness.authoring.contracts import join, lookup
from harness.evolution.changes import Change, DiffRule, Severity, schema_changes
from harness.evolution.modes import Schema, backward_violations, forward_violations
from harness.evolution.rules import Rule

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PARAMETER = re.compile(r"\{[^}]*\}")


def _deref(document: Any, value: Any, pointer: str) -> tuple[Any, str]:
    """Follow local `$ref`s (`#/...`) in `document`: the value and its pointer."""
    seen: set[str] = set()
    while isinstance(value, dict) and isinstance(value.get("$ref"), str):
        ref = value["$ref"]
        if not ref.startswith("#") or ref in seen:
            break
        seen.add(ref)
        try:
            value, pointer = lookup(document, ref[1:]), ref[1:]
        except (KeyError, ValueError):
            break
    return value, pointer


class _Operation:
    """An operation with what its contract says about it, `$ref`s followed."""

    def __init__(self, document: Any, path: str, method: str) -> None:
        self.document = document
        self.path = path
        self.method = method
        self.pointer = join("", "paths", path, method)
        item = document["paths"][path] or {}
        self.data: dict[str, Any] = item[method]
        self.subject = f"{method.upper()} {path}"
        self.parameters: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        names = _PARAMETER.findall(path)
        for where, values in (
            (join("", "paths", path, "parameters"), item.get("parameters") or []),
            (join(self.pointer, "parameters"), self.data.get("parameters") or []),
        ):
            for index, raw in enumerate(values):
                parameter, pointer = _deref(document, raw, join(where, index))
                if not isinstance(parameter, dict):
                    continue
                location, name = str(parameter.get("in")), str(parameter.get("name"))
                key = (location, name)
                if location == "path" and f"{{{name}}}" in names:  # renaming is not a change
                    key = (location, f"#{names.index(f'{{{name}}}')}")
                self.parameters[key] = (parameter, pointer)

    def security(self) -> list[dict[str, frozenset[str]]]:
        requirements = self.data.get("security", self.document.get("security", [])) or []
        return [
            {scheme: frozenset(roles or []) for scheme, roles in requirement.items()}
            for requirement in requirements
            if isinstance(requirement, dict)
        ]


def operations(document: Any) -> dict[str, _Operation]:
    """Every operation, keyed by method and path with parameter names erased."""
    found: dict[str, _Operation] = {}
    for path, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method in METHODS:
            if isinstance(item.get(method), dict):
                key = f"{method.upper()} {_PARAMETER.sub('{}', path)}"
                found[key] = _Operation(document, path, method)
    return found


def openapi_changes(name: str, old: Any, new: Any) -> list[Change]:
    """Every change between two versions of an OpenAPI document."""
    old_ops, new_ops = operations(old), operations(new)
    changes: list[Change] = []
    for key in sorted(old_ops.keys() - new_ops.keys()):
        op = old_ops[key]
        changes.append(
            Change(
                name,
                op.subject,
                DiffRule.OPERATION_REMOVED,
                Severity.BREAKING,
                op.pointer,
                f"{op.subject} was removed (the pointer is into the old document)",
            )
        )
    for key in sorted(new_ops.keys() - old_ops.keys()):
        op = new_ops[key]
        changes.append(
            Change(
                name,
                op.subject,
                DiffRule.OPERATION_ADDED,
                Severity.NON_BREAKING,
                op.pointer,
                f"{op.subject} was added",
            )
        )
    for key in sorted(old_ops.keys() & new_ops.keys()):
        changes += _operation_changes(name, old_ops[key], new_ops[key])
    return changes


def _operation_changes(name: str, old: _Operation, new: _Operation) -> list[Change]:
    changes = _parameter_changes(name, old, new)
    changes += _request_changes(name, old, new)
    changes += _response_changes(name, old, new)
    changes += _security_changes(name, old, new)
    return changes


def _change(
    name: str, op: _Operation, rule: str, breaking: bool, pointer: str, message: str
) -> Change:
    severity = Severity.BREAKING if breaking else Severity.NON_BREAKING
    return Change(name, op.subject, rule, severity, pointer, message)


def _request_schema_changes(
    name: str, old: _Operation, new: _Operation, old_schema: Schema, new_schema: Schema
) -> list[Change]:
    return schema_changes(
        name,
        new.subject,
        old_schema,
        new_schema,
        breaking=backward_violations(old_schema, new_schema),
        safe_because="every request an old client sends is still accepted",
    )


def _parameter_changes(name: str, old: _Operation, new: _Operation) -> list[Change]:
    changes: list[Change] = []
    for key in old.parameters.keys() - new.parameters.keys():
        parameter, pointer = old.parameters[key]
        changes.append(
            _change(
                name,
                new,
                DiffRule.PARAMETER_REMOVED,
                True,
                pointer,
                f"{parameter.get('in')} parameter {parameter.get('name')!r} was removed; old "
                "clients still send it (the pointer is into the old document)",
            )
        )
    for key in new.parameters.keys() - old.parameters.keys():
        parameter, pointer = new.parameters[key]
        required = parameter.get("required") is True
        changes.append(
            _change(
                name,
                new,
                DiffRule.PARAMETER_ADDED,
                required,
                pointer,
                f"{'required' if required else 'optional'} {parameter.get('in')} parameter "
                f"{parameter.get('name')!r} was added",
            )
        )
    for key in sorted(old.parameters.keys() & new.parameters.keys()):
        (old_p, _), (new_p, pointer) = old.parameters[key], new.parameters[key]
        label = f"{new_p.get('in')} parameter {new_p.get('name')!r}"
        was, now = old_p.get("required") is True, new_p.get("required") is True
        if now and not was:
            changes.append(
                _change(
                    name,
                    new,
                    DiffRule.PARAMETER_REQUIRED_ADDED,
                    True,
                    join(pointer, "required"),
                    f"{label} became required",
                )
            )
        elif was and not now:
            changes.append(
                _change(
                    name,
                    new,
                    DiffRule.PARAMETER_REQUIRED_REMOVED,
                    False,
                    join(pointer, "required"),
                    f"{label} became optional",
                )
            )
        if "schema" in old_p or "schema" in new_p:
            changes += _request_schema_changes(
                name,
                old,
                new,
                Schema(old_p.get("schema", True), old.document, join(pointer, "schema")),
                Schema(new_p.get("schema", True), new.document, join(pointer, "schema")),
            )
    return changes


def _content(document: Any, holder: Any, pointer: str) -> dict[str, tuple[Any, str]]:
    content = holder.get("content") if isinstance(holder, dict) else None
    if not isinstance(content, dict):
        return {}
    found: dict[str, tuple[Any, str]] = {}
    for media, entry in content.items():
        where = join(pointer, "content", media, "schema")
        schema = entry.get("schema", True) if isinstance(entry, dict) else True
        found[media] = (schema, where)
    return found


def _request_changes(name: str, old: _Operation, new: _Operation) -> list[Change]:
    old_body, old_ptr = _deref(
        old.document, old.data.get("requestBody"), join(old.pointer, "requestBody")
    )
    new_body, new_ptr = _deref(
        new.document, new.data.get("requestBody"), join(new.pointer, "requestBody")
    )
    if old_body is None and new_body is None:
        return []
    if old_body is None:
        required = isinstance(new_body, dict) and new_body.get("required") is True
        return [
            _change(
                name,
                new,
                DiffRule.REQUEST_BODY_ADDED,
                required,
                new_ptr,
                f"a{' required' if required else 'n optional'} request body was added",
            )
        ]
    if new_body is None:
        return [
            _change(
                name,
                new,
                DiffRule.REQUEST_BODY_REMOVED,
                True,
                join(new.pointer, "requestBody"),
                "the request body was removed; old clients still send one",
            )
        ]
    changes: list[Change] = []
    was, now = old_body.get("required") is True, new_body.get("required") is True
    if was != now:
        changes.append(
            _change(
                name,
                new,
                DiffRule.REQUEST_BODY_REQUIRED_ADDED
                if now
                else DiffRule.REQUEST_BODY_REQUIRED_REMOVED,
                now,
                join(new_ptr, "required"),
                "the request body became " + ("required" if now else "optional"),
            )
        )
    old_content = _content(old.document, old_body, old_ptr)
    new_content = _content(new.document, new_body, new_ptr)
    for media in sorted(old_content.keys() - new_content.keys()):
        changes.append(
            _change(
                name,
                new,
                DiffRule.MEDIA_TYPE_REMOVED,
                True,
                join(new_ptr, "content"),
                f"request media type {media} is no longer accepted",
            )
        )
    for media in sorted(new_content.keys() - old_content.keys()):
        changes.append(
            _change(
                name,
                new,
                DiffRule.MEDIA_TYPE_ADDED,
                False,
                join(new_ptr, "content", media),
                f"request media type {media} is now accepted",
            )
        )
    for media in sorted(old_content.keys() & new_content.keys()):
        (old_schema, old_where), (new_schema, new_where) = old_content[media], new_content[media]
        changes += _request_schema_changes(
            name,
            old,
            new,
            Schema(old_schema, old.document, old_where),
            Schema(new_schema, new.document, new_where),
        )
    return changes


def _is_success(code: str) -> bool:
    return code.startswith("2") or code.upper() == "2XX"


def _response_changes(name: str, old: _Operation, new: _Operation) -> list[Change]:
    old_responses = {str(k): v for k, v in (old.data.get("responses") or {}).items()}
    new_responses = {str(k): v for k, v in (new.data.get("responses") or {}).items()}
    changes: list[Change] = []
    where = join(new.pointer, "responses")
    added = sorted(new_responses.keys() - old_responses.keys())
    for code in sorted(old_responses.keys() - new_responses.keys()):
        instead = [other for other in added if other[:1] == code[:1]] or added
        changes.append(
            _change(
                name,
                new,
                DiffRule.RESPONSE_STATUS_REMOVED,
                True,
                where,
                f"response {code} is no longer documented"
                + (f" ({', '.join(instead)} is)" if instead else "")
                + "; clients that handle "
                + code
                + (" get another status" if _is_success(code) else " branch on it no more"),
            )
        )
    for code in added:
        changes.append(
            _change(
                name,
                new,
                DiffRule.RESPONSE_STATUS_ADDED,
                False,
                join(where, code),
                f"response {code} is now documented",
            )
        )
    for code in sorted(old_responses.keys() & new_responses.keys()):
        old_response, old_ptr = _deref(
            old.document, old_responses[code], join(old.pointer, "responses", code)
        )
        new_response, new_ptr = _deref(new.document, new_responses[code], join(where, code))
        changes += _header_changes(name, old, new, code, old_response, new_response, new_ptr)
        old_content = _content(old.document, old_response, old_ptr)
        new_content = _content(new.document, new_response, new_ptr)
        for media in sorted(old_content.keys() - new_content.keys()):
            changes.append(
                _change(
                    name,
                    new,
                    DiffRule.MEDIA_TYPE_REMOVED,
                    _is_success(code),
                    join(new_ptr, "content"),
                    f"response {code} no longer comes as {media}",
                )
            )
        for media in sorted(new_content.keys() - old_content.keys()):
            changes.append(
                _change(
                    name,
                    new,
                    DiffRule.MEDIA_TYPE_ADDED,
                    False,
                    join(new_ptr, "content", media),
                    f"response {code} may now come as {media}",
                )
            )
        for media in sorted(old_content.keys() & new_content.keys()):
            (old_schema, old_where), (new_schema, new_where) = (
                old_content[media],
                new_content[media],
            )
            old_s = Schema(old_schema, old.document, old_where)
            new_s = Schema(new_schema, new.document, new_where)
            changes += schema_changes(
                name,
                new.subject,
                old_s,
                new_s,
                breaking=forward_violations(old_s, new_s),
                safe_because="every response is still one an old client understands",
                extra_breaking={
                    Rule.PROPERTY_REMOVED: "a response property was removed; clients that "
                    "read it lose it"
                },
            )
    return changes


def _headers(document: Any, response: Any, pointer: str) -> dict[str, tuple[Any, str, str]]:
    """A response's headers by lower-case name: (header object, its pointer, its name)."""
    declared = response.get("headers") if isinstance(response, dict) else None
    if not isinstance(declared, dict):
        return {}
    found: dict[str, tuple[Any, str, str]] = {}
    for header, raw in declared.items():
        value, where = _deref(document, raw, join(pointer, "headers", header))
        found[str(header).lower()] = (value if isinstance(value, dict) else {}, where, header)
    return found


def _header_changes(
    name: str,
    old: _Operation,
    new: _Operation,
    code: str,
    old_response: Any,
    new_response: Any,
    new_ptr: str,
) -> list[Change]:
    """Response headers, read by the client as a response body is: one removed or made
    optional is breaking (a client reads it: the `Location` of a 201), one added is not, and
    a schema is compared as a response body's (new ⊆ old)."""
    old_headers = _headers(old.document, old_response, join(old.pointer, "responses", code))
    new_headers = _headers(new.document, new_response, new_ptr)
    changes: list[Change] = []
    for key in sorted(old_headers.keys() - new_headers.keys()):
        header, _, shown = old_headers[key]
        required = header.get("required") is True
        changes.append(
            _change(
                name,
                new,
                DiffRule.RESPONSE_HEADER_REMOVED,
                True,
                join(new_ptr, "headers", shown),
                f"response {code} no longer has the {'required ' if required else ''}header "
                f"{shown}; clients that read it lose it",
            )
        )
    for key in sorted(new_headers.keys() - old_headers.keys()):
        header, where, shown = new_headers[key]
        changes.append(
            _change(
                name,
                new,
                DiffRule.RESPONSE_HEADER_ADDED,
                False,
                where,
                f"response {code} now has the {'required ' if header.get('required') else ''}"
                f"header {shown}",
            )
        )
    for key in sorted(old_headers.keys() & new_headers.keys()):
        (old_header, old_where, _), (new_header, new_where, shown) = (
            old_headers[key],
            new_headers[key],
        )
        was, now = old_header.get("required") is True, new_header.get("required") is True
        if was != now:
            changes.append(
                _change(
                    name,
                    new,
                    DiffRule.RESPONSE_HEADER_REQUIRED_REMOVED
                    if was
                    else DiffRule.RESPONSE_HEADER_REQUIRED_ADDED,
                    was,
                    join(new_where, "required"),
                    f"response {code} header {shown} "
                    + (
                        "is no longer required; clients that read it may not get it"
                        if was
                        else "is now always sent"
                    ),
                )
            )
        if "schema" in old_header or "schema" in new_header:
            old_s = Schema(old_header.get("schema", True), old.document, join(old_where, "schema"))
            new_s = Schema(new_header.get("schema", True), new.document, join(new_where, "schema"))
            changes += schema_changes(
                name,
                new.subject,
                old_s,
                new_s,
                breaking=forward_violations(old_s, new_s),
                safe_because=f"every {shown} header is still one an old client understands",
            )
    return changes


def _covers(new: dict[str, frozenset[str]], old: dict[str, frozenset[str]]) -> bool:
    """Does a credential that satisfies the old requirement also satisfy the new one?"""
    return all(scheme in old and roles <= old[scheme] for scheme, roles in new.items())


def _show_security(requirements: list[dict[str, frozenset[str]]]) -> str:
    if not requirements:
        return "public"
    return " or ".join(
        " and ".join(
            f"{scheme}[{', '.join(sorted(roles))}]" if roles else scheme
            for scheme, roles in sorted(requirement.items())
        )
        or "anonymous"
        for requirement in requirements
    )


def _security_changes(name: str, old: _Operation, new: _Operation) -> list[Change]:
    old_sec, new_sec = old.security(), new.security()
    changes: list[Change] = []
    where = join(new.pointer, "security")
    old_open, new_open = not old_sec or {} in old_sec, not new_sec or {} in new_sec
    if sorted(map(repr, old_sec)) != sorted(map(repr, new_sec)):
        if new_open:
            tightened = False
        elif old_open:
            tightened = True
        else:
            tightened = any(not any(_covers(n, o) for n in new_sec) for o in old_sec)
        added = sorted(
            {role for n in new_sec for roles in n.values() for role in roles}
            - {role for o in old_sec for roles in o.values() for role in roles}
        )
        detail = f" (roles added: {', '.join(added)})" if added else ""
        changes.append(
            _change(
                name,
                new,
                DiffRule.SECURITY_TIGHTENED if tightened else DiffRule.SECURITY_RELAXED,
                tightened,
                where,
                f"security changed from {_show_security(old_sec)} to "
                f"{_show_security(new_sec)}{detail}",
            )
        )
    old_owner, new_owner = old.data.get("x-owner-parameter"), new.data.get("x-owner-parameter")
    if old_owner != new_owner:
        tightened = old_owner is not None  # removed or renamed: the old owners lose access
        changes.append(
            _change(
                name,
                new,
                DiffRule.SECURITY_TIGHTENED if tightened else DiffRule.SECURITY_RELAXED,
                tightened,
                join(new.pointer, "x-owner-parameter"),
                f"x-owner-parameter changed from {old_owner!r} to {new_owner!r}"
                + ("; owners lose access" if tightened else ""),
            )
        )
    return changes
