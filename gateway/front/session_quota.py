"""Admission of new 2025 sessions: a cap per principal, and a full table that sheds the largest holder's.

The SDK's session manager answers 503 to every new session once its table is full, whoever fills it, so one
caller that opens sessions and never ends them would lock every other client out until the idle timeout. This
layer sits directly around the SDK's ``/mcp`` endpoint and admits each request that would open a session first:

- if the table is full, the least recently used session of the principal holding the most (sessions it is still
  opening count too; the requester's own on a tie) is closed to make room, so a newcomer never meets the 503
  while someone holds more than it;
- once the new session is answered, the principal's least recently used sessions beyond
  ``max_sessions_per_principal`` are closed: a client that leaks sessions keeps working, within its share.

A closed session's id answers 404, as after its idle timeout, and its backend sessions close with it. Openings
still being answered count against the table, so concurrent ones cannot overfill it; and against their principal,
so a burst of them cannot push others' sessions out beyond the burster's own share. Should the largest holder's
sessions all be still opening, nothing is closed and the SDK may answer that opening with its 503.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import anyio
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.front.session_table import SessionTable, opens_session
from gateway.security.auth import principal_of

logger = logging.getLogger(__name__)


class SessionQuota:
    """Wraps the SDK's ``/mcp`` endpoint; see the module docstring."""

    def __init__(self, app: ASGIApp, table: SessionTable, per_principal: int, on_end: Callable[[str], None]) -> None:
        self._app = app
        self._table = table
        self._per_principal = per_principal
        self._on_end = on_end
        self._opening: Counter[str] = Counter()
        self._lock = anyio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not opens_session(scope):
            await self._app(scope, receive, send)
            return
        key = principal_of(scope).key
        async with self._lock:
            await self._make_room(key)
            self._opening[key] += 1
        pending = True

        async def answered(message: Message) -> None:
            nonlocal pending
            if message["type"] == "http.response.start" and pending:
                pending = False
                self._done(key)
                session = Headers(raw=message["headers"]).get("mcp-session-id")
                if message["status"] < 400 and session is not None:
                    await self._opened(session, key)
            await send(message)

        try:
            await self._app(scope, receive, answered)
        finally:
            if pending:
                self._done(key)

    async def _make_room(self, key: str) -> None:
        """Close sessions of the largest holders until the table has room for every opening, this one too."""
        capacity = self._table.capacity
        excess = 0 if capacity is None else self._table.size + self._opening.total() + 1 - capacity
        for _ in range(excess):
            holder = self._table.largest_holder(key, self._opening)
            if holder is None or not (held := self._table.held(holder)):
                return
            await self._close(held[0], holder, "the session table is full")

    async def _opened(self, session: str, key: str) -> None:
        """Note the new session as the principal's, and close its least recently used ones beyond its cap."""
        self._table.hold(session, key)
        held = [other for other in self._table.held(key) if other != session]
        for other in held[: max(0, len(held) + 1 - self._per_principal)]:
            await self._close(other, key, f"over its {self._per_principal} sessions")

    def _done(self, key: str) -> None:
        self._opening[key] -= 1
        if not self._opening[key]:
            del self._opening[key]

    async def _close(self, session: str, key: str, reason: str) -> None:
        await self._table.close(session)
        self._on_end(session)
        logger.info("closed the least recently used session of %s: %s", key, reason)
