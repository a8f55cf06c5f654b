"""Bus operations shared by the stack, replay and the command line: `accord provision`
(`provision`) and `accord dlq` (`dlq`)."""
