"""Contract authoring: loading the contracts (`contracts`), `accord lint` (`lint/`) and
`accord generate` (`generate`)."""
