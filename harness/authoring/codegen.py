"""The modules generated beside the models: `security.py` and `client.py` (shared by every
server and every client), and per contract the server
interface and router, the typed client, the typed responses (OpenAPI) and the event interfaces
(AsyncAPI application documents). The templates are in `templates/`; what is too fiddly for a
template (an argument list, a route's body) is built here. Every module is formatted with
black, the formatter the models are written with, so the output is stable byte for byte."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterable
from functools import cache
from typing import Any

import jinja2

from harness.authoring.event_apps import EventApp, Message
from harness.authoring.operations import Api, Operation

LINE_LENGTH = 100


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.authoring", "templates"),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - Python source, not HTML
    )
    environment.filters["docstring"] = docstring
    return environment


def docstring(text: str, indent: int = 0) -> str:
    """`text` as a docstring at `indent`, each paragraph wrapped to the line length (black
    leaves docstrings as they are)."""
    prefix = " " * indent
    paragraphs = [" ".join(p.split()) for p in text.strip().split("\n\n") if p.strip()]
    wrapped = [
        textwrap.fill(
            paragraph,
            width=LINE_LENGTH,
            initial_indent=prefix + ('"""' if index == 0 else ""),
            subsequent_indent=prefix,
            break_on_hyphens=False,
            break_long_words=False,
        ).removeprefix(prefix)
        for index, paragraph in enumerate(paragraphs)
    ]
    body = ("\n\n" + prefix).join(wrapped)
    last = body.rsplit("\n", 1)[-1]
    if len(last) + 3 + (0 if "\n" in body else indent) > LINE_LENGTH:
        return body + "\n" + prefix + '"""'
    return body + '"""'


def format_source(source: str) -> str:
    import black
    from black.mode import TargetVersion

    mode = black.Mode(
        target_versions={TargetVersion.PY311},
        line_length=LINE_LENGTH,
        string_normalization=True,
        magic_trailing_comma=False,
    )
    return black.format_str(source, mode=mode)


def render_template(template: str, **context: Any) -> str:
    """`template` (a path under `templates/`) rendered with `context`, formatted."""
    return format_source(_environment().get_template(template).render(**context))


