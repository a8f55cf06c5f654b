"""The auth service's use cases, one handler per command. They see only the ports, so the same
code runs against SQLite, PostgreSQL or fakes.

Passwords are hashed outside any transaction (a hash takes tens of milliseconds and must not
hold a database connection); every change and the events it causes commit together.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from services.auth.domain import (
    REFRESH_TOKEN_PREFIX,
    RESET_TOKEN_PREFIX,
    USER,
    VERIFICATION_TOKEN_PREFIX,
    Account,
    AccountDeactivatedError,
    AccountStatus,
    AccountUnusableError,
    ConfirmEmailVerification,
    ConfirmPasswordReset,
    DeactivateUser,
    EmailAlreadyVerifiedError,
    EmailTakenError,
    EmailVerificationRequested,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    InvalidSingleUseTokenError,
    LogIn,
    LogOut,
    PasswordResetRequested,
    RateLimitedError,
    RefreshTokenRecord,
    RefreshTokens,
    RegisterUser,
    RequestEmailVerification,
    RequestPasswordReset,
    SessionTokens,
    SetUserRoles,
    SingleUseTokenRecord,
    TokenPurpose,
    UserCreated,
    UserDeactivated,
    UserNotFoundError,
    email_key,
    new_secret,
    token_hash,
)
from services.auth.ports import (
    AccessTokenIssuer,
    PasswordHasher,
    RateLimiter,
    UnitOfWork,
    UnitOfWorkFactory,
)

# The rate limits the handlers apply, by name (the limiter adapter knows their sizes).
LOGIN_FAILURES_PER_ACCOUNT: Final = "login-failures-per-account"
LOGIN_FAILURES_PER_ADDRESS: Final = "login-failures-per-address"
REGISTRATIONS_PER_ADDRESS: Final = "registrations-per-address"
RESET_REQUESTS_PER_EMAIL: Final = "reset-requests-per-email"
RESET_REQUESTS_PER_ADDRESS: Final = "reset-requests-per-address"
VERIFICATION_REQUESTS_PER_ACCOUNT: Final = "verification-requests-per-account"


@dataclass(frozen=True)
class TokenLifetimes:
    """How long the tokens the handlers hand out stay usable."""

    refresh: timedelta
    verification: timedelta
    reset: timedelta


@dataclass(frozen=True)
class Dependencies:
    """Everything a handler may use."""

    unit_of_work: UnitOfWorkFactory
    passwords: PasswordHasher
    access_tokens: AccessTokenIssuer
    limiter: RateLimiter
    clock: Callable[[], datetime]
    lifetimes: TokenLifetimes


# --- sessions -----------------------------------------------------------------------------


async def register_user(command: RegisterUser, deps: Dependencies) -> SessionTokens:
    """Create an account with the `user` role and log it in; publish `user.created`."""
    _consume(deps, [(REGISTRATIONS_PER_ADDRESS, command.client)])
    async with deps.unit_of_work() as uow:
        taken = await uow.accounts.by_email(email_key(command.email)) is not None
    if taken:  # checked first only to spare the hash; the unique index decides
        raise EmailTakenError
    password_hash = await deps.passwords.hash(command.password)
    now = deps.clock()
    account = Account(
        id=uuid.uuid4(),
        email=command.email,
        password_hash=password_hash,
        email_verified=False,
        roles=frozenset({USER}),
        status=AccountStatus.ACTIVE,
        created_at=now,
    )
    async with deps.unit_of_work() as uow:
        await uow.accounts.add(account)
        await uow.record(UserCreated(account.id, account.email))
        tokens = await _start_session(uow, deps, account, now)
        await uow.commit()
    return tokens


async def log_in(command: LogIn, deps: Dependencies) -> SessionTokens:
    """Check the password and start a new refresh-token family.

    Failures count against the account and the client address; past either limit every
    attempt is refused with 429, right password or not, until the window has moved on.
    """
    key = email_key(command.email)
    limits = [(LOGIN_FAILURES_PER_ACCOUNT, key), (LOGIN_FAILURES_PER_ADDRESS, command.client)]
    _check(deps, limits)
    async with deps.unit_of_work() as uow:
        account = await uow.accounts.by_email(key)
    if account is None:
        await deps.passwords.verify_nothing(command.password)
        _hit(deps, limits)
        raise InvalidCredentialsError
    if not await deps.passwords.verify(account.password_hash, command.password):
        _hit(deps, limits)
        raise InvalidCredentialsError
    if not account.active:  # said only to someone who knows the password
        raise AccountDeactivatedError
    deps.limiter.reset(LOGIN_FAILURES_PER_ACCOUNT, key)
    rehashed = None
    if deps.passwords.needs_rehash(account.password_hash):
        rehashed = await deps.passwords.hash(command.password)
    now = deps.clock()
    async with deps.unit_of_work() as uow:
        current = await uow.accounts.get(account.id)
        if current is None or not current.active:
            raise AccountDeactivatedError
        if rehashed is not None:
            await uow.accounts.replace_password_hash(account.id, account.password_hash, rehashed)
        tokens = await _start_session(uow, deps, current, now)
        await uow.commit()
    return tokens


async def refresh_tokens(command: RefreshTokens, deps: Dependencies) -> SessionTokens:
    """Spend the refresh token for a new pair in its family; a spent one revokes the family."""
    now = deps.clock()
    async with deps.unit_of_work() as uow:
        record = await uow.refresh_tokens.by_hash(token_hash(command.refresh_token))
        if record is None or record.revoked_at is not None:
            raise InvalidRefreshTokenError
        if record.spent_at is not None:
            # Someone holds a copy of a token already used: thief or victim, the family ends.
            await _revoke_family(uow, record.family_id, now)
        if record.expires_at <= now:
            raise InvalidRefreshTokenError
        account = await uow.accounts.get(record.user_id)
        if account is None or not account.active:
            raise InvalidRefreshTokenError
        if not await uow.refresh_tokens.spend(record.id, now):
            await _revoke_family(uow, record.family_id, now)  # spent concurrently: a reuse
        tokens = await _start_session(uow, deps, account, now, family_id=record.family_id)
        await uow.commit()
    return tokens


async def log_out(command: LogOut, deps: Dependencies) -> None:
    """Revoke the token's family; say nothing about whether there was one."""
    now = deps.clock()
    async with deps.unit_of_work() as uow:
        record = await uow.refresh_tokens.by_hash(token_hash(command.refresh_token))
        if record is not None:
            await uow.refresh_tokens.revoke_family(record.family_id, now)
            await uow.commit()


