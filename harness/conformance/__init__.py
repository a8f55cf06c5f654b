"""Conformance: `accord verify` (`verify`) and its pytest plugin (`plugin`), and the pytest plugin
of the real parts the test suite runs on (`fixtures`)."""
