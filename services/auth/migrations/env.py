"""Alembic environment of the auth service's database.

See `services.kit.migrations.run_environment`; from the command line it reads
`AUTH_DATABASE_URL`.
"""

from services.auth.storage import metadata
from services.kit.migrations import run_environment

run_environment(metadata, "AUTH_DATABASE_URL", "sqlite:///.accord/auth.db")
