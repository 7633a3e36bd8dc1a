"""The requests in flight to one backend, so that retiring it (removed or disabled at run time) can let them finish
and cut short those still running when its grace period ends, each with an error that says why."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio

from gateway.errors import BackendUnavailable

# How long the requests cut short get to unwind (a cancelled request ends at its next checkpoint).
CANCEL_WAIT = 5.0


class Pending:
    """Cancel scopes of the requests in flight to one backend."""

    def __init__(self, backend: str) -> None:
        self._backend = backend
        self._scopes: set[anyio.CancelScope] = set()
        self._idle = anyio.Event()
        self._idle.set()
        self.retired: str | None = None

    @property
    def count(self) -> int:
        return len(self._scopes)

    @contextmanager
    def track(self) -> Iterator[None]:
        """One request; refused at once after ``retire``, and ended with ``BackendUnavailable`` if retired meanwhile."""
        if self.retired is not None:
            raise BackendUnavailable(self._backend, self.retired)
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            self._idle = anyio.Event() if self._idle.is_set() else self._idle
            try:
                yield
            finally:
                self._scopes.discard(scope)
                if not self._scopes:
                    self._idle.set()
        if scope.cancelled_caught:
            raise BackendUnavailable(self._backend, self.retired)

    async def retire(self, reason: str, grace: float) -> None:
        """Wait up to ``grace`` seconds for the requests in flight, then cancel the rest; later ones are refused."""
        with anyio.move_on_after(grace):
            await self._idle.wait()
        self.retired = reason
        for scope in list(self._scopes):
            scope.cancel()
        with anyio.move_on_after(CANCEL_WAIT):
            await self._idle.wait()