def stdlib_imports(
    annotations: Iterable[str], dates: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """The standard-library imports the annotations need: (import lines, `typing` names)."""
    text = " ".join(annotations)
    lines = []
    used = {name for name in ("date", "datetime") if re.search(rf"\b{name}\b", text)}
    dates = sorted(used | set(dates))
    if dates:
        lines.append(f"from datetime import {', '.join(dates)}")
    if re.search(r"\bUUID\b", text):
        lines.append("from uuid import UUID")
    typing = ["Literal"] if re.search(r"\bLiteral\[", text) else []
    return lines, typing


def _module_of(line: str) -> str:
    """The module an import line imports from, for sorting as isort does."""
    return line.split()[1]


def _annotations(api: Api) -> list[str]:
    return [p.annotation for operation in api.operations for p in operation.parameters]


# --- security.py --------------------------------------------------------------------------------


def render_security(header: str) -> str:
    return render_template("security.py.jinja", header=header)


def render_client_support(header: str) -> str:
    return render_template("client_support.py.jinja", header=header)


# --- responses.py -------------------------------------------------------------------------------


def render_responses(api: Api, *, header: str, contract: str, package: str) -> str | None:
    typed = [operation for operation in api.operations if operation.result_class is not None]
    if not typed:
        return None
    lines, typing = stdlib_imports(f.annotation for op in typed for f in api.result_fields(op))
    lines.append("from dataclasses import dataclass")
    if typing:
        lines.append(f"from typing import {', '.join(typing)}")
    lines.sort(key=_module_of)
    return render_template(
        "responses.py.jinja",
        header=header,
        contract=contract,
        package=package,
        api=api,
        typed=typed,
        imports={"lines": lines},
    )


# --- server.py ----------------------------------------------------------------------------------


def _security_source(operation: Operation) -> str:
    alternatives = "".join(
        f"Requirement({r.scheme!r}, frozenset({{{', '.join(repr(x) for x in r.roles)}}})), "
        if r.roles
        else f"Requirement({r.scheme!r}), "
        for r in operation.security
    )
    owner = f", owner_parameter={operation.owner_parameter!r}" if operation.owner_parameter else ""
    return f"Security(({alternatives}){owner})".replace("'", '"')


def _route_arguments(operation: Operation) -> list[str]:
    """The route function's parameters: those without a default first, as Python requires."""
    required, optional = ["request: Request"], []
    if operation.security:
        required.append(f"caller: Annotated[Caller, admits({json.dumps(operation.operation_id)})]")
    for parameter in operation.parameters:
        source = f"{parameter.python}: Annotated[{parameter.annotation}, {parameter.marker}]"
        if parameter.default is None:
            required.append(source)
        else:
            optional.append(f"{source} = {parameter.default}")
    if operation.body is not None:
        if operation.body_required:
            required.append(f"body: {operation.body}")
        else:
            optional.append(f"body: {operation.body} | None = None")
    return [argument.replace("'", '"') for argument in required + optional]


def _call(operation: Operation) -> str:
    names = (["caller"] if operation.security else []) + [p.python for p in operation.parameters]
    if operation.body is not None:
        names.append("body")
    arguments = ", ".join(f"{name}={name}" for name in names)
    return f"implementation.{operation.python}({arguments})"


def _header_value(annotation: str, value: str) -> str:
    return value if annotation == "str" else f"str({value})"


def _route_lines(api: Api, operation: Operation) -> list[str]:
    """The body of a route: call the implementation, answer with what it returned."""
    call = _call(operation)
    lines = ["serving(request)"]
    if operation.result_class is None:
        (returned,) = operation.returned
        if returned.body is None:
            return [*lines, f"await {call}", f"return Response(status_code={returned.status})"]
        if returned.text:
            media_type = json.dumps(returned.media_type)
            return [
                *lines,
                f"return Response(await {call}, {returned.status}, media_type={media_type})",
            ]
        exclude = ", exclude_none=True" if returned.exclude_none else ""
        return [*lines, f"return json_response(await {call}, {returned.status}{exclude})"]
    fields = {field.name: field for field in api.result_fields(operation)}
    lines.append(f"result = await {call}")
    status = "result.status" if "status" in fields else str(operation.returned[0].status)
    headers = [
        header
        for response in operation.returned
        for header in response.headers
        if header.python in fields
    ]
    unique = {header.python: header for header in headers}
    if unique:
        required = [h for h in unique.values() if fields[h.python].default is None]
        optional = [h for h in unique.values() if fields[h.python].default is not None]
        entries = ", ".join(
            f'"{h.name}": {_header_value(h.annotation, "result." + h.python)}' for h in required
        )
        lines.append(f"headers = {{{entries}}}")
        for header in optional:
            lines += [
                f"if result.{header.python} is not None:",
                f'    headers["{header.name}"] = '
                + _header_value(header.annotation, f"result.{header.python}"),
            ]
    headers_argument = ", headers" if unique else ""
    exclude_argument = (
        ", exclude_none=True" if any(r.exclude_none for r in operation.returned) else ""
    )
    if "body" not in fields:
        lines.append(f"return Response(status_code={status}{', headers=headers' * bool(unique)})")
        return lines
    if fields["body"].annotation.endswith("| None"):
        lines += [
            "if result.body is None:",
            f"    return Response(status_code={status}{', headers=headers' * bool(unique)})",
        ]
    lines.append(f"return json_response(result.body, {status}{headers_argument}{exclude_argument})")
    return lines


def _operation_doc(operation: Operation) -> str:
    """An interface or client method's docstring: the summary, then the operation."""
    where = f"`{operation.operation_id}`: {operation.method.upper()} {operation.path}"
    summary = operation.summary.rstrip(".")
    return docstring(f"{summary}.\n\n{where}" if summary else where, 8)


def render_server(
    api: Api, *, header: str, contract: str, package: str, interface: str, typed: bool
) -> str:
    stdlib, typing = stdlib_imports(_annotations(api))
    typing_names = sorted({"Annotated", "Any", "Final", "Protocol", *typing})
    lines = sorted([*stdlib, f"from typing import {', '.join(typing_names)}"], key=_module_of)
    markers = sorted({p.location.capitalize() for op in api.operations for p in op.parameters})
    project = sorted(
        [
            "from generated.security import"
            " (Authenticator, Caller, Requirement, Security, json_response, serving)",
            f"from {package} import models" + (", responses" if typed else ""),
        ],
        key=_module_of,
    )
    return render_template(
        "server.py.jinja",
        header=header,
        contract=contract,
        package=package,
        interface=interface,
        api=api,
        typed=typed,
        imports={"lines": lines, "project": project, "fastapi": ["APIRouter", "Depends", *markers]},
        operation_doc=_operation_doc,
        security_source=_security_source,
        route_arguments=_route_arguments,
        route_lines=lambda operation: _route_lines(api, operation),
    )


# --- client.py ----------------------------------------------------------------------------------


def _client_arguments(operation: Operation) -> list[str]:
    required, optional = [], []
    for parameter in operation.parameters:
        if parameter.required:
            required.append(f"{parameter.python}: {parameter.annotation}")
        elif parameter.type.has_default:
            optional.append(f"{parameter.python}: {parameter.annotation} | None = None")
        else:
            optional.append(f"{parameter.python}: {parameter.annotation} = None")
    if operation.body is not None:
        if operation.body_required:
            required.append(f"body: {operation.body}")
        else:
            optional.append(f"body: {operation.body} | None = None")
    return required + optional


def _client_lines(api: Api, operation: Operation) -> list[str]:
    schemes = tuple(sorted({r.scheme for r in operation.security}))
    arguments = [json.dumps(operation.method.upper())]
    has_path = any(p.location == "path" for p in operation.parameters)
    arguments.append(f'f"{operation.path_format}"' if has_path else json.dumps(operation.path))
    query = [p for p in operation.parameters if p.location == "query"]
    if query:
        entries = ", ".join(f'"{p.name}": {p.python}' for p in query)
        arguments.append(f"params=shared.encode_query({{{entries}}})")
    header_parameters = [p for p in operation.parameters if p.location == "header"]
    json_body = operation.body is not None
    if json_body:
        body = "shared.encode_body(body)"
        if not operation.body_required:
            body = f"None if body is None else {body}"
        arguments.append(f"content={body}")
    scheme_tuple = "(" + "".join(f'"{s}", ' for s in schemes) + ")"
    headers = f"self._headers({scheme_tuple}{', json=True' if json_body else ''})"
    lines = []
    if header_parameters:
        lines.append(f"headers = {headers}")
        for p in header_parameters:
            if p.required or p.type.has_default:
                lines.append(f'headers["{p.name}"] = shared.encode_text({p.python})')
            else:
                lines += [
                    f"if {p.python} is not None:",
                    f'    headers["{p.name}"] = shared.encode_text({p.python})',
                ]
        arguments.append("headers=headers")
    else:
        arguments.append(f"headers={headers}")
    lines.append(f"response = await self._http.request({', '.join(arguments)})")
    fields = {f.name: f for f in api.result_fields(operation)}
    for returned in operation.returned:
        lines.append(f"if response.status_code == {returned.status}:")
        body = (
            "response.text"
            if returned.text
            else f"{returned.body}.model_validate_json(response.content)"
            if returned.body is not None
            else "None"
        )
        if operation.result_class is None:
            lines.append(f"    return {body}" if returned.body is not None else "    return None")
            continue
        values = []
        if "status" in fields:
            values.append(f"status={returned.status}")
        if "body" in fields:
            values.append(f"body={body}")
        for header in returned.headers:
            read = (
                f'response.headers["{header.name}"]'
                if header.required
                else f'response.headers.get("{header.name}")'
            )
            if header.annotation == "int":
                read = f"int({read})" if header.required else f"shared.optional_int({read})"
            values.append(f"{header.python}={read}")
        lines.append(f"    return responses.{operation.result_class}({', '.join(values)})")
    lines.append("raise ProblemError.of(response)")
    return lines


def render_client(
    api: Api, *, header: str, contract: str, package: str, client: str, typed: bool
) -> str:
    lines, typing = stdlib_imports(_annotations(api))
    if typing:
        lines.append(f"from typing import {', '.join(sorted(set(typing)))}")
    lines.sort(key=_module_of)
    return render_template(
        "client.py.jinja",
        header=header,
        contract=contract,
        package=package,
        client=client,
        api=api,
        typed=typed,
        imports={"lines": lines},
        client_arguments=_client_arguments,
        operation_doc=_operation_doc,
        client_lines=lambda operation: _client_lines(api, operation),
    )


# --- events.py ----------------------------------------------------------------------------------


def _union(messages: list[Message]) -> str:
    return " | ".join(f"models.{message.payload}" for message in messages)


def render_events(app: EventApp, *, header: str, contract: str, catalog_package: str) -> str:
    typing = {"TypeAlias"} if app.receives or app.sends else set()
    if app.sends:
        typing.add("Protocol")
    if app.receives:
        typing |= {"Final", "Protocol"}
    return render_template(
        "events.py.jinja",
        header=header,
        contract=contract,
        app=app,
        catalog_package=catalog_package,
        typing=sorted(typing),
        union=_union,
        filter_policy=json.dumps(app.filter_policy),
    )
