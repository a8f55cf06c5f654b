"""The auth handlers against in-memory fakes of their ports (`tests/auth/fakes.py`): what a
use case commits and which events it records, without a database. The SQL adapters have
their own tests on SQLite and PostgreSQL (test_flows, test_outbox, test_replicas)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.auth import handlers
from services.auth.domain import (
    USER,
    AccountDeactivatedError,
    ConfirmPasswordReset,
    DeactivateUser,
    EmailTakenError,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    InvalidSingleUseTokenError,
    LogIn,
    PasswordResetRequested,
    RefreshTokens,
    RegisterUser,
    RequestPasswordReset,
    SessionTokens,
    UserCreated,
    UserDeactivated,
    token_hash,
)
from tests.auth.fakes import (
    CountingLimiter,
    DeferredWork,
    FakeAuthDatabase,
    NamedAccessTokens,
    NoInFlightCap,
    PlainPasswords,
)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CLIENT = "203.0.113.7"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def database() -> FakeAuthDatabase:
    return FakeAuthDatabase()


@pytest.fixture
def background() -> DeferredWork:
    return DeferredWork()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deps(
    database: FakeAuthDatabase, background: DeferredWork, clock: Clock
) -> handlers.Dependencies:
    # mypy checks here that the fake satisfies `UnitOfWork` (through `UnitOfWorkFactory`).
    return handlers.Dependencies(
        unit_of_work=database.unit_of_work,
        passwords=PlainPasswords(),
        access_tokens=NamedAccessTokens(),
        limiter=CountingLimiter(),
        in_flight=NoInFlightCap(),
        background=background,
        clock=clock,
        lifetimes=handlers.TokenLifetimes(
            refresh=timedelta(days=30), verification=timedelta(days=1), reset=timedelta(hours=1)
        ),
    )


async def register(deps: handlers.Dependencies, email: str = "ada@example.com") -> SessionTokens:
    return await handlers.register_user(RegisterUser(email, "correct horse", CLIENT), deps)


async def test_a_registration_commits_the_account_and_records_user_created(
    database: FakeAuthDatabase, deps: handlers.Dependencies
) -> None:
    tokens = await register(deps)

    account = database.state.accounts[tokens.user_id]
    assert account.email == "ada@example.com"
    assert account.roles == frozenset({USER})
    assert [(r.event, r.sequence) for r in database.events] == [
        (UserCreated(tokens.user_id, "ada@example.com"), 1)
    ]
    [refresh] = database.state.refresh_tokens.values()
    assert (refresh.token_hash, refresh.user_id) == (token_hash(tokens.refresh_token), account.id)


async def test_a_taken_email_is_refused_and_records_nothing(
    database: FakeAuthDatabase, deps: handlers.Dependencies
) -> None:
    await register(deps, "ada@example.com")

    with pytest.raises(EmailTakenError):
        await register(deps, "Ada@EXAMPLE.com")  # the same account by `email_key`

    assert len(database.state.accounts) == 1
    assert len(database.events_of(UserCreated)) == 1


async def test_a_deactivation_records_user_deactivated_once_and_ends_every_session(
    database: FakeAuthDatabase, deps: handlers.Dependencies
) -> None:
    tokens = await register(deps)

    await handlers.deactivate_user(DeactivateUser(tokens.user_id), deps)
    await handlers.deactivate_user(DeactivateUser(tokens.user_id), deps)  # a repeated request

    deactivated = database.events_of(UserDeactivated)
    assert [(r.event, r.sequence) for r in deactivated] == [
        (UserDeactivated(tokens.user_id, "ada@example.com"), 2)
    ]
    with pytest.raises(InvalidRefreshTokenError):
        await handlers.refresh_tokens(RefreshTokens(tokens.refresh_token), deps)


async def test_a_deactivated_account_is_refused_at_login_even_with_the_right_password(
    deps: handlers.Dependencies,
) -> None:
    tokens = await register(deps)
    await handlers.deactivate_user(DeactivateUser(tokens.user_id), deps)

    with pytest.raises(AccountDeactivatedError):
        await handlers.log_in(LogIn("ada@example.com", "correct horse", CLIENT), deps)
    with pytest.raises(InvalidCredentialsError):
        await handlers.log_in(LogIn("ada@example.com", "wrong", CLIENT), deps)


async def test_a_reused_refresh_token_revokes_its_whole_family(
    deps: handlers.Dependencies,
) -> None:
    first = await register(deps)
    second = await handlers.refresh_tokens(RefreshTokens(first.refresh_token), deps)

    with pytest.raises(InvalidRefreshTokenError):
        await handlers.refresh_tokens(RefreshTokens(first.refresh_token), deps)  # a copy
    with pytest.raises(InvalidRefreshTokenError):
        await handlers.refresh_tokens(RefreshTokens(second.refresh_token), deps)


async def test_a_password_reset_records_its_event_sets_the_password_and_spends_the_token(
    database: FakeAuthDatabase,
    deps: handlers.Dependencies,
    background: DeferredWork,
) -> None:
    tokens = await register(deps)

    await handlers.request_password_reset(RequestPasswordReset("ADA@example.com", CLIENT), deps)
    assert database.events_of(PasswordResetRequested) == []  # issued after the answer
    await background.run_all()

    [requested] = database.events_of(PasswordResetRequested)
    assert isinstance(requested.event, PasswordResetRequested)
    assert requested.event.user_id == tokens.user_id
    assert requested.sequence == 2
    reset = ConfirmPasswordReset(requested.event.token, "new secret")
    await handlers.confirm_password_reset(reset, deps)

    await handlers.log_in(LogIn("ada@example.com", "new secret", CLIENT), deps)
    with pytest.raises(InvalidCredentialsError):
        await handlers.log_in(LogIn("ada@example.com", "correct horse", CLIENT), deps)
    with pytest.raises(InvalidRefreshTokenError):  # the sessions before the reset end
        await handlers.refresh_tokens(RefreshTokens(tokens.refresh_token), deps)
    with pytest.raises(InvalidSingleUseTokenError):
        await handlers.confirm_password_reset(reset, deps)


async def test_a_reset_for_an_unknown_email_records_nothing(
    database: FakeAuthDatabase, deps: handlers.Dependencies, background: DeferredWork
) -> None:
    await handlers.request_password_reset(RequestPasswordReset("nobody@example.com", CLIENT), deps)
    await background.run_all()

    assert database.events == []


async def test_an_expired_reset_token_is_refused(
    database: FakeAuthDatabase, deps: handlers.Dependencies, background: DeferredWork, clock: Clock
) -> None:
    await register(deps)
    await handlers.request_password_reset(RequestPasswordReset("ada@example.com", CLIENT), deps)
    await background.run_all()
    [requested] = database.events_of(PasswordResetRequested)
    assert isinstance(requested.event, PasswordResetRequested)

    clock.now = requested.event.expires_at
    with pytest.raises(InvalidSingleUseTokenError):
        await handlers.confirm_password_reset(
            ConfirmPasswordReset(requested.event.token, "new secret"), deps
        )
