"""An HTTP mock of a service from its OpenAPI 3.1 contract alone (`accord mock SERVICE`).

Every operation of the contract is routed. A request is checked as the contract states it,
in this order, each failure answered with the contract's own problem response
(`application/problem+json`):

1. the security requirement: a bearer `Authorization` header or the API key header the
   scheme names (present, not verified) → 401;
2. the content type of a body → 415 (400 when 415 is not documented);
3. a body that is not JSON → 400;
4. path, query and header parameters, and the JSON body, against their schemas → 422 with
   `errors: [{pointer, message}]` (`/path/userId`, `/query/limit`, `/body/country`, ...).

A valid request gets the operation's first documented 2xx response. `Prefer: code=404` picks
another documented status and `Prefer: example=NAME` a named example (RFC 7240; both may be
given, e.g. `Prefer: code=404, example=pending`); a preference that names nothing documented
is ignored, and `Preference-Applied` echoes the ones applied. The body is the response's
`example`, its named `examples` (first one by default), or the schema's `examples`; without any,
it is generated from the schema, the same for the same `seed`. Required response headers
(`Location`, `Retry-After`, `Cache-Control`, `WWW-Authenticate`) are sent from their examples.

`stateful=True` keeps what is created: a POST to a collection path that has an item path
(`/addresses` and `/addresses/{addressId}`) stores the answer under the request's path and its
`id` (the request body laid over the example, a fresh `id`, and path parameters of the same
name, e.g. `userId`); GET of the item returns it, PATCH merges the body into it, DELETE removes
it, each 404 when the id is unknown; GET of the collection lists what is stored (in the
response schema's array property, e.g. `items`). Nothing else is kept, and a request with a
`Prefer` header is answered from the contract rather than from what is kept.

One log line per request (logger `accord.mock`) names the operationId and the status and
example chosen.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import re
import string
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness.authoring.contracts import Document, Resolver, escape

log = logging.getLogger("accord.mock")

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
FORMATS = jsonschema.FormatChecker()
PROBLEM = "application/problem+json"
_PREFERENCE = re.compile(
    r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,;\s]*))?'
)


@dataclass(frozen=True)
class Node:
    """A value of the contract and where it is: its file and JSON pointer (after `$ref`s)."""

    path: Path
    pointer: str
    value: Any

    def child(self, *tokens: str | int) -> Node:
        value = self.value
        pointer = self.pointer
        for token in tokens:
            value = value[token]
            pointer += "/" + escape(token)
        return Node(self.path, pointer, value)


@dataclass
class Operation:
    method: str
    template: str
    operation_id: str
    node: Node  # the operation object
    parameters: list[Node]  # resolved parameter objects
    regex: re.Pattern[str]
    collection_of: str | None = None  # stateful: the item template this collection owns
    item_of: str | None = None  # stateful: the collection template of this item
    item_parameter: str | None = None


@dataclass
class Chosen:
    status: int
    content_type: str | None
    body: Any
    headers: dict[str, str]
    label: str
    applied: list[str] = field(default_factory=list)


class Contract:
    """An OpenAPI document loaded with `$ref` resolution and validators for its schemas."""

    def __init__(self, path: Path) -> None:
        self.resolver = Resolver()
        self.document: Document = self.resolver.document(path)
        self.root = Node(self.document.path, "", self.document.data)
        self.operations = list(self._operations())
        registry: Registry[Any] = Registry()
        for file, document in self.resolver.documents.items():
            registry = registry.with_resource(
                file.as_uri(),
                Resource.from_contents(document.data, default_specification=DRAFT202012),
            )
        self.registry = registry
        self._validators: dict[tuple[Path, str], jsonschema.Draft202012Validator] = {}

    def deref(self, node: Node) -> Node:
        seen: set[tuple[Path, str]] = set()
        while isinstance(node.value, dict) and isinstance(node.value.get("$ref"), str):
            path, pointer, value = self.resolver.resolve_ref(node.path, node.value["$ref"])
            if (path, pointer) in seen:
                break
            seen.add((path, pointer))
            node = Node(path, pointer, value)
        return node

    def get(self, node: Node, *tokens: str | int) -> Node | None:
        """The child at `tokens`, each step with `$ref`s followed; None when absent."""
        node = self.deref(node)
        for token in tokens:
            if isinstance(node.value, dict) and token in node.value:
                node = self.deref(node.child(token))
            else:
                return None
        return node

    def validator(self, schema: Node) -> jsonschema.Draft202012Validator:
        key = (schema.path, schema.pointer)
        if key not in self._validators:
            self._validators[key] = jsonschema.Draft202012Validator(
                {"$ref": f"{schema.path.as_uri()}#{schema.pointer}"},
                registry=self.registry,
                format_checker=FORMATS,
            )
        return self._validators[key]

    def _operations(self) -> Iterator[Operation]:
        paths = self.get(self.root, "paths")
        if paths is None:
            return
        for template in paths.value:
            item = self.get(paths, template)
            if item is None or not isinstance(item.value, dict):
                continue
            shared = [
                self.deref(item.child("parameters", i))
                for i in range(len(item.value.get("parameters") or []))
            ]
            for method in METHODS:
                operation = self.get(item, method)
                if operation is None:
                    continue
                own = [
                    self.deref(operation.child("parameters", i))
                    for i in range(len(operation.value.get("parameters") or []))
                ]
                names = {(p.value.get("in"), p.value.get("name")) for p in own}
                parameters = own + [
                    p for p in shared if (p.value.get("in"), p.value.get("name")) not in names
                ]
                yield Operation(
                    method=method.upper(),
                    template=template,
                    operation_id=str(operation.value.get("operationId") or f"{method} {template}"),
                    node=operation,
                    parameters=parameters,
                    regex=_template_regex(template),
                )


def _group(name: str) -> str:
    """A regular-expression group name for a path parameter."""
    return "p_" + re.sub(r"\W", "_", name)


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = ""
    for literal, name in re.findall(r"([^{]*)(?:\{([^}]*)\})?", template):
        pattern += re.escape(literal)
        if name:
            pattern += f"(?P<{_group(name)}>[^/]+)"
    return re.compile(f"^{pattern}$")


def _link_stateful(operations: list[Operation]) -> None:
    """Collections with a POST and an item template one `/{parameter}` below them."""
    posts = {op.template for op in operations if op.method == "POST"}
    for op in operations:
        match = re.fullmatch(r"(.+)/\{([^}/]+)\}", op.template)
        if match and match.group(1) in posts:
            op.item_of, op.item_parameter = match.group(1), match.group(2)
    items = {op.item_of: op.template for op in operations if op.item_of}
    for op in operations:
        if op.template in items and op.method in ("GET", "POST"):
            op.collection_of = items[op.template]


def parse_prefer(values: list[str]) -> dict[str, str]:
    """The preferences of `Prefer` headers (RFC 7240): token → value (first one wins)."""
    found: dict[str, str] = {}
    for value in values:
        for part in value.split(","):
            match = _PREFERENCE.match(part)
            if not match:
                continue
            token, word = match.group(1).lower(), match.group(2) or ""
            if word.startswith('"'):
                word = re.sub(r"\\(.)", r"\1", word[1:-1])
            found.setdefault(token, word)
    return found


class Generator:
    """Values from schemas, deterministic for a seed."""

    def __init__(self, contract: Contract, rng: random.Random) -> None:
        self.contract = contract
        self.rng = rng

    def value(self, node: Node, depth: int = 0) -> Any:
        node = self.contract.deref(node)
        schema = node.value
        if not isinstance(schema, dict):
            return None
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if isinstance(schema.get("examples"), list) and schema["examples"]:
            return copy.deepcopy(schema["examples"][0])
        if "example" in schema:
            return copy.deepcopy(schema["example"])
        if "default" in schema:
            return copy.deepcopy(schema["default"])
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return copy.deepcopy(self.rng.choice(schema["enum"]))
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {}
            for index in range(len(schema["allOf"])):
                part = self.value(node.child("allOf", index), depth + 1)
                if isinstance(part, dict):
                    merged.update(part)
            if merged:
                return merged
        for key in ("oneOf", "anyOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return self.value(node.child(key, 0), depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "string"
        if kind == "object":
            result: dict[str, Any] = {}
            properties = schema.get("properties") or {}
            required = set(schema.get("required") or [])
            for name in properties:
                if name in required or depth < 3:
                    result[name] = self.value(node.child("properties", name), depth + 1)
            return result
        if kind == "array":
            count = (
                max(int(schema.get("minItems", 1)), 1)
                if depth < 4
                else int(schema.get("minItems", 0))
            )
            if "items" not in schema:
                return []
            return [self.value(node.child("items"), depth + 1) for _ in range(count)]
        if kind == "integer":
            low = int(schema.get("minimum", 0))
            high = int(schema.get("maximum", low + 100))
            return self.rng.randint(low, max(low, high))
        if kind == "number":
            bottom = float(schema.get("minimum", 0))
            top = float(schema.get("maximum", bottom + 100))
            return round(self.rng.uniform(bottom, top), 2)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self.string(schema)

    def string(self, schema: dict[str, Any]) -> str:
        form = schema.get("format")
        if form == "uuid":
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        if form == "date-time":
            return f"2026-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}T10:30:00Z"
        if form == "date":
            return f"2026-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}"
        if form == "email":
            return f"user{self.rng.randint(1, 9999)}@example.com"
        if form in ("uri", "url"):
            return f"https://example.com/{self.rng.randint(1, 9999)}"
        if form == "uri-reference":
            return f"/resources/{self.rng.randint(1, 9999)}"
        low = int(schema.get("minLength", 1))
        high = int(schema.get("maxLength", max(low, 12)))
        length = min(max(low, 8), high)
        return "".join(self.rng.choice(string.ascii_lowercase) for _ in range(length))


def _coerce(raw: str, schema: Any) -> Any:
    """A parameter's text as the type its schema asks for (left as text when it is not)."""
    kinds = schema.get("type") if isinstance(schema, dict) else None
    kinds = kinds if isinstance(kinds, list) else [kinds]
    for kind in kinds:
        try:
            if kind == "integer":
                return int(raw)
            if kind == "number":
                return float(raw)
        except ValueError:
            continue
        if kind == "boolean" and raw in ("true", "false"):
            return raw == "true"
    return raw


