"""The auth service's signing keys, and the key set it publishes at `/.well-known/jwks.json`
(`getJwks` in `contracts/openapi/auth-service.yaml`).

The keys come from one of two places. `AUTH_SIGNING_KEY` is one key that signs for ever
(`FixedSigningKey`). Otherwise they are a key ring kept in a directory (`KeyRing`,
`AUTH_SIGNING_KEY_DIR`, by default `.accord/auth-keys`), which `accord keys rotate` adds to.
Each key of a ring is a file `<created>-<kid>.pem` (created in UTC, as
`20260125T100000.123456Z`), mode 0600, in a directory of mode 0700. Ordered by creation, a key
goes through four states:

- next: published, not signing yet. A rotated key is published `publish_ahead` (60 s) before
  it signs, so that every verifier can have fetched it before it meets a token signed with
  it (why: `services.kit.tokens.JwksKeySource`).
- current: the newest key past its publish-ahead delay signs every new access token (the first
  key of a ring signs at once: there is no other).
- previous: a key that no longer signs stays published until the last tokens it signed have
  expired, i.e. until its successor started signing + the access-token lifetime + the
  verification leeway.
- expired: no longer published, so the tokens that name it are refused.

A running service looks at the directory at most once per `check_interval` (1 s) and reads the
key files that appeared since, so a rotation needs no restart; the states themselves follow
from the creation times and the clock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.kit.tokens import DEFAULT_LEEWAY, SigningKey, now_utc

if TYPE_CHECKING:
    from services.auth.settings import Settings

log = logging.getLogger("accord.auth.keys")

CHECK_INTERVAL: Final = timedelta(seconds=1)
_CREATED_FORMAT: Final = "%Y%m%dT%H%M%S.%fZ"
# A kid is an RFC 7638 thumbprint: SHA-256, base64url without padding, so 43 characters.
_KEY_FILE: Final = re.compile(r"(?P<created>\d{8}T\d{6}\.\d{6}Z)-(?P<kid>[A-Za-z0-9_-]{43})\.pem")


class SigningKeys(Protocol):
    """The auth service's keys: the one that signs now, and the ones its JWKS publishes."""

    def current(self) -> SigningKey: ...

    def published(self) -> Sequence[SigningKey]:
        """The signing key first, then the keys about to sign and those whose tokens may still
        be valid."""
        ...


class FixedSigningKey:
    """One key that signs and is published for ever (`AUTH_SIGNING_KEY`): no rotation."""

    def __init__(self, key: SigningKey) -> None:
        self._key = key

    def current(self) -> SigningKey:
        return self._key

    def published(self) -> Sequence[SigningKey]:
        return (self._key,)


class PublishedKeySource:
    """A `KeySource` of exactly the keys the JWKS publishes: the auth service's own verifier
    accepts what any other service would, no more."""

    def __init__(self, keys: SigningKeys) -> None:
        self._keys = keys

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        for key in self._keys.published():
            if key.kid == kid:
                return key.public_key
        return None


class KeyRingError(Exception):
    """The key ring cannot be used; the message names the directory or file and the fault."""


class KeyStatus(StrEnum):
    NEXT = "next"
    CURRENT = "current"
    PREVIOUS = "previous"
    EXPIRED = "expired"


@dataclass(frozen=True)
class RingKey:
    """A key of the ring, with the creation time its file name records."""

    key: SigningKey
    created_at: datetime
    path: Path


@dataclass(frozen=True)
class KeyState:
    """Where a key of the ring stands at one moment."""

    ring_key: RingKey
    status: KeyStatus
    signs_from: datetime
    # When it stopped signing and when it leaves the JWKS (None while it is next or current).
    signs_until: datetime | None = None
    retires_at: datetime | None = None

    @property
    def kid(self) -> str:
        return self.ring_key.key.kid

    @property
    def created_at(self) -> datetime:
        return self.ring_key.created_at


@dataclass(frozen=True)
class KeyPolicy:
    """How long a key is published before and after the time it signs."""

    access_token_ttl: timedelta
    publish_ahead: timedelta = timedelta(seconds=60)
    leeway: timedelta = DEFAULT_LEEWAY


