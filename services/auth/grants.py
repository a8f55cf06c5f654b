"""Granting roles from the command line (`accord roles grant EMAIL ROLE`): how the first admin
is made, since only an admin can grant roles over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

from services.auth.domain import ROLES, UnknownEmailError
from services.auth.storage import SqlAuthStore


async def grant_role(database_url: str, email: str, role: str) -> None:
    """Add `role` to the account with `email` (compared as `email_key` says); the database is
    migrated first, so this works before the service has ever started."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; the roles are {', '.join(sorted(ROLES))}")
    store = SqlAuthStore(database_url, clock=lambda: datetime.now(UTC))
    try:
        await store.migrate()
        async with store.unit_of_work() as uow:
            account = await uow.accounts.by_email(email)
            if account is None:
                raise UnknownEmailError(f"no account has the email {email!r}")
            await uow.accounts.set_roles(account.id, account.roles | {role})
            await uow.commit()
    finally:
        await store.dispose()
