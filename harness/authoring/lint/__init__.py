"""`accord lint`: the contracts are valid, resolvable and follow the project's rules.

Checks, for every file under `contracts/`:

- OpenAPI documents against the OpenAPI specification (openapi-spec-validator);
- AsyncAPI documents against the official AsyncAPI 3.0 JSON Schema;
- every `$ref` resolves to a file and a pointer that exist;
- every example validates against the schema it illustrates;
- the project's own rules (`harness.authoring.lint.conventions`).

Each problem is a `Finding` naming the file, the JSON pointer and the reason.
"""

from __future__ import annotations

from harness.authoring.lint.report import Finding, LintReport
from harness.authoring.lint.run import lint_project

__all__ = ["Finding", "LintReport", "lint_project"]