async def _revoke_family(uow: UnitOfWork, family_id: uuid.UUID, now: datetime) -> None:
    await uow.refresh_tokens.revoke_family(family_id, now)
    await uow.commit()
    raise InvalidRefreshTokenError


async def _start_session(
    uow: UnitOfWork,
    deps: Dependencies,
    account: Account,
    now: datetime,
    family_id: uuid.UUID | None = None,
) -> SessionTokens:
    refresh = new_secret(REFRESH_TOKEN_PREFIX)
    await uow.refresh_tokens.add(
        RefreshTokenRecord(
            id=uuid.uuid4(),
            token_hash=token_hash(refresh),
            family_id=family_id or uuid.uuid4(),
            user_id=account.id,
            issued_at=now,
            expires_at=now + deps.lifetimes.refresh,
            spent_at=None,
            revoked_at=None,
        )
    )
    access = deps.access_tokens.issue(str(account.id), account.sorted_roles())
    return SessionTokens(access.token, access.expires_in, refresh, account.id)


# --- the caller's account -----------------------------------------------------------------


async def get_account(user_id: uuid.UUID, deps: Dependencies) -> Account:
    """The account an access token names."""
    async with deps.unit_of_work() as uow:
        account = await uow.accounts.get(user_id)
    if account is None:
        raise AccountUnusableError("The account of this access token does not exist.")
    return account


async def request_email_verification(command: RequestEmailVerification, deps: Dependencies) -> None:
    """Issue a verification token and publish `user.email.verification.requested`."""
    async with deps.unit_of_work() as uow:
        account = await uow.accounts.get(command.user_id)
        if account is None or not account.active:
            raise AccountUnusableError
        if account.email_verified:
            raise EmailAlreadyVerifiedError
        _consume(deps, [(VERIFICATION_REQUESTS_PER_ACCOUNT, str(account.id))])
        now = deps.clock()
        token = new_secret(VERIFICATION_TOKEN_PREFIX)
        expires_at = now + deps.lifetimes.verification
        await uow.single_use_tokens.add(
            SingleUseTokenRecord(
                token_hash(token), TokenPurpose.EMAIL_VERIFICATION, account.id, now, expires_at
            )
        )
        await uow.record(EmailVerificationRequested(account.id, account.email, token, expires_at))
        await uow.commit()


