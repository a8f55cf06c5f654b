"""What `accord lint` reports: a `Finding` per problem (file, line, JSON pointer, reason), the
`LintReport` of a run, and the `Reporter` every check writes its findings to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.authoring.contracts import ContractLoadError, Resolver
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
