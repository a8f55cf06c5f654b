"""What an OpenAPI contract says about each operation, read into the terms the generated server
and client modules are written in: Python names, type expressions, FastAPI parameter markers,
the security alternatives, and the responses an implementation returns (not its problems).

A response is *returned* (by the implementation, through the generated route) when its content
is not `application/problem+json`; the problems are raised, by the implementation or the
authenticator, and never appear in the interface.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.authoring.contracts import DanglingReferenceError, Resolver

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
SCHEMAS = "#/components/schemas/"

# JSON Schema keyword → the FastAPI `Path`/`Query`/`Header` argument that enforces it.
CONSTRAINTS = {
    "minimum": "ge",
    "maximum": "le",
    "exclusiveMinimum": "gt",
    "exclusiveMaximum": "lt",
    "minLength": "min_length",
    "maxLength": "max_length",
    "pattern": "pattern",
}
FORMATS = {"uuid": "UUID", "date-time": "datetime", "date": "date"}
SCALARS = {"integer": "int", "number": "float", "boolean": "bool", "string": "str"}


class OperationError(Exception):
    """A part of the contract the generator cannot turn into a typed operation."""


def snake(name: str) -> str:
    """`getUserProfile` → `get_user_profile`, `X-API-Key` → `x_api_key`."""
    name = re.sub(r"[^0-9A-Za-z]+", "_", name)
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    name = name.strip("_").lower() or "_"
    if name[0].isdigit():
        name = "_" + name
    return name + "_" if keyword.iskeyword(name) else name


def pascal(name: str) -> str:
    """`getUserProfile` → `GetUserProfile`."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", name))


@dataclass(frozen=True)
class PyType:
    """A schema as Python: the annotation, and the constraints FastAPI checks on a parameter."""

    annotation: str
    constraints: tuple[tuple[str, Any], ...] = ()
    default: Any = None
    has_default: bool = False


@dataclass(frozen=True)
class Parameter:
    """A path, query or header parameter of an operation."""

    name: str  # as the contract spells it
    location: str  # path, query, header
    python: str  # the keyword argument
    type: PyType
    required: bool

    @property
    def annotation(self) -> str:
        """The type the implementation receives (optional parameters without a default may be
        absent: None)."""
        if self.required or self.type.has_default:
            return self.type.annotation
        return f"{self.type.annotation} | None"

    @property
    def marker(self) -> str:
        """`Query(alias="userId", ge=1)`: how FastAPI reads and checks the parameter."""
        arguments = []
        if self.python != self.name:
            arguments.append(f"alias={self.name!r}")
        arguments += [f"{key}={value!r}" for key, value in self.type.constraints]
        return f"{self.location.capitalize()}({', '.join(arguments)})"

    @property
    def default(self) -> str | None:
        """The source of the route's default, None when the parameter is required."""
        if self.required:
            return None
        if not self.type.has_default:
            return "None"
        if self.type.annotation.startswith("models."):  # an enum of the models
            return f"{self.type.annotation}({self.type.default!r})"
        return repr(self.type.default)


@dataclass(frozen=True)
class Header:
    """A header a returned response documents."""

    name: str
    python: str
    annotation: str
    required: bool


@dataclass(frozen=True)
class Returned:
    """A response the implementation returns: its status, body model and documented headers."""

    status: int
    body: str | None  # `models.X`, `str` for a text body, or None for no body
    headers: tuple[Header, ...]
    exclude_none: bool  # the body's schema has optional properties that may not be null
    media_type: str = JSON  # a text body's (`text/plain; version=0.0.4`)

    @property
    def text(self) -> bool:
        """Whether the body is text (a `str`), not a JSON model."""
        return self.media_type != JSON

    @property
    def model(self) -> str | None:
        """The body's model, when it has a JSON body."""
        return None if self.text else self.body


@dataclass(frozen=True)
class Requirement:
    scheme: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Operation:
    """One operation of the contract."""

    operation_id: str
    method: str
    path: str
    summary: str
    parameters: tuple[Parameter, ...]
    body: str | None  # `models.X`
    body_required: bool
    returned: tuple[Returned, ...]
    security: tuple[Requirement, ...]  # empty: public
    owner_parameter: str | None

    @property
    def python(self) -> str:
        return snake(self.operation_id)

    @property
    def result_class(self) -> str | None:
        """The name of the typed response, when a bare model (or None) cannot say the result:
        several returned responses, or documented headers."""
        if len(self.returned) == 1 and not self.returned[0].headers:
            return None
        return pascal(self.operation_id) + "Response"

    @property
    def result(self) -> str:
        """The return annotation of the interface method and the client method."""
        if self.result_class is not None:
            return f"responses.{self.result_class}"
        return self.returned[0].body or "None"

    @property
    def path_format(self) -> str:
        """The path as an f-string body over the client's arguments."""
        by_name = {p.name: p.python for p in self.parameters if p.location == "path"}
        return re.sub(
            r"\{([^}]+)\}", lambda m: "{shared.encode_path(" + by_name[m.group(1)] + ")}", self.path
        )

    def statuses(self) -> list[int]:
        return [response.status for response in self.returned]


