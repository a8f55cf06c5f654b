"""Reading contract documents: YAML or JSON, with the source line of every JSON pointer,
and `$ref` resolution across files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

CONTRACT_SUFFIXES = (".yaml", ".yml", ".json")


class ContractLoadError(Exception):
    """A contract file that cannot be read or parsed."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.line = line
        self.reason = reason


def escape(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def join(pointer: str, *tokens: str | int) -> str:
    """Extend a JSON pointer (`""` is the whole document) by reference tokens."""
    return pointer + "".join("/" + escape(token) for token in tokens)


def split(pointer: str) -> list[str]:
    if pointer in ("", "/"):
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"{pointer!r} is not a JSON pointer")
    return [unescape(token) for token in pointer[1:].split("/")]


_MISSING = object()


def lookup(data: Any, pointer: str) -> Any:
    """The value at `pointer`, or raise `KeyError` naming the first token that is missing."""
    node = data
    for token in split(pointer):
        if isinstance(node, dict):
            node = node.get(token, _MISSING)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            node = _MISSING
        if node is _MISSING:
            raise KeyError(token)
    return node


@dataclass(frozen=True)
class Document:
    """A parsed contract file and the 1-based source line of each pointer in it."""

    path: Path
    data: Any
    lines: dict[str, int] = field(repr=False)

    def line_of(self, pointer: str) -> int | None:
        """The line of `pointer`, or of its nearest ancestor that has one."""
        tokens = split(pointer) if pointer else []
        while True:
            candidate = "".join("/" + escape(t) for t in tokens)
            if candidate in self.lines:
                return self.lines[candidate]
            if not tokens:
                return None
            tokens.pop()


def _node_lines(node: yaml.Node, pointer: str, lines: dict[str, int]) -> None:
    lines[pointer] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = join(pointer, str(key.value))
            _node_lines(value, child, lines)
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _node_lines(item, join(pointer, index), lines)


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_document(path: Path) -> Document:
    """Parse a YAML or JSON contract file (JSON is YAML) with its line map."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ContractLoadError(path, None, f"cannot read: {error.strerror}") from None
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else None
        raise ContractLoadError(path, line, f"not valid YAML: {error.problem}") from None
    lines: dict[str, int] = {}
    if root is not None:
        _node_lines(root, "", lines)
    return Document(path=path.resolve(), data=data, lines=lines)


def iter_contract_files(directory: Path) -> Iterator[Path]:
    """Every contract file below `directory`, in a stable order."""
    yield from sorted(
        p for p in directory.rglob("*") if p.is_file() and p.suffix in CONTRACT_SUFFIXES
    )


class DanglingReferenceError(Exception):
    """A `$ref` whose target file or pointer does not exist."""


@dataclass
class Resolver:
    """Loads documents once and follows `$ref`s between them (local files only)."""

    documents: dict[Path, Document] = field(default_factory=dict)

    def document(self, path: Path) -> Document:
        path = path.resolve()
        if path not in self.documents:
            self.documents[path] = load_document(path)
        return self.documents[path]

    def target(self, base: Path, ref: str) -> tuple[Path, str]:
        """The file and pointer that `ref`, written in `base`, refers to."""
        try:
            parts = urlsplit(ref)
        except ValueError:
            raise DanglingReferenceError(f"$ref {ref!r} is not a valid reference") from None
        if parts.scheme or parts.netloc:
            raise DanglingReferenceError(
                f"$ref {ref!r} is remote; contracts may only refer to files in the repository"
            )
        path = (base.parent / unquote(parts.path)).resolve() if parts.path else base.resolve()
        return path, unquote(parts.fragment)

    def resolve_ref(self, base: Path, ref: str) -> tuple[Path, str, Any]:
        """Follow one `$ref`; raise `DanglingReferenceError` when it leads nowhere."""
        path, pointer = self.target(base, ref)
        if not path.is_file():
            raise DanglingReferenceError(f"$ref {ref!r}: file {path.name} does not exist")
        try:
            document = self.document(path)
        except ContractLoadError as error:
            raise DanglingReferenceError(f"$ref {ref!r}: {error.reason}") from None
        try:
            value = lookup(document.data, pointer)
        except (KeyError, ValueError):
            raise DanglingReferenceError(
                f"$ref {ref!r}: {path.name} has nothing at #{pointer}"
            ) from None
        return path, pointer, value

    def deref(self, base: Path, value: Any) -> tuple[Path, Any]:
        """`value` with its `$ref` chain followed to the end (a cycle raises)."""
        seen: set[tuple[Path, str]] = set()
        while isinstance(value, dict) and isinstance(value.get("$ref"), str):
            base, pointer, value = self.resolve_ref(base, value["$ref"])
            if (base, pointer) in seen:
                raise DanglingReferenceError(f"$ref cycle through {base.name}#{pointer}")
            seen.add((base, pointer))
        return base, value


def _mapping(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping, else an empty one (a malformed part is lint's finding)."""
    return value if isinstance(value, dict) else {}


def messages_defined(document: Document) -> Iterator[tuple[str, dict[str, Any]]]:
    """(pointer, message) for every message defined (not referenced) in a document."""
    data = document.data
    for name, message in _mapping(_mapping(data.get("components")).get("messages")).items():
        if isinstance(message, dict) and "$ref" not in message:
            yield join("", "components", "messages", name), message
    for channel_name, channel in _mapping(data.get("channels")).items():
        for name, message in _mapping(_mapping(channel).get("messages")).items():
            if isinstance(message, dict) and "$ref" not in message:
                yield join("", "channels", channel_name, "messages", name), message
