"""schemathesis over each service's OpenAPI contract, every phase, as each kind of caller."""