@dataclass(frozen=True)
class ResultField:
    """A field of an operation's typed response."""

    name: str
    annotation: str
    default: str | None = None


@dataclass(frozen=True)
class Scheme:
    """A security scheme as a client presents it."""

    name: str
    python: str
    header: str  # the header that carries the credential
    prefix: str  # `Bearer ` for an HTTP bearer credential


@dataclass
class Api:
    """An OpenAPI contract as the generated modules see it."""

    title: str
    operations: list[Operation] = field(default_factory=list)
    schemes: list[Scheme] = field(default_factory=list)
    problem: str = "models.Problem"

    def result_fields(self, operation: Operation) -> list[ResultField]:
        """The fields of `operation`'s typed response: status (when several), body, headers."""
        fields = []
        statuses = operation.statuses()
        if len(statuses) > 1:
            literal = ", ".join(str(status) for status in statuses)
            fields.append(ResultField("status", f"Literal[{literal}]"))
        bodies = sorted({r.body for r in operation.returned if r.body is not None})
        if bodies:
            annotation = " | ".join(bodies)
            if any(r.body is None for r in operation.returned):
                annotation += " | None"
            fields.append(ResultField("body", annotation))
        headers: dict[str, Header] = {}
        for response in operation.returned:
            for header in response.headers:
                headers.setdefault(header.python, header)
        everywhere = {
            name
            for name in headers
            if all(
                any(h.python == name and h.required for h in r.headers) for r in operation.returned
            )
        }
        for name, header in headers.items():
            if name in everywhere:
                fields.append(ResultField(name, header.annotation))
        for name, header in headers.items():
            if name not in everywhere:
                fields.append(ResultField(name, f"{header.annotation} | None", "None"))
        return fields


