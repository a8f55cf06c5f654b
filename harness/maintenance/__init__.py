"""Maintenance of a deployment's stores: `accord keys` (`keys`) and `accord prune` (`prune`)."""
