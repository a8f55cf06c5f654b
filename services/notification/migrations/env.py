"""Alembic environment of the notification service's database.

See `services.kit.migrations.run_environment`; from the command line it reads
`NOTIFICATION_DATABASE_URL`.
"""

from services.kit.migrations import run_environment
from services.notification.storage import metadata

run_environment(metadata, "NOTIFICATION_DATABASE_URL", "sqlite:///.accord/notification.db")