class MockApp:
    """The mock behind one contract: `app` is the ASGI application."""

    def __init__(self, contract: Contract, *, seed: int = 0, stateful: bool = False) -> None:
        self.contract = contract
        self.seed = seed
        self.stateful = stateful
        # Literal paths before templated ones, so `/users/me` beats `/users/{id}`.
        self.operations = sorted(contract.operations, key=lambda op: op.template.count("{"))
        _link_stateful(self.operations)
        self.store: dict[str, dict[str, Any]] = {}
        self.created = 0
        self.app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self.handle,
                    methods=["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"],
                )
            ]
        )

    # -- routing -------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        matched = [(op, m) for op in self.operations if (m := op.regex.match(path))]
        if not matched:
            return self._plain_problem(404, "Not found", f"The contract has no path {path}.", path)
        for op, match in matched:
            if op.method == request.method:
                chosen = await self._answer(op, match.groupdict(), request)
                log.info(
                    "%s %s → %s %d (%s)",
                    request.method,
                    path,
                    op.operation_id,
                    chosen.status,
                    chosen.label,
                )
                return self._response(chosen)
        allowed = sorted({op.method for op, _ in matched})
        response = self._plain_problem(
            405, "Method not allowed", f"{request.method} is not documented for {path}.", path
        )
        response.headers["Allow"] = ", ".join(allowed)
        return response

    def _response(self, chosen: Chosen) -> Response:
        headers = dict(chosen.headers)
        if chosen.applied:
            headers["Preference-Applied"] = ", ".join(chosen.applied)
        if chosen.content_type is None or chosen.status == 204:
            return Response(status_code=chosen.status, headers=headers)
        content = (
            chosen.body
            if isinstance(chosen.body, str) and "json" not in chosen.content_type
            else json.dumps(chosen.body)
        )
        return Response(
            content, status_code=chosen.status, headers=headers, media_type=chosen.content_type
        )

    def _plain_problem(self, status: int, title: str, detail: str, path: str) -> Response:
        body = {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": path,
        }
        return Response(json.dumps(body), status_code=status, media_type=PROBLEM)

    # -- one operation ---------------------------------------------------------------------

    async def _answer(self, op: Operation, raw_path: dict[str, str], request: Request) -> Chosen:
        path_values = {
            p.value["name"]: raw_path.get(_group(p.value["name"]), "")
            for p in op.parameters
            if p.value.get("in") == "path"
        }
        if not self._authenticated(op, request):
            return self._problem(op, 401, request, detail="No credentials were presented.")
        body, has_body, failure = await self._read_body(op, request)
        if failure is not None:
            return failure
        errors = self._check_parameters(op, path_values, request)
        errors += self._check_body(op, body, has_body)
        if errors:
            return self._problem(
                op, 422, request, detail="The request does not match the contract.", errors=errors
            )
        prefer = parse_prefer(request.headers.getlist("prefer"))
        if self.stateful and (op.item_of or op.collection_of) and not prefer:
            stateful = self._stateful(op, path_values, request.url.path, body)
            if stateful is not None:
                return stateful
        return self._choose(op, prefer, request.url.path)

    def _authenticated(self, op: Operation, request: Request) -> bool:
        requirements = op.node.value.get("security")
        if requirements is None:
            requirements = self.contract.root.value.get("security") or []
        if not requirements:
            return True
        schemes = self.contract.get(self.contract.root, "components", "securitySchemes")
        for requirement in requirements:
            if all(self._presented(schemes, name, request) for name in requirement):
                return True
        return False

    def _presented(self, schemes: Node | None, name: str, request: Request) -> bool:
        scheme = self.contract.get(schemes, name) if schemes is not None else None
        if scheme is None:
            return False
        spec = scheme.value
        if spec.get("type") == "http":
            expected = str(spec.get("scheme", "bearer")).lower()
            given = request.headers.get("authorization", "")
            kind, _, credential = given.partition(" ")
            return kind.lower() == expected and bool(credential.strip())
        if spec.get("type") == "apiKey":
            where, key = spec.get("in"), str(spec.get("name", ""))
            if where == "header":
                return bool(request.headers.get(key))
            if where == "query":
                return bool(request.query_params.get(key))
            if where == "cookie":
                return bool(request.cookies.get(key))
        # OAuth2, OpenID Connect, mutual TLS: a bearer token stands in for them.
        return request.headers.get("authorization", "").lower().startswith("bearer ")

    async def _read_body(self, op: Operation, request: Request) -> tuple[Any, bool, Chosen | None]:
        raw = await request.body()
        request_body = self.contract.get(op.node, "requestBody")
        if request_body is None:
            return None, False, None
        content = request_body.value.get("content") or {}
        if not raw:
            return None, False, None
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in {str(m).lower() for m in content}:
            documented = self._documented(op)
            status = 415 if "415" in documented or "400" not in documented else 400
            return (
                None,
                False,
                self._problem(
                    op,
                    status,
                    request,
                    detail=f"The body must be one of: {', '.join(content)}.",
                    title="Unsupported media type" if status == 415 else None,
                ),
            )
        if "json" not in media_type:
            return raw.decode("utf-8", "replace"), True, None
        try:
            return json.loads(raw), True, None
        except ValueError:
            return (
                None,
                False,
                self._problem(op, 400, request, detail="The request body is not valid JSON."),
            )

    def _check_parameters(
        self, op: Operation, path_values: dict[str, str], request: Request
    ) -> list[dict[str, str]]:
        errors: list[dict[str, str]] = []
        for parameter in op.parameters:
            where, name = parameter.value.get("in"), str(parameter.value.get("name"))
            if where == "path":
                raw: str | None = path_values.get(name)
            elif where == "query":
                raw = request.query_params.get(name)
            elif where == "header":
                raw = request.headers.get(name)
            elif where == "cookie":
                raw = request.cookies.get(name)
            else:
                continue
            pointer = f"/{where}/{escape(name)}"
            if raw is None:
                if parameter.value.get("required"):
                    errors.append(
                        {"pointer": pointer, "message": "a required parameter is missing"}
                    )
                continue
            schema = self.contract.get(parameter, "schema")
            if schema is None:
                continue
            value = _coerce(raw, self.contract.deref(schema).value)
            errors += self._schema_errors(schema, value, pointer)
        return errors

    def _check_body(self, op: Operation, body: Any, has_body: bool) -> list[dict[str, str]]:
        request_body = self.contract.get(op.node, "requestBody")
        if request_body is None:
            return []
        if not has_body:
            if request_body.value.get("required"):
                return [{"pointer": "/body", "message": "a request body is required"}]
            return []
        for media_type in request_body.value.get("content") or {}:
            if "json" in media_type:
                schema = self.contract.get(request_body, "content", media_type, "schema")
                if schema is not None:
                    return self._schema_errors(schema, body, "/body")
        return []

    def _schema_errors(self, schema: Node, value: Any, prefix: str) -> list[dict[str, str]]:
        errors: list[dict[str, str]] = []
        try:
            found = list(self.contract.validator(schema).iter_errors(value))
        except Exception as problem:  # a broken schema is no reason to answer 500
            log.warning(
                "schema at %s#%s not checked: %s", schema.path.name, schema.pointer, problem
            )
            return []
        for error in found:
            pointer = prefix + "".join("/" + escape(t) for t in error.absolute_path)
            if error.validator == "required" and isinstance(error.instance, dict):
                for name in error.validator_value:
                    if name not in error.instance and error.message.startswith(repr(name)):
                        errors.append(
                            {"pointer": f"{pointer}/{escape(name)}", "message": error.message}
                        )
                continue
            errors.append({"pointer": pointer, "message": error.message})
        return errors

    # -- choosing a response ------------------------------------------------------------------

    def _documented(self, op: Operation) -> dict[str, Node]:
        responses = self.contract.get(op.node, "responses")
        if responses is None:
            return {}
        return {
            str(status): node
            for status in responses.value
            if (node := self.contract.get(responses, status)) is not None
        }

    def _rng(self, op: Operation, status: int, path: str) -> random.Random:
        key = f"{self.seed}|{op.operation_id}|{status}|{path}"
        return random.Random(zlib.crc32(key.encode()))  # noqa: S311 - reproducible, not secret

    def _choose(self, op: Operation, prefer: dict[str, str], path: str) -> Chosen:
        documented = self._documented(op)
        applied: list[str] = []
        status_key: str | None = None
        wanted_code = prefer.get("code")
        if wanted_code and wanted_code in documented:
            status_key = wanted_code
            applied.append(f"code={wanted_code}")
        wanted_example = prefer.get("example")
        if wanted_example and status_key is None:
            # The named example may belong to any documented response, 2xx ones first.
            for key in sorted(documented, key=lambda k: (not k.startswith("2"), k)):
                if wanted_example in self._named_examples(documented[key]):
                    status_key = key
                    break
        if status_key is None:
            successes = sorted(k for k in documented if k.startswith("2"))
            status_key = successes[0] if successes else (sorted(documented) or ["200"])[0]
        status = int(status_key) if status_key.isdigit() else 200
        response = documented.get(status_key)
        chosen = self._render(op, response, status, path, wanted_example)
        if wanted_example and chosen.label == wanted_example:
            applied.append(f"example={wanted_example}")
        chosen.applied = applied
        return chosen

    def _named_examples(self, response: Node) -> dict[str, Node]:
        found: dict[str, Node] = {}
        for media_type in response.value.get("content") or {}:
            examples = self.contract.get(response, "content", media_type, "examples")
            for name in examples.value if examples is not None else {}:
                example = self.contract.get(examples, name) if examples is not None else None
                if example is not None and "value" in example.value:
                    found[name] = example
        return found

    def _render(
        self,
        op: Operation,
        response: Node | None,
        status: int,
        path: str,
        wanted_example: str | None = None,
    ) -> Chosen:
        rng = self._rng(op, status, path)
        generator = Generator(self.contract, rng)
        if response is None:
            return Chosen(status, None, None, {}, "undocumented")
        content = response.value.get("content") or {}
        content_type: str | None = None
        body: Any = None
        label = "no content"
        if content:
            content_type = next((m for m in content if "json" in m), next(iter(content)))
            media = self.contract.get(response, "content", content_type)
            assert media is not None
            named = self._named_examples(response)
            if wanted_example and wanted_example in named:
                body, label = copy.deepcopy(named[wanted_example].value["value"]), wanted_example
            elif "example" in media.value:
                body, label = copy.deepcopy(media.value["example"]), "example"
            elif named:
                name = next(iter(named))
                body, label = copy.deepcopy(named[name].value["value"]), name
            else:
                schema = self.contract.get(media, "schema")
                body = generator.value(schema) if schema is not None else None
                label = f"generated (seed {self.seed})"
        headers: dict[str, str] = {}
        declared = self.contract.get(response, "headers")
        for name in declared.value if declared is not None else {}:
            header = self.contract.get(declared, name) if declared is not None else None
            if header is None or not header.value.get("required"):
                continue
            if name.lower() == "content-type":
                continue
            headers[name] = self._header_value(header, generator)
        return Chosen(status, content_type, body, headers, label)

    def _header_value(self, header: Node, generator: Generator) -> str:
        if "example" in header.value:
            value = header.value["example"]
        else:
            examples = header.value.get("examples")
            schema = self.contract.get(header, "schema")
            if isinstance(examples, dict) and examples:
                first = self.contract.get(header, "examples", next(iter(examples)))
                value = first.value.get("value") if first is not None else ""
            elif schema is not None:
                value = generator.value(schema)
            else:
                value = ""
        return value if isinstance(value, str) else json.dumps(value)

    def _problem(
        self,
        op: Operation,
        status: int,
        request: Request,
        *,
        detail: str,
        title: str | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> Chosen:
        """The contract's response for `status` (its example, with this request's detail)."""
        response = self._documented(op).get(str(status))
        if response is not None:
            chosen = self._render(op, response, status, request.url.path)
        else:
            chosen = Chosen(status, PROBLEM, None, {}, "undocumented")
            if status == 401:
                chosen.headers["WWW-Authenticate"] = 'Bearer realm="accord"'
        body = chosen.body if isinstance(chosen.body, dict) else {}
        body = {**body, "status": status, "detail": detail, "instance": request.url.path}
        body.setdefault("title", title or "Problem")
        body.setdefault("type", "about:blank")
        if errors is not None:
            body["errors"] = errors
        else:
            body.pop("errors", None)
        chosen.body = body
        chosen.content_type = chosen.content_type or PROBLEM
        chosen.label = "problem" if response is not None else "undocumented problem"
        return chosen

    # -- stateful --------------------------------------------------------------------------

    def _stateful(
        self, op: Operation, path_values: dict[str, str], path: str, body: Any
    ) -> Chosen | None:
        if op.collection_of and op.method == "POST":
            chosen = self._choose(op, {}, path)
            if not isinstance(chosen.body, dict):
                return None
            self.created += 1
            key = f"{self.seed}|created|{self.created}"
            rng = random.Random(zlib.crc32(key.encode()))  # noqa: S311 - reproducible, not secret
            created = {**chosen.body, **(body if isinstance(body, dict) else {})}
            for name, value in path_values.items():
                if name in created:
                    created[name] = value
            created["id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            self.store.setdefault(path.rstrip("/"), {})[created["id"]] = created
            chosen.body = created
            for name in chosen.headers:
                if name.lower() == "location":
                    chosen.headers[name] = f"{path.rstrip('/')}/{created['id']}"
            chosen.label = f"stateful: created {created['id']}"
            return chosen
        if op.collection_of and op.method == "GET":
            chosen = self._choose(op, {}, path)
            stored = list(self.store.get(path.rstrip("/"), {}).values())
            if isinstance(chosen.body, list):
                chosen.body = stored
            elif isinstance(chosen.body, dict):
                array = next((k for k, v in chosen.body.items() if isinstance(v, list)), None)
                if array is None:
                    return None
                chosen.body[array] = stored
            chosen.label = f"stateful: {len(stored)} stored"
            return chosen
        if op.item_of and op.item_parameter:
            collection = path.rstrip("/").rsplit("/", 1)[0]
            item_id = path_values.get(op.item_parameter, "")
            items = self.store.get(collection, {})
            if item_id not in items:
                documented = self._documented(op)
                response = documented.get("404")
                if response is None:
                    return None
                chosen = self._render(op, response, 404, path)
                chosen.label = f"stateful: {item_id} not stored"
                return chosen
            if op.method == "GET":
                chosen = self._choose(op, {}, path)
                chosen.body = copy.deepcopy(items[item_id])
            elif op.method in ("PATCH", "PUT"):
                chosen = self._choose(op, {}, path)
                if op.method == "PUT" and isinstance(body, dict):
                    items[item_id] = {**body, "id": item_id}
                elif isinstance(body, dict):
                    items[item_id].update(body)
                chosen.body = copy.deepcopy(items[item_id])
            elif op.method == "DELETE":
                chosen = self._choose(op, {}, path)
                del items[item_id]
            else:
                return None
            chosen.label = f"stateful: {op.method} {item_id}"
            return chosen
        return None


def build_app(contract_path: Path, *, seed: int = 0, stateful: bool = False) -> Starlette:
    """The ASGI mock of the OpenAPI contract at `contract_path`."""
    return MockApp(Contract(contract_path), seed=seed, stateful=stateful).app
