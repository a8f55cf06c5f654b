"""Signing-key rotation: the key ring (`services/auth/keyring.py`), `accord keys rotate` and
`accord keys list`, and a rotation seen from a running auth service and from the user service,
which verifies through the auth service's JWKS."""

from __future__ import annotations

import asyncio
import secrets
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from harness.cli import app as cli
from services.auth.keyring import (
    KeyPolicy,
    KeyRing,
    KeyRingError,
    KeyStatus,
    published_states,
    signing_keys,
)
from services.auth.settings import Settings, SettingsError, load_settings
from services.kit import auth_client
from services.kit.events import encode
from services.kit.memory import InMemoryBroker, InMemoryEventConsumer
from services.kit.tokens import (
    DEFAULT_LEEWAY,
    JwksKeySource,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
    jwks,
)
from services.kit.topology import QueueSpec
from services.user.app import Adapters as UserAdapters
from services.user.roles import InMemoryRolesClient
from services.user.storage import SqlUserStore
from services.user.verification import CachingTokenVerifier
from tests import factories
from tests.auth.conftest import AppFactory, AuthClient, Clock, bearer
from tests.user.conftest import ADMIN_ROLES, FAST, running, user_settings

runner = CliRunner()

ISSUER = "http://127.0.0.1:3001"
AUDIENCE = "accord"
TTL = timedelta(minutes=15)
AHEAD = timedelta(seconds=60)
POLICY = KeyPolicy(access_token_ttl=TTL, publish_ahead=AHEAD, leeway=DEFAULT_LEEWAY)
START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class FixedClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


def new_kid(rotate_output: str) -> str:
    """The kid `accord keys rotate` reports (`new signing key <kid> in ...`)."""
    return rotate_output.split()[3]


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def statuses(ring: KeyRing) -> dict[str, KeyStatus]:
    return {state.kid: state.status for state in ring.states()}


def open_ring(directory: Path, clock: Callable[[], datetime], **options: Any) -> KeyRing:
    return KeyRing.open(directory, POLICY, create=True, clock=clock, **options)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Local mode, with the default key ring under this test's directory; its path."""
    for name in ("ACCORD_ENV", "AUTH_SIGNING_KEY", "AUTH_SIGNING_KEY_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTH_SIGNING_KEY_PATH", str(tmp_path / "state" / "auth-signing-key.pem"))
    return tmp_path / "state" / "auth-keys"


# The ring


def test_a_new_ring_is_a_private_directory_of_private_key_files_named_by_creation_and_kid(
    tmp_path: Path,
) -> None:
    ring = open_ring(tmp_path / "state" / "keys", FixedClock())

    first = ring.rotate()

    directory = tmp_path / "state" / "keys"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    [key_file] = directory.iterdir()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.name == f"20261125T100000.000000Z-{first.key.kid}.pem"
    assert SigningKey.from_pem(key_file.read_bytes()).kid == first.key.kid
    assert first.created_at == START


def test_the_first_key_of_a_ring_signs_at_once(tmp_path: Path) -> None:
    ring = open_ring(tmp_path / "keys", FixedClock())

    first = ring.rotate()

    assert ring.current().kid == first.key.kid
    assert [key.kid for key in ring.published()] == [first.key.kid]


def test_a_rotated_key_is_published_at_once_and_signs_only_after_the_publish_ahead_delay(
    tmp_path: Path,
) -> None:
    clock = FixedClock()
    ring = open_ring(tmp_path / "keys", clock)
    old = ring.rotate().key.kid
    clock.advance(timedelta(hours=1))

    new = ring.rotate().key.kid

    assert ring.current().kid == old
    assert [key.kid for key in ring.published()] == [old, new]
    assert statuses(ring) == {old: KeyStatus.CURRENT, new: KeyStatus.NEXT}
    clock.advance(AHEAD - timedelta(microseconds=1))
    assert ring.current().kid == old
    clock.advance(timedelta(microseconds=1))
    assert ring.current().kid == new
    assert [key.kid for key in ring.published()] == [new, old]
    assert statuses(ring) == {old: KeyStatus.PREVIOUS, new: KeyStatus.CURRENT}


