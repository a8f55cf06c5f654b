"""The auth service's use cases, one handler per command. They see only the ports, so the same
code runs against SQLite, PostgreSQL or fakes.

Passwords are hashed outside any transaction (a hash takes tens of milliseconds and must not
hold a database connection); every change and the events it causes commit together.

Whatever the answer reveals, its timing does not: a login for an unknown email hashes like a
wrong password, a registration hashes before the unique index says whether the email is
taken, and a reset request is counted and answered before its work is done in the background.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from services.auth.domain import (
    ADMIN,
    EMAIL_KEY_MAX_LENGTH,
    REFRESH_TOKEN_PREFIX,
    RESET_TOKEN_PREFIX,
    USER,
    VERIFICATION_TOKEN_PREFIX,
    Account,
    AccountDeactivatedError,
    AccountStatus,
    AccountUnusableError,
    CheckPasswordReset,
    ConfirmEmailVerification,
    ConfirmPasswordReset,
    DeactivateUser,
    EmailAlreadyVerifiedError,
    EmailTooLongError,
    EmailVerificationRequested,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    InvalidSingleUseTokenError,
    LogIn,
    LogOut,
    NotPermittedError,
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
    BackgroundWork,
    InFlightLimiter,
    PasswordHasher,
    RateLimiter,
    UnitOfWork,
    UnitOfWorkFactory,
)

# The rate limits the handlers apply, by name (the limiter adapter knows their sizes).
LOGIN_FAILURES_PER_ACCOUNT_ADDRESS: Final = "login-failures-per-account-address"
LOGIN_FAILURES_PER_ACCOUNT: Final = "login-failures-per-account"
LOGIN_FAILURES_PER_ADDRESS: Final = "login-failures-per-address"
REGISTRATIONS_PER_ADDRESS: Final = "registrations-per-address"
RESET_REQUESTS_PER_EMAIL: Final = "reset-requests-per-email"
RESET_REQUESTS_PER_ADDRESS: Final = "reset-requests-per-address"
VERIFICATION_REQUESTS_PER_ACCOUNT: Final = "verification-requests-per-account"
# The caps on password hashes in progress at once, by name.
HASHES_IN_FLIGHT_PER_ACCOUNT: Final = "hashes-in-flight-per-account"
HASHES_IN_FLIGHT_PER_ADDRESS: Final = "hashes-in-flight-per-address"


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
    in_flight: InFlightLimiter
    background: BackgroundWork
    clock: Callable[[], datetime]
    lifetimes: TokenLifetimes


# --- sessions -----------------------------------------------------------------------------


async def register_user(command: RegisterUser, deps: Dependencies) -> SessionTokens:
    """Create an account with the `user` role and log it in; publish `user.created`.

    The password is hashed whether or not the email is taken (the unique index decides), so
    that a taken email is not answered faster than a free one."""
    if len(email_key(command.email)) > EMAIL_KEY_MAX_LENGTH:
        raise EmailTooLongError()
    await deps.limiter.take([(REGISTRATIONS_PER_ADDRESS, command.client)])
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

    An attempt counts against (account, address), against the address and, with a much higher
    limit, against the account, before the password is hashed, and is refunded if it
    succeeds; past any limit every attempt is refused with 429 without hashing, right password
    or not, until the window has moved on. Then one account and one address may have only a
    few hashes running at once: more is answered 429 at once, and refunded. The count comes
    first, so that requests refused by it never hold a hashing slot.
    """
    key = email_key(command.email)
    pair = f"{key} {command.client}"
    counted = [
        (LOGIN_FAILURES_PER_ACCOUNT_ADDRESS, pair),
        (LOGIN_FAILURES_PER_ADDRESS, command.client),
        (LOGIN_FAILURES_PER_ACCOUNT, key),
    ]
    slots = [(HASHES_IN_FLIGHT_PER_ACCOUNT, key), (HASHES_IN_FLIGHT_PER_ADDRESS, command.client)]
    receipts = await deps.limiter.take(counted)
    try:
        with deps.in_flight.hold(slots):
            account = await _check_password(key, command.password, deps)
    except RateLimitedError:  # refused a hashing slot: never hashed, so it does not count
        await deps.limiter.refund(receipts)
        raise
    # The right password: this attempt does not count, and the owner's earlier failures from
    # this address are forgiven (a guesser's never are: they never get here).
    await deps.limiter.refund(receipts)
    await deps.limiter.reset(LOGIN_FAILURES_PER_ACCOUNT_ADDRESS, pair)
    if not account.active:  # said only to someone who knows the password
        raise AccountDeactivatedError
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