def key_states(keys: Iterable[RingKey], policy: KeyPolicy, now: datetime) -> list[KeyState]:
    """The state of each key at `now`, oldest first (see the module docstring)."""
    ordered = sorted(keys, key=lambda ring_key: (ring_key.created_at, ring_key.key.kid))
    starts = [
        ring_key.created_at if index == 0 else ring_key.created_at + policy.publish_ahead
        for index, ring_key in enumerate(ordered)
    ]
    # The starts never decrease, so the signing key is the last one that has started (the
    # first, should the clock be behind the time it was created).
    signing = max((index for index, start in enumerate(starts) if start <= now), default=0)
    states = []
    for index, ring_key in enumerate(ordered):
        if index >= signing:
            status = KeyStatus.CURRENT if index == signing else KeyStatus.NEXT
            states.append(KeyState(ring_key, status, starts[index]))
            continue
        until = starts[index + 1]
        retires = until + policy.access_token_ttl + policy.leeway
        status = KeyStatus.PREVIOUS if now < retires else KeyStatus.EXPIRED
        states.append(KeyState(ring_key, status, starts[index], until, retires))
    return states


def published_states(states: Iterable[KeyState]) -> list[KeyState]:
    """The keys a JWKS publishes, in its order: current, next (oldest first), then previous
    (newest first)."""
    chosen = [state for state in states if state.status is not KeyStatus.EXPIRED]
    current = [state for state in chosen if state.status is KeyStatus.CURRENT]
    upcoming = sorted(
        (state for state in chosen if state.status is KeyStatus.NEXT),
        key=lambda state: state.created_at,
    )
    previous = sorted(
        (state for state in chosen if state.status is KeyStatus.PREVIOUS),
        key=lambda state: state.created_at,
        reverse=True,
    )
    return current + upcoming + previous


class KeyRing:
    """Signing keys kept as files in a directory: a rotation adds a file; a running service
    notices it within `check_interval` and signs and publishes as `key_states` says."""

    def __init__(
        self,
        directory: Path,
        policy: KeyPolicy,
        *,
        clock: Callable[[], datetime] = now_utc,
        check_interval: timedelta = CHECK_INTERVAL,
    ) -> None:
        self.directory = directory
        self.policy = policy
        self._clock = clock
        self._check_interval = check_interval
        self._keys: dict[str, RingKey] = {}  # by file name
        self._unreadable: set[str] = set()
        self._checked_at: datetime | None = None

    @classmethod
    def open(
        cls,
        directory: Path,
        policy: KeyPolicy,
        *,
        create: bool,
        legacy_key: Path | None = None,
        clock: Callable[[], datetime] = now_utc,
        check_interval: timedelta = CHECK_INTERVAL,
    ) -> KeyRing:
        """The ring in `directory`, read now: a file named as a key that holds no such key is a
        `KeyRingError`. With `create` a missing directory is made (mode 0700), and a ring with
        no key takes in the single key file `legacy_key` (what earlier versions generated), so
        that the tokens it signed stay valid. It may still be empty."""
        if create:
            _make_private_directory(directory)
        ring = cls(directory, policy, clock=clock, check_interval=check_interval)
        ring._load(strict=True)
        ring._checked_at = ring._clock()
        if not ring._keys and create and legacy_key is not None and legacy_key.exists():
            try:
                key = SigningKey.from_pem(legacy_key.read_bytes())
            except ValueError as error:
                raise KeyRingError(f"{legacy_key}: {error}") from None
            modified = datetime.fromtimestamp(legacy_key.stat().st_mtime, UTC)
            ring._add(ring._write(key, min(modified, _aware(ring._clock()))))
            log.info("imported the signing key %s from %s into %s", key.kid, legacy_key, directory)
        return ring

    @property
    def empty(self) -> bool:
        return not self._keys

    def rotate(self) -> RingKey:
        """Add a new key (created now, or just after the newest key should the clock be behind
        it); it becomes current after the publish-ahead delay, or at once in an empty ring."""
        self._load(strict=False)
        newest = max((ring_key.created_at for ring_key in self._keys.values()), default=None)
        created = _aware(self._clock())
        if newest is not None and created <= newest:
            created = newest + timedelta(microseconds=1)
        ring_key = self._write(SigningKey.generate(), created)
        self._add(ring_key)
        return ring_key

    def states(self, now: datetime | None = None) -> list[KeyState]:
        """Every key's state at `now` (default: the clock's now), oldest first."""
        self._refresh()
        if not self._keys:
            raise KeyRingError(f"the key ring {self.directory} holds no signing key")
        return key_states(self._keys.values(), self.policy, now or _aware(self._clock()))

    def current(self) -> SigningKey:
        states = self.states()
        return next(s.ring_key.key for s in states if s.status is KeyStatus.CURRENT)

    def published(self) -> Sequence[SigningKey]:
        return [state.ring_key.key for state in published_states(self.states())]

    def _refresh(self) -> None:
        now = _aware(self._clock())
        last = self._checked_at
        if last is not None and last <= now < last + self._check_interval:
            return
        self._checked_at = now
        try:
            self._load(strict=False)
        except OSError as error:
            log.error(
                "cannot read the key ring %s (%s); using the keys read before",
                self.directory,
                error,
            )

    def _load(self, *, strict: bool) -> None:
        """Reads the key files that appeared and forgets those that went. Outside `strict`, a
        file that holds no key is logged once and left out, and a directory emptied of keys
        leaves the keys read before in use (a service must not be left without one)."""
        try:
            names = {
                entry.name
                for entry in os.scandir(self.directory)
                if _KEY_FILE.fullmatch(entry.name) and entry.is_file()
            }
        except FileNotFoundError:
            names = set()
        except OSError as error:
            if strict:
                raise KeyRingError(f"cannot read the key ring {self.directory}: {error}") from None
            raise
        if not names and self._keys and not strict:
            log.error(
                "the key ring %s holds no key any more; using the keys read before", self.directory
            )
            return
        for gone in self._keys.keys() - names:
            del self._keys[gone]
        for name in sorted(names - self._keys.keys() - self._unreadable):
            try:
                self._keys[name] = self._read(self.directory / name)
            except KeyRingError as error:
                if strict:
                    raise
                self._unreadable.add(name)
                log.error("%s; the key ring is used without it", error)

    def _add(self, ring_key: RingKey) -> None:
        self._keys[ring_key.path.name] = ring_key

    @staticmethod
    def _read(path: Path) -> RingKey:
        match = _KEY_FILE.fullmatch(path.name)
        if match is None:
            raise KeyRingError(f"{path}: not named as a key of the ring (<created>-<kid>.pem)")
        created = datetime.strptime(match["created"], _CREATED_FORMAT).replace(tzinfo=UTC)
        try:
            key = SigningKey.from_pem(path.read_bytes())
        except (OSError, ValueError) as error:
            raise KeyRingError(f"{path}: {error}") from None
        if key.kid != match["kid"]:
            raise KeyRingError(f"{path}: holds the key {key.kid}, not the one its name gives")
        return RingKey(key, created, path)

    def _write(self, key: SigningKey, created: datetime) -> RingKey:
        """Writes `key` to its file: complete (mode 0600, from mkstemp) before it has its name,
        and never over another file."""
        stamp = created.astimezone(UTC).strftime(_CREATED_FORMAT)
        path = self.directory / f"{stamp}-{key.kid}.pem"
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=".new-key.")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(key.to_pem())
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                # The same key at the same moment: another process importing the same file.
                existing = self._read(path)
                if existing.key.kid != key.kid:
                    raise KeyRingError(f"{path} exists and holds another key") from None
                return existing
        finally:
            with contextlib.suppress(FileNotFoundError):
                Path(temporary).unlink()
        _sync_directory(self.directory)
        return self._read(path)


