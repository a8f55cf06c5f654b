"""The Alembic history of the auth database (run by `services.kit.migrations.upgrade`)."""