async def _check_password(key: str, password: str, deps: Dependencies) -> Account:
    """The account with this email key if the password is its own; an unknown email costs
    the same hash as a wrong password."""
    async with deps.unit_of_work() as uow:
        account = await uow.accounts.by_email(key)
    if account is None:
        await deps.passwords.verify_nothing(password)
        raise InvalidCredentialsError
    if not await deps.passwords.verify(account.password_hash, password):
        raise InvalidCredentialsError
    return account


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


async def get_user_account(user_id: uuid.UUID, deps: Dependencies) -> Account:
    """Any user's account, deactivated ones included (an admin sees them as they are)."""
    async with deps.unit_of_work() as uow:
        account = await uow.accounts.get(user_id)
    if account is None:
        raise UserNotFoundError(user_id)
    return account


async def request_email_verification(command: RequestEmailVerification, deps: Dependencies) -> None:
    """Issue a verification token and publish `user.email.verification.requested`."""
    async with deps.unit_of_work() as uow:
        account = await uow.accounts.get(command.user_id)
    if account is None or not account.active:
        raise AccountUnusableError
    if account.email_verified:
        raise EmailAlreadyVerifiedError
    await deps.limiter.take([(VERIFICATION_REQUESTS_PER_ACCOUNT, str(account.id))])
    async with deps.unit_of_work() as uow:
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
    """Count the request, then issue a reset token in the background if an active account has
    this email. The caller is told nothing, and is answered before the look-up, so the answer
    takes as long for a known email as for an unknown one."""
    key = email_key(command.email)
    await deps.limiter.take(
        [(RESET_REQUESTS_PER_ADDRESS, command.client), (RESET_REQUESTS_PER_EMAIL, key)]
    )
    deps.background(_issue_password_reset(key, deps), name="password-reset")


async def _issue_password_reset(key: str, deps: Dependencies) -> None:
    async with deps.unit_of_work() as uow:
        # Locked: a deactivation that commits between this read and the event below would
        # otherwise be followed by a reset event for a deactivated account.
        account = await uow.accounts.by_email(key, lock=True)
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


async def check_password_reset(command: CheckPasswordReset, deps: Dependencies) -> None:
    """Refuse a reset token that `confirm_password_reset` would refuse now; spend nothing."""
    async with deps.unit_of_work() as uow:
        user_id = await uow.single_use_tokens.usable(
            token_hash(command.token), TokenPurpose.PASSWORD_RESET, deps.clock()
        )
        account = None if user_id is None else await uow.accounts.get(user_id)
    if account is None or not account.active:
        raise InvalidSingleUseTokenError


# --- administration -----------------------------------------------------------------------


async def authorize(
    caller_id: uuid.UUID,
    deps: Dependencies,
    *,
    owner_of: uuid.UUID | None = None,
    roles: frozenset[str] = frozenset({ADMIN}),
) -> Account:
    """The caller's account if it is active and holds `roles` now (an admin, by default), or
    owns the account `owner_of`.

    Decided from the database at request time, never from the token's claims: a demoted or
    deactivated admin loses admin power with their next request, not when the token expires.
    """
    async with deps.unit_of_work() as uow:
        caller = await uow.accounts.get(caller_id)
    if caller is None or not caller.active:
        raise AccountUnusableError
    if roles <= caller.roles or caller.id == owner_of:
        return caller
    required = " and ".join(sorted(roles))
    if owner_of is None:
        raise NotPermittedError(f"This operation requires the {required} role.")
    raise NotPermittedError(f"This operation requires the {required} role or the account's owner.")


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
    """The roles of an active user. A deactivated account holds no role: it is answered as
    not found, so no service that confirms a role with us grants it anything."""
    async with deps.unit_of_work() as uow:
        account = await uow.accounts.get(user_id)
    if account is None or not account.active:
        raise UserNotFoundError(user_id, active=True)
    return account.roles


async def set_user_roles(command: SetUserRoles, deps: Dependencies) -> frozenset[str]:
    """Replace the user's roles. Every decision of this service reads them at request time;
    a token's `roles` claim keeps the old ones until it expires."""
    async with deps.unit_of_work() as uow:
        if not await uow.accounts.set_roles(command.user_id, command.roles):
            raise UserNotFoundError(command.user_id)
        await uow.commit()
    return command.roles