class Reader:
    """Reads one OpenAPI document; `model_classes` are the classes of its generated models."""

    def __init__(self, path: Path, resolver: Resolver, model_classes: set[str]) -> None:
        self.path = path.resolve()
        self.resolver = resolver
        self.data: dict[str, Any] = resolver.document(self.path).data
        self.model_classes = model_classes

    def fail(self, where: str, reason: str) -> OperationError:
        return OperationError(f"{where}: {reason}")

    def deref(self, value: Any) -> Any:
        try:
            return self.resolver.deref(self.path, value)[1]
        except DanglingReferenceError as error:
            raise OperationError(str(error)) from None

    # --- schemas -------------------------------------------------------------------------------

    def model_of(self, schema: Any, where: str) -> str:
        """`models.X` for a body schema, which must be a `$ref` to a generated model."""
        ref = schema.get("$ref", "") if isinstance(schema, dict) else ""
        name = ref.removeprefix(SCHEMAS)
        if not ref.startswith(SCHEMAS) or name not in self.model_classes:
            raise self.fail(
                where, "a body schema must be a $ref to a model in #/components/schemas"
            )
        return f"models.{name}"

    def python_type(self, schema: Any, where: str) -> PyType:
        """The annotation and constraints of a parameter or header schema."""
        if not isinstance(schema, dict):
            raise self.fail(where, "no schema")
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.removeprefix(SCHEMAS)
            target = self.deref(schema)
            if ref.startswith(SCHEMAS) and name in self.model_classes and "enum" in target:
                return self._with_default(PyType(f"models.{name}"), schema, target)  # its enum
            return self._with_default(self.python_type(target, where), schema, {})
        kinds = schema.get("type")
        kinds = list(kinds) if isinstance(kinds, list) else [kinds]
        nullable = "null" in kinds
        kinds = [kind for kind in kinds if kind != "null"]
        if "enum" in schema:
            annotation = "Literal[" + ", ".join(repr(v) for v in schema["enum"]) + "]"
        elif "const" in schema:
            annotation = f"Literal[{schema['const']!r}]"
        elif len(kinds) != 1 or kinds[0] not in SCALARS:
            raise self.fail(where, f"cannot type a parameter of type {schema.get('type')!r}")
        elif kinds[0] == "string":
            annotation = FORMATS.get(schema.get("format", ""), "str")
        else:
            annotation = SCALARS[kinds[0]]
        if nullable:
            annotation += " | None"
        constraints = tuple(
            (argument, schema[key]) for key, argument in CONSTRAINTS.items() if key in schema
        )
        return self._with_default(PyType(annotation, constraints), schema, {})

    @staticmethod
    def _with_default(found: PyType, schema: dict[str, Any], target: Any) -> PyType:
        for source in (schema, target):
            if isinstance(source, dict) and "default" in source:
                return PyType(found.annotation, found.constraints, source["default"], True)
        return found

    def exclude_none(self, schema: Any, where: str) -> bool:
        """Whether a body of `schema` is written without its None values: true when some
        optional property may not be null (a null there would break the contract), false when
        every None is a null the contract allows. Both in one body is refused."""
        optional: set[str] = set()
        nullable: set[str] = set()
        self._walk(schema, optional, nullable, set())
        if optional and nullable:
            raise self.fail(
                where,
                "a response body mixes optional non-nullable properties "
                f"({', '.join(sorted(optional))}) with nullable ones "
                f"({', '.join(sorted(nullable))}): the generated route cannot tell which "
                "None to omit",
            )
        return bool(optional)

    def _walk(self, schema: Any, optional: set[str], nullable: set[str], seen: set[str]) -> None:
        if not isinstance(schema, dict):
            return
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if ref in seen:
                return
            seen.add(ref)
            self._walk(self.deref(schema), optional, nullable, seen)
            return
        required = set(schema.get("required") or [])
        for name, prop in (schema.get("properties") or {}).items():
            target = self.deref(prop)
            kinds = target.get("type") if isinstance(target, dict) else None
            admits_null = (isinstance(kinds, list) and "null" in kinds) or kinds == "null"
            if admits_null:
                nullable.add(name)
            elif name not in required:
                optional.add(name)
            self._walk(prop, optional, nullable, seen)
        self._walk(schema.get("items"), optional, nullable, seen)
        if isinstance(schema.get("additionalProperties"), dict):
            self._walk(schema["additionalProperties"], optional, nullable, seen)
        for key in ("allOf", "anyOf", "oneOf"):
            for part in schema.get(key) or []:
                self._walk(part, optional, nullable, seen)

    # --- operations ----------------------------------------------------------------------------

    def api(self) -> Api:
        api = Api(title=str((self.data.get("info") or {}).get("title", "")))
        api.schemes = self.schemes()
        api.problem = self.problem_model()
        default_security = self.data.get("security") or []
        for path, item in (self.data.get("paths") or {}).items():
            item = self.deref(item)
            shared = item.get("parameters") or []
            for method in METHODS:
                if method in item:
                    api.operations.append(
                        self.operation(path, method, item[method], shared, default_security)
                    )
        names = [operation.operation_id for operation in api.operations]
        if len(set(names)) != len(names):
            raise OperationError("every operation needs its own operationId")
        return api

    def operation(
        self, path: str, method: str, op: dict[str, Any], shared: list[Any], default: list[Any]
    ) -> Operation:
        where = f"{method.upper()} {path}"
        operation_id = op.get("operationId")
        if not operation_id:
            raise self.fail(where, "needs an operationId")
        where = f"{operation_id} ({where})"
        parameters: dict[tuple[str, str], Parameter] = {}
        for raw in [*shared, *(op.get("parameters") or [])]:
            parameter = self.parameter(self.deref(raw), where)
            parameters[(parameter.location, parameter.name)] = parameter  # the operation's wins
        body, body_required = None, False
        if "requestBody" in op:
            request = self.deref(op["requestBody"])
            content = request.get("content") or {}
            if set(content) != {JSON}:
                raise self.fail(where, f"a request body must be {JSON} only")
            body = self.model_of(content[JSON].get("schema"), where)
            body_required = bool(request.get("required", False))
        returned = []
        for status, raw in sorted((op.get("responses") or {}).items(), key=lambda kv: str(kv[0])):
            if not str(status).isdigit():
                raise self.fail(where, f"response {status!r}: only numeric statuses are generated")
            response = self.deref(raw)
            content = response.get("content") or {}
            if PROBLEM_JSON in content or (int(status) >= 400 and not content):
                continue
            returned.append(self.returned(int(status), response, f"{where} {status}"))
        if not returned:
            raise self.fail(where, "documents no response that is not a problem")
        if any(r.text for r in returned) and (len(returned) > 1 or returned[0].headers):
            raise self.fail(where, "a text response must be the only result, with no headers")
        security = op.get("security", default) or []
        requirements = []
        for alternative in security:
            if len(alternative) != 1:
                raise self.fail(where, "a security requirement must name exactly one scheme")
            ((scheme, roles),) = alternative.items()
            if scheme not in {s.name for s in self.schemes()}:
                raise self.fail(where, f"security scheme {scheme!r} is not declared")
            requirements.append(Requirement(scheme, tuple(sorted(roles or []))))
        owner = op.get("x-owner-parameter")
        if owner is not None and ("path", owner) not in parameters:
            raise self.fail(where, f"x-owner-parameter {owner!r} is not a path parameter")
        path_names = re.findall(r"\{([^}]+)\}", path)
        declared = sorted(name for location, name in parameters if location == "path")
        if sorted(path_names) != declared:
            raise self.fail(where, "the path's {parameters} and its path parameters differ")
        ordered = sorted(
            parameters.values(), key=lambda p: ("path", "query", "header").index(p.location)
        )
        return Operation(
            operation_id=operation_id,
            method=method,
            path=path,
            summary=str(op.get("summary") or ""),
            parameters=tuple(ordered),
            body=body,
            body_required=body_required,
            returned=tuple(returned),
            security=tuple(requirements),
            owner_parameter=owner,
        )

    def parameter(self, raw: dict[str, Any], where: str) -> Parameter:
        name, location = raw.get("name"), raw.get("in")
        if location not in ("path", "query", "header") or not name:
            raise self.fail(where, f"parameter {name!r} in {location!r} is not generated")
        python = snake(name)
        kind = self.python_type(raw.get("schema"), f"{where} parameter {name}")
        return Parameter(
            name, location, python, kind, location == "path" or bool(raw.get("required"))
        )

    def returned(self, status: int, response: dict[str, Any], where: str) -> Returned:
        content = response.get("content") or {}
        body, exclude_none = None, False
        media_type = JSON
        if len(content) == 1 and next(iter(content)).startswith("text/"):
            ((media_type, media),) = content.items()
            if (self.deref(media.get("schema") or {}) or {}).get("type") != "string":
                raise self.fail(where, f"a {media_type} response's schema must be a string")
            body = "str"
        elif content:
            if set(content) != {JSON}:
                raise self.fail(where, f"a returned response must be {JSON} only, or one text/*")
            schema = content[JSON].get("schema")
            body = self.model_of(schema, where)
            exclude_none = self.exclude_none(schema, where)
        headers = []
        for name, raw in sorted((response.get("headers") or {}).items()):
            header = self.deref(raw)
            kind = self.python_type(header.get("schema"), f"{where} header {name}")
            headers.append(Header(name, snake(name), kind.annotation, bool(header.get("required"))))
        return Returned(status, body, tuple(headers), exclude_none, media_type)

    def schemes(self) -> list[Scheme]:
        schemes = []
        declared = (self.data.get("components") or {}).get("securitySchemes") or {}
        for name, raw in declared.items():
            scheme = self.deref(raw)
            if scheme.get("type") == "http" and str(scheme.get("scheme")).lower() == "bearer":
                schemes.append(Scheme(name, snake(name), "Authorization", "Bearer "))
            elif scheme.get("type") == "apiKey" and scheme.get("in") == "header":
                schemes.append(Scheme(name, snake(name), str(scheme["name"]), ""))
            else:
                raise OperationError(
                    f"security scheme {name!r}: only HTTP bearer and header API keys are generated"
                )
        return schemes

    def problem_model(self) -> str:
        """The model of the contract's problems: the schema of its `application/problem+json`
        responses (one schema, with RFC 9457's `title` and `status`)."""
        found: set[str] = set()
        responses = [
            response
            for item in (self.data.get("paths") or {}).values()
            for method, op in self.deref(item).items()
            if method in METHODS
            for response in (op.get("responses") or {}).values()
        ]
        responses += list(((self.data.get("components") or {}).get("responses") or {}).values())
        for raw in responses:
            content = (self.deref(raw).get("content") or {}).get(PROBLEM_JSON)
            if content is not None:
                found.add(self.model_of(content.get("schema"), PROBLEM_JSON))
        if len(found) != 1:
            raise OperationError(
                f"the {PROBLEM_JSON} responses need exactly one schema, found {sorted(found)}"
            )
        (problem,) = found
        schema = self.deref({"$ref": SCHEMAS + problem.removeprefix("models.")})
        if not {"title", "status"} <= set(schema.get("properties") or {}):
            raise OperationError(f"{problem}: a problem schema needs `title` and `status`")
        return problem


def model_classes(source: str) -> set[str]:
    """The classes a generated models module defines."""
    return set(re.findall(r"^class (\w+)\(", source, re.MULTILINE))
