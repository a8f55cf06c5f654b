"""Recompute `accounts.email_key` with the exact local-part rule.

The key was `email.strip().casefold()`, which made `straße@x` and `strasse@x` one account.
It is now the rule of `services.auth.domain.email_key`: NFC-normalised, the domain in lower
case, and only the ASCII letters of the local part in lower case.

The new rule is finer than the old one for every address the service stores (the API's
`EmailStr` has already NFC-normalised them and lower-cased their domain): two addresses with
the same new key had the same old key, so recomputing cannot create a collision, and the
unique index holds at every step. Should a row written outside the API break that, the
upgrade stops with the addresses named and changes nothing. The downgrade goes back to case
folding, which can merge accounts the new rule keeps apart; it refuses when it would.

The rules are copied here, not imported, so this revision keeps meaning what it meant.

Revision ID: r0002
Revises: r0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r0002"
down_revision: str | None = "r0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

accounts = sa.table(
    "accounts",
    sa.column("id", sa.Uuid()),
    sa.column("email", sa.String(254)),
    sa.column("email_key", sa.String(254)),
)


def exact_local_part_key(email: str) -> str:
    """The rule from this revision on (as `services.auth.domain.email_key` had it here)."""
    normalised = unicodedata.normalize("NFC", email.strip())
    local, at, domain = normalised.rpartition("@")
    if not at:
        return normalised.translate(_ASCII_LOWER)
    domain = unicodedata.normalize("NFC", domain.lower())
    return f"{local.translate(_ASCII_LOWER)}@{domain}"


def casefolded_key(email: str) -> str:
    """The rule of r0001."""
    return email.strip().casefold()


def _recompute(rule: Callable[[str], str]) -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.select(accounts.c.id, accounts.c.email, accounts.c.email_key))
    keys = {row.id: (row.email, row.email_key, rule(row.email)) for row in rows}
    counts = Counter(new for _, _, new in keys.values())
    clashes = sorted(email for email, _, new in keys.values() if counts[new] > 1)
    if clashes:
        raise RuntimeError(
            f"recomputing accounts.email_key would give {len(clashes)} accounts a key another "
            f"account has: {', '.join(clashes)}; merge or rename them first"
        )
    changed = [{"row_id": id_, "new_key": new} for id_, (_, old, new) in keys.items() if old != new]
    if changed:
        connection.execute(
            sa.update(accounts)
            .where(accounts.c.id == sa.bindparam("row_id"))
            .values(email_key=sa.bindparam("new_key")),
            changed,
        )


def upgrade() -> None:
    _recompute(exact_local_part_key)


def downgrade() -> None:
    _recompute(casefolded_key)