def key_policy(settings: Settings) -> KeyPolicy:
    return KeyPolicy(
        access_token_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        publish_ahead=timedelta(seconds=settings.signing_key_publish_ahead_seconds),
    )


def open_key_ring(
    settings: Settings,
    *,
    directory: Path | None = None,
    create: bool = True,
    clock: Callable[[], datetime] = now_utc,
) -> KeyRing:
    """The key ring the settings name (or `directory`), for `accord keys`."""
    return KeyRing.open(
        directory or settings.key_ring_directory,
        key_policy(settings),
        create=create,
        legacy_key=settings.signing_key_path if settings.local else None,
        clock=clock,
    )


def signing_keys(settings: Settings, *, clock: Callable[[], datetime] = now_utc) -> SigningKeys:
    """The keys the service signs with: `AUTH_SIGNING_KEY`, else the key ring. Only local mode
    creates the ring and its first key; elsewhere a ring without a key is a `KeyRingError`."""
    if settings.signing_key is not None:
        return FixedSigningKey(SigningKey.from_pem(settings.signing_key.get_secret_value()))
    ring = open_key_ring(settings, create=settings.local, clock=clock)
    if ring.empty:
        if not settings.local:
            raise KeyRingError(
                f"AUTH_SIGNING_KEY_DIR={ring.directory} holds no signing key; add one with "
                f"`accord keys rotate` (keys are generated only in local mode)"
            )
        first = ring.rotate()
        log.info("generated the signing key %s in %s", first.key.kid, ring.directory)
    return ring


def _make_private_directory(directory: Path) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        return
    directory.chmod(0o700)  # whatever the umask


def _sync_directory(directory: Path) -> None:
    """Makes a new file's name durable (best effort: not every platform can open a directory)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("the clock must return timezone-aware datetimes")
    return moment
