"""The revisions of the auth database, oldest first."""
