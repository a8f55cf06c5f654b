"""The driver of `accord lint`: every check over a project's contract files, each guarded so
that a malformed document is a finding rather than a crash."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from harness.authoring.contracts import ContractLoadError, Document, Resolver, iter_contract_files
from harness.authoring.lint.report import Finding, LintReport, Reporter
from harness.authoring.lint.structure import check_nulls, check_references
from harness.project import Project


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
    import harness.authoring.lint.conventions as conventions
    import harness.authoring.lint.examples as examples
    import harness.authoring.lint.specs as specs

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
                (
                    "the project's rules",
                    conventions.check_openapi_rules,
                    (document, resolver, reporter),
                ),
            ]
        elif kind == "asyncapi":
            steps = [
                ("the AsyncAPI check", specs.check_asyncapi, (document, reporter)),
                ("the project's rules", conventions.check_messages, (document, resolver, reporter)),
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
            conventions.check_senders_and_receivers,
            asyncapi,
            resolver,
            reporter,
        )
    report.findings = sorted(set(reporter.findings))
    return report
