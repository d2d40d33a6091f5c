"""Password hashing with argon2id, off the event loop (argon2 releases the GIL).

All hashing runs on ONE thread: each hash takes a 19 MiB buffer, and the C allocator
keeps such buffers per thread, so hashing on many threads left the server's memory
doubled after a few concurrent logins (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from dendrite_lite.config import AuthConfig

_HASHING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="argon2")

# A valid hash of a random password, verified against when the user does not exist, so
# that a login for an unknown user takes as long as one with a wrong password.
_DUMMY_PASSWORD = "dendrite-lite timing equaliser"


class Passwords:
    def __init__(self, config: AuthConfig) -> None:
        self._hasher = PasswordHasher(
            time_cost=config.argon2_time_cost,
            memory_cost=config.argon2_memory_kib,
            parallelism=config.argon2_parallelism,
            type=Type.ID,
        )
        self.min_length = config.password_min_length
        self._dummy_hash: str | None = None

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            _HASHING, self._hasher.hash, password
        )

    def verify_sync(self, password_hash: str | None, password: str) -> bool:
        if password_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = self._hasher.hash(_DUMMY_PASSWORD)
            password_hash = self._dummy_hash
            password = password + "\x00"  # never matches the dummy
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(
            _HASHING, self.verify_sync, password_hash, password
        )