def test_a_previous_key_is_published_until_its_last_tokens_have_expired_then_withdrawn(
    tmp_path: Path,
) -> None:
    clock = FixedClock()
    ring = open_ring(tmp_path / "keys", clock)
    old = ring.rotate().key.kid
    clock.advance(timedelta(hours=1))
    new_key = ring.rotate()
    switch = new_key.created_at + AHEAD
    [old_state] = [state for state in ring.states() if state.kid == old]
    retires = switch + TTL + DEFAULT_LEEWAY

    clock.now = retires - timedelta(microseconds=1)
    published_before = [key.kid for key in ring.published()]
    clock.now = retires
    published_after = [key.kid for key in ring.published()]

    assert published_before == [new_key.key.kid, old]
    assert published_after == [new_key.key.kid]
    assert statuses(ring)[old] is KeyStatus.EXPIRED
    assert [state.kid for state in published_states(ring.states())] == [new_key.key.kid]
    [expired] = [state for state in ring.states() if state.kid == old]
    assert (expired.signs_until, expired.retires_at) == (switch, retires)
    assert old_state.status is KeyStatus.CURRENT


def test_with_no_publish_ahead_the_newest_key_signs_at_once(tmp_path: Path) -> None:
    clock = FixedClock()
    policy = KeyPolicy(access_token_ttl=TTL, publish_ahead=timedelta(0))
    ring = KeyRing.open(tmp_path / "keys", policy, create=True, clock=clock)
    old = ring.rotate().key.kid
    clock.advance(timedelta(hours=1))

    new = ring.rotate().key.kid

    assert ring.current().kid == new
    assert statuses(ring) == {old: KeyStatus.PREVIOUS, new: KeyStatus.CURRENT}


def test_a_running_ring_sees_a_rotation_made_by_another_process_within_a_second(
    tmp_path: Path,
) -> None:
    clock = FixedClock()
    service = open_ring(tmp_path / "keys", clock)
    old = service.rotate().key.kid
    clock.advance(timedelta(hours=1))
    service.published()  # looked at the directory just now

    new = open_ring(tmp_path / "keys", clock).rotate().key.kid  # `accord keys rotate`

    assert [key.kid for key in service.published()] == [old]
    clock.advance(timedelta(seconds=1))
    assert [key.kid for key in service.published()] == [old, new]


def test_a_verifier_that_fetched_the_key_set_around_a_rotation_accepts_the_new_keys_tokens(
    tmp_path: Path,
) -> None:
    """Wherever within the publish-ahead delay a verifier last fetched the set (it refetches
    for an unknown kid at most every 30 s), it knows the new key by its first token."""

    async def check(fetched_after_rotation: timedelta) -> None:
        clock = FixedClock()
        ring = open_ring(tmp_path / str(uuid.uuid4()), clock)
        ring.rotate()
        issuer = TokenIssuer(ring.current, issuer=ISSUER, audience=AUDIENCE, ttl=TTL, clock=clock)

        async def fetch() -> dict[str, Any]:
            return jwks(*ring.published())

        keys = JwksKeySource(fetch, min_refetch_interval=timedelta(seconds=30), clock=clock)
        verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, clock=clock)
        clock.advance(timedelta(hours=1))
        rotated_at = clock()
        new = ring.rotate().key.kid
        clock.now = rotated_at + fetched_after_rotation
        await verifier.verify(issuer.issue("user-1", ["user"]).token)  # fetches the set
        clock.now = rotated_at + AHEAD

        token = issuer.issue("user-2", ["user"]).token

        assert kid_of(token) == new
        assert (await verifier.verify(token)).subject == "user-2"

    for seconds in (-1, 0, 0.5, 1, 29, 30, 59):
        asyncio.run(check(timedelta(seconds=seconds)))


