"""`accord keys rotate` and `accord keys list`: the auth service's key ring
(`services/auth/keyring.py`), found from the auth service's settings (`AUTH_SIGNING_KEY_DIR`,
else `.accord/auth-keys`) or named with `--dir`, and reported as lines of text."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from services.auth.keyring import (
    KeyRing,
    KeyRingError,
    KeyState,
    KeyStatus,
    open_key_ring,
    published_states,
)
from services.auth.settings import SettingsError, load_settings
from services.kit.tokens import now_utc


class KeysError(Exception):
    """The key ring cannot be found, read or written; the message says why."""


def open_ring(directory: Path | None, *, create: bool) -> KeyRing:
    """The ring `directory` names, else the one the auth service's settings name."""
    try:
        settings = load_settings()
    except SettingsError as error:
        raise KeysError(str(error)) from None
    if directory is None and settings.signing_key is not None:
        raise KeysError(
            "AUTH_SIGNING_KEY is set: the auth service signs with that one key and has no key "
            "ring to rotate; unset it to use the ring in AUTH_SIGNING_KEY_DIR"
        )
    try:
        return open_key_ring(settings, directory=directory, create=create)
    except (KeyRingError, OSError) as error:
        raise KeysError(str(error)) from None


def rotate(directory: Path | None) -> list[str]:
    """Adds a key to the ring; what was added and what the JWKS publishes now."""
    ring = open_ring(directory, create=True)
    try:
        added = ring.rotate()
        now = now_utc()
        states = ring.states(now)
    except (KeyRingError, OSError) as error:
        raise KeysError(str(error)) from None
    state = next(state for state in states if state.kid == added.key.kid)
    where = ring.directory.absolute()  # `--root` runs this from the project, not from here
    lines = [f"new signing key {added.key.kid} in {where}: {describe(state, now)}"]
    lines.append("the JWKS now publishes (a running auth service sees it within a second):")
    lines += [f"  {state.kid}  {describe(state, now)}" for state in published_states(states)]
    return lines


def listing(directory: Path | None) -> list[str]:
    """Every key of the ring, oldest first: kid, creation time, status and what it means."""
    ring = open_ring(directory, create=False)
    if ring.empty:
        return [
            f"the key ring {ring.directory.absolute()} holds no key yet: the auth service creates "
            "one when it first starts in local mode, or run `accord keys rotate`"
        ]
    now = now_utc()
    try:
        states = ring.states(now)
    except (KeyRingError, OSError) as error:
        raise KeysError(str(error)) from None
    lines = [f"{'KID':<43}  {'CREATED':<20}  STATUS"]
    for state in states:
        lines.append(
            f"{state.kid:<43}  {when(state.created_at):<20}  {state.status.value:<8}  "
            f"{detail(state, now)}"
        )
    return lines


def describe(state: KeyState, now: datetime) -> str:
    """The key's status at `now` and what it means, for a person."""
    return f"{state.status.value}: {detail(state, now)}"


def detail(state: KeyState, now: datetime) -> str:
    if state.status is KeyStatus.CURRENT:
        return "signs new access tokens"
    if state.status is KeyStatus.NEXT:
        wait = max(0, round((state.signs_from - now).total_seconds()))
        return f"published, signs new access tokens from {when(state.signs_from)} (in {wait} s)"
    assert state.retires_at is not None
    if state.status is KeyStatus.PREVIOUS:
        return (
            f"published until {when(state.retires_at)}, when the last tokens it signed have expired"
        )
    return f"withdrawn from the JWKS since {when(state.retires_at)}"


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")
