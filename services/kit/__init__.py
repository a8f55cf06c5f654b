"""What every Accord service shares: events, the bus ports and adapters, idempotent consumers,
tokens."""