def test_a_key_file_holding_another_key_than_its_name_gives_is_refused_at_start(
    tmp_path: Path,
) -> None:
    ring = open_ring(tmp_path / "keys", FixedClock())
    written = ring.rotate()
    written.path.write_bytes(SigningKey.generate().to_pem())

    with pytest.raises(KeyRingError, match="not the one its name gives"):
        open_ring(tmp_path / "keys", FixedClock())


def test_a_garbled_key_file_appearing_later_is_left_out_and_the_ring_keeps_signing(
    tmp_path: Path,
) -> None:
    clock = FixedClock()
    ring = open_ring(tmp_path / "keys", clock)
    kid = ring.rotate().key.kid
    garbled = tmp_path / "keys" / f"20261125T110000.000000Z-{'A' * 43}.pem"
    garbled.write_text("not a key")
    clock.advance(timedelta(hours=2))

    assert ring.current().kid == kid
    assert [key.kid for key in ring.published()] == [kid]


# `accord keys`


def test_keys_rotate_prints_the_new_kid_and_what_the_jwks_now_publishes(cli_env: Path) -> None:
    first = runner.invoke(cli, ["keys", "rotate"])
    second = runner.invoke(cli, ["keys", "rotate"])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    old, new = new_kid(first.output), new_kid(second.output)
    assert sorted(path.name.split("-", 1)[1] for path in cli_env.iterdir()) == sorted(
        [f"{old}.pem", f"{new}.pem"]
    )
    assert f"new signing key {old} in {cli_env}: current" in first.output
    assert f"new signing key {new} in {cli_env}: next: published" in second.output
    published = second.output.split("the JWKS now publishes", 1)[1]
    assert f"{old}  current: signs new access tokens" in published
    assert f"{new}  next: published, signs new access tokens from" in published
    assert "(in 60 s)" in published


def test_keys_list_shows_each_key_with_its_creation_time_and_status(
    cli_env: Path, tmp_path: Path
) -> None:
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    past = open_ring(cli_env, lambda: two_hours_ago)
    expired = past.rotate()
    current = past.rotate()
    rotated = new_kid(runner.invoke(cli, ["keys", "rotate"]).output)

    result = runner.invoke(cli, ["keys", "list", "--dir", str(cli_env)])

    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split() == ["KID", "CREATED", "STATUS"]
    assert [row.split()[0] for row in rows] == [expired.key.kid, current.key.kid, rotated]
    assert [row.split()[3] for row in rows] == ["expired", "current", "next"]
    assert rows[0].split()[1:3] == two_hours_ago.strftime("%Y-%m-%d %H:%M:%SZ").split()


def test_keys_list_of_a_ring_that_does_not_exist_yet_says_so_and_creates_nothing(
    cli_env: Path,
) -> None:
    result = runner.invoke(cli, ["keys", "list"])

    assert result.exit_code == 0, result.output
    assert "holds no key yet" in result.output
    assert not cli_env.exists()


def test_keys_rotate_first_imports_the_single_key_of_an_earlier_version(
    cli_env: Path, tmp_path: Path
) -> None:
    legacy = SigningKey.generate()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "auth-signing-key.pem").write_bytes(legacy.to_pem())

    result = runner.invoke(cli, ["keys", "rotate"])

    assert result.exit_code == 0, result.output
    assert f"{legacy.kid}  current: signs new access tokens" in result.output
    assert len(list(cli_env.glob("*.pem"))) == 2