async def confirm_email_verification(command: ConfirmEmailVerification, deps: Dependencies) -> None:
    """Spend a verification token and mark its account's email verified."""
    now = deps.clock()
    async with deps.unit_of_work() as uow:
        user_id = await uow.single_use_tokens.spend(
            token_hash(command.token), TokenPurpose.EMAIL_VERIFICATION, now
        )
        if user_id is None:
            raise InvalidSingleUseTokenError
        account = await uow.accounts.get(user_id)
        if account is None or not account.active:
            raise InvalidSingleUseTokenError
        await uow.accounts.mark_email_verified(user_id)
        await uow.commit()


# --- password reset -----------------------------------------------------------------------


async def request_password_reset(command: RequestPasswordReset, deps: Dependencies) -> None:
    """Issue a reset token if an active account has this email; the caller is told nothing."""
    key = email_key(command.email)
    _consume(deps, [(RESET_REQUESTS_PER_ADDRESS, command.client), (RESET_REQUESTS_PER_EMAIL, key)])
    async with deps.unit_of_work() as uow:
        account = await uow.accounts.by_email(key)
        if account is None or not account.active:
            return
        now = deps.clock()
        token = new_secret(RESET_TOKEN_PREFIX)
        expires_at = now + deps.lifetimes.reset
        await uow.single_use_tokens.add(
            SingleUseTokenRecord(
                token_hash(token), TokenPurpose.PASSWORD_RESET, account.id, now, expires_at
            )
        )
        await uow.record(PasswordResetRequested(account.id, account.email, token, expires_at))
        await uow.commit()


async def confirm_password_reset(command: ConfirmPasswordReset, deps: Dependencies) -> None:
    """Set the new password, spend the token, and revoke every refresh token of the user."""
    hashed = token_hash(command.token)
    purpose = TokenPurpose.PASSWORD_RESET
    async with deps.unit_of_work() as uow:
        usable = await uow.single_use_tokens.usable(hashed, purpose, deps.clock())
    if usable is None:  # refused before hashing, so random tokens cost no Argon2 time
        raise InvalidSingleUseTokenError
    password_hash = await deps.passwords.hash(command.new_password)
    now = deps.clock()
    async with deps.unit_of_work() as uow:
        user_id = await uow.single_use_tokens.spend(hashed, purpose, now)
        if user_id is None:
            raise InvalidSingleUseTokenError
        account = await uow.accounts.get(user_id)
        if account is None or not account.active:
            raise InvalidSingleUseTokenError
        await uow.accounts.set_password_hash(user_id, password_hash)
        await uow.refresh_tokens.revoke_all(user_id, now)
        await uow.single_use_tokens.discard_all(user_id, purpose, now)
        await uow.commit()


# --- administration -----------------------------------------------------------------------


async def deactivate_user(command: DeactivateUser, deps: Dependencies) -> None:
    """Deactivate the account, revoke its tokens, publish `user.deactivated` (once)."""
    now = deps.clock()
    async with deps.unit_of_work() as uow:
        account = await uow.accounts.get(command.user_id)
        if account is None:
            raise UserNotFoundError(command.user_id)
        if not await uow.accounts.deactivate(account.id, now):
            return  # already deactivated: nothing changes, nothing is published
        await uow.refresh_tokens.revoke_all(account.id, now)
        for purpose in TokenPurpose:
            await uow.single_use_tokens.discard_all(account.id, purpose, now)
        await uow.record(UserDeactivated(account.id, account.email))
        await uow.commit()


async def get_user_roles(user_id: uuid.UUID, deps: Dependencies) -> frozenset[str]:
    """The user's current roles (a deactivated user's too)."""
    async with deps.unit_of_work() as uow:
        account = await uow.accounts.get(user_id)
    if account is None:
        raise UserNotFoundError(user_id)
    return account.roles


async def set_user_roles(command: SetUserRoles, deps: Dependencies) -> frozenset[str]:
    """Replace the user's roles; tokens already issued keep theirs until they expire."""
    async with deps.unit_of_work() as uow:
        if not await uow.accounts.set_roles(command.user_id, command.roles):
            raise UserNotFoundError(command.user_id)
        await uow.commit()
    return command.roles


# --- rate limits --------------------------------------------------------------------------

Limits = Sequence[tuple[str, str]]


def _check(deps: Dependencies, limits: Limits) -> None:
    waits = [deps.limiter.retry_after(limit, subject) for limit, subject in limits]
    blocked = [wait for wait in waits if wait is not None]
    if blocked:
        raise RateLimitedError(max(blocked))


def _hit(deps: Dependencies, limits: Limits) -> None:
    for limit, subject in limits:
        deps.limiter.hit(limit, subject)


def _consume(deps: Dependencies, limits: Limits) -> None:
    """Count an attempt that every request makes, refusing it past a limit."""
    _check(deps, limits)
    _hit(deps, limits)
