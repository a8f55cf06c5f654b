"""Alembic environment of the user service's database.

See `services.kit.migrations.run_environment`; from the command line it reads
`USER_DATABASE_URL`.
"""

from services.kit.migrations import run_environment
from services.user.storage import metadata

run_environment(metadata, "USER_DATABASE_URL", "sqlite:///.accord/user.db")
