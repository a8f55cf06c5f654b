"""The `accord` command line, a thin layer over the harness's packages: `main` assembles the
application from one module per task (`authoring`, `bus`, `stack`, `mock`, `evolution`,
`conformance`, `replay`, `maintenance`), and `common` holds what they share. Nothing else in
the harness imports this package."""

from harness.cli.main import app

__all__ = ["app"]
