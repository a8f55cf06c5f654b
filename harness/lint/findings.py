"""Findings and the driver that runs every check over a project's contracts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.contracts import (
    ContractLoadError,
    DanglingReferenceError,
    Document,
    Resolver,
    iter_contract_files,
    join,
    lookup,
    split,
)
from harness.project import Project


@dataclass(frozen=True, order=True)
class Finding:
    """One problem in one contract: where it is and why it is wrong."""

    path: str
    line: int
    pointer: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: #{self.pointer}: {self.reason}"


@dataclass
class LintReport:
    """What `lint_project` looked at and what it found."""

    documents: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


class Reporter:
    """Turns (document, pointer, reason) into findings with the project-relative path and line."""

    def __init__(self, project: Project, resolver: Resolver) -> None:
        self.project = project
        self.resolver = resolver
        self.findings: list[Finding] = []

    def add(self, path: Path, pointer: str, reason: str) -> None:
        try:
            line = self.resolver.document(path).line_of(pointer) or 0
        except ContractLoadError:
            line = 0
        self.findings.append(Finding(self.project.relative(path), line, pointer, reason))


def walk(value: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """Every (pointer, value) pair in a document, depth first, the root included."""
    yield pointer, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from walk(child, join(pointer, str(key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from walk(child, join(pointer, index))


def check_references(document: Document, resolver: Resolver, report: Reporter) -> bool:
    """Report every `$ref` in `document` that leads nowhere; true when all resolve."""
    ok = True
    for pointer, value in walk(document.data):
        if isinstance(value, dict) and isinstance(value.get("$ref"), str):
            try:
                resolver.resolve_ref(document.path, value["$ref"])
            except DanglingReferenceError as error:
                report.add(document.path, join(pointer, "$ref"), f"dangling {error}")
                ok = False
    return ok


# Keys whose values are data, where `null` is a value like any other: examples, defaults,
# constants and enumerations (specification extensions, `x-...`, are skipped too).
DATA_KEYS = frozenset({"example", "examples", "default", "const", "enum"})


def misplaced_nulls(value: Any, pointer: str = "") -> Iterator[str]:
    """The pointer of every `null` outside data: a key left empty, most often because what
    belongs under it (a `$ref`, a block) is indented too little and became its sibling."""
    if isinstance(value, dict):
        for key, child in value.items():
            key = str(key)
            if key in DATA_KEYS or key.startswith("x-"):
                continue
            if child is None:
                yield join(pointer, key)
            else:
                yield from misplaced_nulls(child, join(pointer, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            if child is None:
                yield join(pointer, index)
            else:
                yield from misplaced_nulls(child, join(pointer, index))


def check_nulls(document: Document, report: Reporter) -> None:
    for pointer in misplaced_nulls(document.data):
        *parents, last = split(pointer)
        if isinstance(lookup(document.data, join("", *parents)), list):
            what = f"item {last} of {parents[-1]!r}" if parents else f"item {last}"
            hint = "is the `$ref` or block meant to be there indented too little?"
        else:
            what = repr(last)
            hint = "is the `$ref` or block meant to be under it indented too little?"
        report.add(document.path, pointer, f"{what} is null where a value belongs: {hint}")


def guarded(
    report: Reporter, document: Document, what: str, check: Callable[..., None], *args: Any
) -> None:
    """`check(*args)`; if the document is too malformed for it, that is a finding, not a crash."""
    try:
        check(*args)
    except Exception as error:
        report.add(
            document.path,
            "",
            f"{what} stopped on a malformed part of the document ({type(error).__name__}: "
            f"{error}); fix the other findings first",
        )


def kind_of(document: Document) -> str | None:
    if isinstance(document.data, dict):
        if "openapi" in document.data:
            return "openapi"
        if "asyncapi" in document.data:
            return "asyncapi"
    return None


# One check of a document: what it is called (for a finding if it cannot finish), the
# function and its arguments.
Step = tuple[str, Callable[..., None], tuple[Any, ...]]


def lint_project(project: Project, files: Iterable[Path] | None = None) -> LintReport:
    """Run every check over the project's contract files (or the given ones)."""
    # Imported here: each pulls in a validator that is slow to import and only lint needs.
    from harness.lint import examples, rules, specs

    resolver = Resolver()
    reporter = Reporter(project, resolver)
    report = LintReport()
    documents: list[tuple[Document, str | None, bool]] = []
    for path in files if files is not None else iter_contract_files(project.contracts_dir):
        report.documents.append(project.relative(path))
        try:
            document = resolver.document(path)
        except ContractLoadError as error:
            reporter.findings.append(
                Finding(project.relative(path), error.line or 0, "", error.reason)
            )
            continue
        resolvable = check_references(document, resolver, reporter)
        documents.append((document, kind_of(document), resolvable))

    for document, kind, resolvable in documents:
        steps: list[Step]
        if kind == "openapi":
            steps = [
                ("the OpenAPI check", specs.check_openapi, (document, resolvable, reporter)),
                ("the project's rules", rules.check_openapi_rules, (document, resolver, reporter)),
            ]
        elif kind == "asyncapi":
            steps = [
                ("the AsyncAPI check", specs.check_asyncapi, (document, reporter)),
                ("the project's rules", rules.check_messages, (document, resolver, reporter)),
            ]
        else:
            continue
        if resolvable:
            examples_check = (document, kind, resolver, reporter)
            steps.append(("checking the examples", examples.check_examples, examples_check))
        check_nulls(document, reporter)
        for what, check, arguments in steps:
            guarded(reporter, document, what, check, *arguments)
    asyncapi = [document for document, kind, _ in documents if kind == "asyncapi"]
    if asyncapi:
        guarded(
            reporter,
            asyncapi[0],
            "matching senders and receivers",
            rules.check_senders_and_receivers,
            asyncapi,
            resolver,
            reporter,
        )
    report.findings = sorted(set(reporter.findings))
    return report
