"""`PasswordHasher` with Argon2id (argon2-cffi).

Hashing is deliberately slow, so it never runs on the event loop: it runs on a small pool of
worker threads of its own (argon2-cffi releases the GIL), at most `max_concurrency` hashes at
once, and those threads lower their own scheduling priority (Linux `nice` is per thread, and
Argon2's lane threads inherit it). A login storm then uses the CPU that is left over, instead
of making every other request queue behind it for a core.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from services.auth.settings import Settings, cpu_count

log = logging.getLogger("accord.auth.passwords")


def _lower_priority(nice: int) -> None:
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as error:  # not allowed here: hashing still works, only less politely
        log.warning("could not lower the priority of a hashing thread: %s", error)


class Argon2PasswordHasher:
    """Hashes and verifies passwords with Argon2id, on low-priority worker threads."""

    def __init__(
        self,
        *,
        time_cost: int = argon2.DEFAULT_TIME_COST,
        memory_cost: int = argon2.DEFAULT_MEMORY_COST,
        parallelism: int = argon2.DEFAULT_PARALLELISM,
        max_concurrency: int | None = None,
        nice: int = 10,
    ) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self.max_concurrency = max_concurrency or cpu_count()
        self.nice = nice
        self._pool: ThreadPoolExecutor | None = None
        self._decoy: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Argon2PasswordHasher:
        return cls(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost_kib,
            parallelism=settings.argon2_parallelism,
            max_concurrency=settings.password_hash_concurrency,
            nice=settings.password_hash_nice,
        )

    @property
    def parameters(self) -> argon2.Parameters:
        return argon2.extract_parameters(self._hasher.hash("parameters"))

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.max_concurrency,
                thread_name_prefix="argon2",
                initializer=_lower_priority,
                initargs=(self.nice,),
            )
        return self._pool

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._workers(), self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._workers(), self._verify, password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify_nothing(self, password: str) -> None:
        # An unknown email costs what a wrong password costs, so timing reveals no accounts.
        if self._decoy is None:
            self._decoy = await self.hash(secrets.token_urlsafe(16))
        await self.verify(self._decoy, password)

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def close(self) -> None:
        """Stop the worker threads (a later hash starts new ones)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False, cancel_futures=True)
