"""Password checks (argon2id, ~125 ms and 64 MiB each) on their own small thread pool.

A flood of wrong passwords must cost the attacker, not the players: the checks run on
``workers`` threads of their own (join codes and session tokens keep the default pool),
one address has at most ``per_address`` of them hashing (its others wait), and at most
``max_pending`` wait or run overall: beyond that an attempt is refused at once
(``VerifierBusyError``) without hashing. Callers admit attempts through a ``LoginGate``
first, so a throttled address never reaches the hashing.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Self

from hub.auth.errors import AuthError
from hub.auth.users import User, Users

__all__ = ["PasswordVerifier", "VerifierBusyError"]

DEFAULT_WORKERS = 2
DEFAULT_MAX_PENDING = 32
PER_ADDRESS = 2


class VerifierBusyError(AuthError):
    """Refused without a check: too many password checks pending (overall or per address)."""


class PasswordVerifier:
    """``with PasswordVerifier(users) as verifier: await verifier.authenticate(...)``."""

    def __init__(
        self,
        users: Users,
        *,
        workers: int = DEFAULT_WORKERS,
        max_pending: int = DEFAULT_MAX_PENDING,
        per_address: int = PER_ADDRESS,
    ) -> None:
        self.users = users
        self._workers = workers
        self._max_pending = max_pending
        self._per_address = per_address
        self._pending: Counter[str] = Counter()
        self._turns: dict[str, asyncio.Semaphore] = {}  # address -> its hashing turns
        self._executor: ThreadPoolExecutor | None = None

    def __enter__(self) -> Self:
        self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="argon2")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @property
    def pending(self) -> int:
        return self._pending.total()

    async def authenticate(self, name: str, password: str, *, address: str) -> User | None:
        """The user (never the service identity) if ``password`` is theirs; an unknown name
        costs the same hashing as a known one. Raises ``VerifierBusyError``."""
        if self._executor is None:
            msg = "the password verifier is not open"
            raise AuthError(msg)
        if self._pending.total() >= self._max_pending:
            msg = f"too many password checks pending ({self._max_pending})"
            raise VerifierBusyError(msg)
        self._pending[address] += 1
        turns = self._turns.setdefault(address, asyncio.Semaphore(self._per_address))
        try:
            async with turns:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(
                    self._executor, self.users.authenticate, name, password
                )
        finally:
            self._pending[address] -= 1
            if self._pending[address] <= 0:
                del self._pending[address]
                del self._turns[address]
