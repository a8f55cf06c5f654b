"""Accord's harness: the `accord` command line, contract tooling and test support."""
