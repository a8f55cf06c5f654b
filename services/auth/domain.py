"""The auth service's domain: accounts, the tokens it hands out, what can go wrong, and the
events it announces. Plain Python: no framework, no database, no generated models."""

from __future__ import annotations

import hashlib
import secrets
import string
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

USER: Final = "user"
ADMIN: Final = "admin"
ROLES: Final = frozenset({USER, ADMIN})


class AccountStatus(StrEnum):
    ACTIVE = "active"
    DEACTIVATED = "deactivated"


class TokenPurpose(StrEnum):
    """What a single-use token from an email link is for."""

    EMAIL_VERIFICATION = "email-verification"
    PASSWORD_RESET = "password-reset"  # noqa: S105 (a purpose, not a secret)


_ASCII_LOWER: Final = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

# The longest email key an account can have (the `email_key` column). An address is at most
# 254 characters, but NFC normalisation lengthens a few characters (U+FB2C is three), so its
# key can be longer; such an address cannot be registered (`EmailTooLongError`).
EMAIL_KEY_MAX_LENGTH: Final = 254


def email_key(email: str) -> str:
    """The form in which emails are compared, and accounts are unique: NFC-normalised, the
    domain in lower case, and only the ASCII letters of the local part in lower case.

    `Ada@Example.COM` is `ada@example.com`, but `straße@x` is not `strasse@x`: full Unicode
    case folding would merge addresses that mail servers deliver to different people, so one
    person could register an account that answers to another's reset emails. The rule is
    idempotent (`email_key(email_key(e)) == email_key(e)`).
    """
    normalised = unicodedata.normalize("NFC", email.strip())
    local, at, domain = normalised.rpartition("@")
    if not at:  # not an address; still compared by the same rule
        return normalised.translate(_ASCII_LOWER)
    domain = unicodedata.normalize("NFC", domain.lower())
    return f"{local.translate(_ASCII_LOWER)}@{domain}"


@dataclass(frozen=True)
class Account:
    """A registered user: credentials, roles and whether they may log in."""

    id: uuid.UUID
    email: str
    password_hash: str
    email_verified: bool
    roles: frozenset[str]
    status: AccountStatus
    created_at: datetime

    @property
    def active(self) -> bool:
        return self.status is AccountStatus.ACTIVE

    def sorted_roles(self) -> list[str]:
        return sorted(self.roles)


@dataclass(frozen=True)
class RefreshTokenRecord:
    """A refresh token as stored: only its hash, its family (one per login) and its state."""

    id: uuid.UUID
    token_hash: str
    family_id: uuid.UUID
    user_id: uuid.UUID
    issued_at: datetime
    expires_at: datetime
    spent_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class SingleUseTokenRecord:
    """A verification or reset token as stored: only its hash, whose it is, until when."""

    token_hash: str
    purpose: TokenPurpose
    user_id: uuid.UUID
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class SessionTokens:
    """What a login, a registration or a refresh hands back."""

    access_token: str
    expires_in: int
    refresh_token: str
    user_id: uuid.UUID


# --- secrets ------------------------------------------------------------------------------

# Prefixes, not secrets.
REFRESH_TOKEN_PREFIX: Final = "rf_"  # noqa: S105
VERIFICATION_TOKEN_PREFIX: Final = "vt_"  # noqa: S105
RESET_TOKEN_PREFIX: Final = "rt_"  # noqa: S105


def new_secret(prefix: str) -> str:
    """A random opaque token (256 bits), prefixed so a leaked one says what it is."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """How tokens are stored. They are 256-bit random values, so a plain SHA-256 is enough:
    there is nothing to brute-force, unlike a password."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# --- errors -------------------------------------------------------------------------------


class AuthError(Exception):
    """A request the domain refuses; each kind maps to one problem type of the contract."""

    detail: str = "The request was refused."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.detail)
        if detail is not None:
            self.detail = detail


class EmailTakenError(AuthError):
    detail = "An account with this email already exists."


class EmailTooLongError(AuthError):
    detail = "The email is longer than 254 characters once normalised for comparison."


class InvalidCredentialsError(AuthError):
    detail = "The email or password is wrong."


class AccountDeactivatedError(AuthError):
    detail = "This account has been deactivated."


class InvalidRefreshTokenError(AuthError):
    detail = "The refresh token is unknown, expired, revoked or already used."


class InvalidSingleUseTokenError(AuthError):
    detail = "The token is unknown, expired or has already been used."


class EmailAlreadyVerifiedError(AuthError):
    detail = "This account's email address is already verified."


class UserNotFoundError(AuthError):
    def __init__(self, user_id: uuid.UUID, *, active: bool = False) -> None:
        super().__init__(f"No {'active ' if active else ''}user has the id {user_id}.")
        self.user_id = user_id


class NotPermittedError(AuthError):
    """The caller's account, as it is now, may not do this."""

    detail = "This operation requires the admin role."


class AccountUnusableError(AuthError):
    """The access token is valid but names an account that is gone or deactivated."""

    detail = "The account of this access token is deactivated."


class UnknownEmailError(AuthError):
    """Raised only to operators (`accord roles grant`), never to HTTP clients."""


class RateLimitedError(AuthError):
    def __init__(self, retry_after: float) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(f"Too many attempts; try again in {seconds} seconds.")
        self.retry_after = seconds


# --- events (past tense; translated into the contract's payloads by the outbox adapter) ---


@dataclass(frozen=True)
class UserCreated:
    user_id: uuid.UUID
    email: str


@dataclass(frozen=True)
class EmailVerificationRequested:
    user_id: uuid.UUID
    email: str
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class PasswordResetRequested:
    user_id: uuid.UUID
    email: str
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class UserDeactivated:
    user_id: uuid.UUID
    email: str


DomainEvent = UserCreated | EmailVerificationRequested | PasswordResetRequested | UserDeactivated


# --- commands (imperative; what the HTTP layer asks the handlers to do) -------------------


@dataclass(frozen=True)
class RegisterUser:
    email: str
    password: str
    client: str


@dataclass(frozen=True)
class LogIn:
    email: str
    password: str
    client: str


@dataclass(frozen=True)
class RefreshTokens:
    refresh_token: str


@dataclass(frozen=True)
class LogOut:
    refresh_token: str


@dataclass(frozen=True)
class RequestEmailVerification:
    user_id: uuid.UUID


@dataclass(frozen=True)
class ConfirmEmailVerification:
    token: str


@dataclass(frozen=True)
class RequestPasswordReset:
    email: str
    client: str


@dataclass(frozen=True)
class ConfirmPasswordReset:
    token: str
    new_password: str


@dataclass(frozen=True)
class CheckPasswordReset:
    token: str


@dataclass(frozen=True)
class DeactivateUser:
    user_id: uuid.UUID


@dataclass(frozen=True)
class SetUserRoles:
    user_id: uuid.UUID
    roles: frozenset[str]