def test_keys_rotate_with_a_fixed_signing_key_is_refused(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_SIGNING_KEY", SigningKey.generate().to_pem().decode())

    result = runner.invoke(cli, ["keys", "rotate"])

    assert result.exit_code == 1
    assert "AUTH_SIGNING_KEY is set" in result.output
    assert not cli_env.exists()


# Settings outside local mode


def production(directory: Path, **overrides: Any) -> Settings:
    return Settings(
        environment="production",
        database_url=f"sqlite:///{directory / 'auth.db'}",
        service_api_key=secrets.token_urlsafe(32),
        signing_key_path=directory / "auth-signing-key.pem",
        **overrides,
    )


def test_outside_local_mode_a_key_ring_directory_may_stand_for_the_signing_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTH_SIGNING_KEY", raising=False)
    monkeypatch.setenv("ACCORD_ENV", "production")
    monkeypatch.setenv("AUTH_SERVICE_API_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("AUTH_SIGNING_KEY_DIR", str(tmp_path / "keys"))

    assert load_settings().key_ring_directory == tmp_path / "keys"


def test_outside_local_mode_an_empty_key_ring_is_refused_not_filled(tmp_path: Path) -> None:
    settings = production(tmp_path, signing_key_dir=tmp_path / "keys")
    (tmp_path / "auth-signing-key.pem").write_bytes(SigningKey.generate().to_pem())

    with pytest.raises(KeyRingError, match="holds no signing key; add one with `accord keys"):
        signing_keys(settings)

    assert not (tmp_path / "keys").exists()


def test_outside_local_mode_a_ring_made_with_keys_rotate_signs(
    tmp_path: Path, cli_env: Path
) -> None:
    result = runner.invoke(cli, ["keys", "rotate", "--dir", str(tmp_path / "keys")])
    assert result.exit_code == 0, result.output

    keys = signing_keys(production(tmp_path, signing_key_dir=tmp_path / "keys"))

    assert keys.current().kid in result.output


def test_a_signing_key_and_a_key_ring_together_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCORD_ENV", raising=False)
    monkeypatch.setenv("AUTH_SIGNING_KEY", SigningKey.generate().to_pem().decode())
    monkeypatch.setenv("AUTH_SIGNING_KEY_DIR", "/somewhere")

    with pytest.raises(SettingsError, match="AUTH_SIGNING_KEY_DIR"):
        load_settings()


# The running services


@asynccontextmanager
async def user_service(
    auth: AuthClient, clock: Clock, database: Path, queue: str
) -> AsyncIterator[tuple[httpx.AsyncClient, InMemoryBroker, InMemoryRolesClient]]:
    """The user service, verifying tokens as `build_adapters` has it do, with the key set
    fetched over HTTP from the running auth service."""
    settings = user_settings(f"sqlite:///{database}", queue=queue)
    keys = JwksKeySource(
        auth_client.AuthClient.over(auth.http, auth_client.ClientPolicy(timeout=1.0)).jwks,
        min_refetch_interval=timedelta(seconds=settings.jwks_refetch_seconds),
        clock=clock,
    )
    verifier = TokenVerifier(
        keys,
        issuer=settings.issuer,
        audience=settings.audience,
        max_lifetime=timedelta(seconds=settings.access_token_max_lifetime_seconds),
        clock=clock,
    )
    broker = InMemoryBroker()
    broker.create_queue(QueueSpec(queue))
    roles = InMemoryRolesClient()
    adapters = UserAdapters(
        store=SqlUserStore(settings.database_url),
        verifier=CachingTokenVerifier(verifier, clock=clock),
        roles=roles,
        consumer=InMemoryEventConsumer(broker, queue, FAST),
        clock=clock,
    )
    async with running(settings, adapters) as http:
        yield http, broker, roles


async def drained(broker: InMemoryBroker, queue: str) -> None:
    deadline = asyncio.get_running_loop().time() + 20
    while broker.depth(queue):
        assert asyncio.get_running_loop().time() < deadline, "the event was not consumed"
        await asyncio.sleep(0.01)


async def published_kids(auth: AuthClient) -> list[str]:
    response = await auth.http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return [key["kid"] for key in response.json()["keys"]]


async def test_after_keys_rotate_earlier_tokens_stay_valid_and_new_logins_use_the_new_key(
    start_auth: AppFactory,
    clock: Clock,
    tmp_path: Path,
    unique_prefix: str,
    cli_env: Path,
) -> None:
    queue = unique_prefix + "users"
    async with (
        start_auth() as auth,
        user_service(auth, clock, tmp_path / "user.db", queue) as (user, broker, roles),
    ):
        admin = await auth.admin()
        user_id = uuid.UUID(admin["userId"])
        profile = f"/api/v1/users/{user_id}"
        roles.set(user_id, ADMIN_ROLES)
        broker.send(queue, encode(factories.user_created(user_id, email=admin["email"])))
        await drained(broker, queue)
        old_kid = kid_of(admin["accessToken"])
        assert (await user.get(profile, headers=bearer(admin))).status_code == 200

        rotated = runner.invoke(
            cli, ["keys", "rotate", "--dir", str(auth.settings.key_ring_directory)]
        )
        assert rotated.exit_code == 0, rotated.output
        new = new_kid(rotated.output)
        clock.advance(timedelta(seconds=1))  # the service looks at its ring once a second
        published_ahead = await published_kids(auth)
        still_old = (await auth.login(admin["email"])).json()
        clock.advance(timedelta(seconds=auth.settings.signing_key_publish_ahead_seconds))
        fresh = (await auth.login(admin["email"])).json()
        published_both = await published_kids(auth)
        admin_operation = await auth.http.get(
            f"/api/v1/auth/users/{user_id}/roles", headers=bearer(admin)
        )
        me = await auth.http.get("/api/v1/auth/me", headers=bearer(admin))
        user_with_old = await user.get(profile, headers=bearer(admin))
        user_with_new = await user.get(profile, headers=bearer(fresh))
        clock.advance(TTL + DEFAULT_LEEWAY + timedelta(seconds=1))
        published_after = await published_kids(auth)
        old_after = await auth.http.get("/api/v1/auth/me", headers=bearer(admin))

    assert published_ahead == [old_kid, new]
    assert kid_of(still_old["accessToken"]) == old_kid
    assert kid_of(fresh["accessToken"]) == new
    assert published_both == [new, old_kid]
    assert admin_operation.status_code == 200, admin_operation.text
    assert me.status_code == 200, me.text
    assert user_with_old.status_code == 200, user_with_old.text
    assert user_with_new.status_code == 200, user_with_new.text
    assert published_after == [new]
    assert old_after.status_code == 401


async def test_a_key_generated_by_an_earlier_version_is_imported_so_its_tokens_stay_valid(
    start_auth: AppFactory, settings: Settings
) -> None:
    legacy = SigningKey.generate()
    settings.signing_key_path.write_bytes(legacy.to_pem())

    async with start_auth() as auth:
        user = await auth.register()
        earlier = TokenIssuer(
            legacy, issuer=settings.issuer, audience=settings.audience, ttl=TTL
        ).issue(user["userId"], ["user"])
        me = await auth.http.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {earlier.token}"}
        )
        published = await published_kids(auth)

    assert me.status_code == 200, me.text
    assert kid_of(user["accessToken"]) == legacy.kid
    assert published == [legacy.kid]
    [key_file] = settings.key_ring_directory.iterdir()
    assert key_file.name.endswith(f"-{legacy.kid}.pem")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_with_a_fixed_signing_key_the_jwks_publishes_that_key_alone(
    start_auth: AppFactory, settings: Settings
) -> None:
    key = SigningKey.generate()

    async with start_auth(signing_key=SecretStr(key.to_pem().decode())) as auth:
        user = await auth.register()
        published = await published_kids(auth)

    assert published == [key.kid]
    assert kid_of(user["accessToken"]) == key.kid
    assert not settings.key_ring_directory.exists()
