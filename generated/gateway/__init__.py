"""Models generated from `contracts/` by `accord generate`. Never edit by hand."""
