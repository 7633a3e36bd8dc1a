"""The SDK's table of 2025 sessions, read in one place, and what the gateway learned of each session.

The fast path (``gateway.front.fastpath``) may answer a 2025 session's request only where the SDK would serve it: a
session its session manager holds, not terminated and not expiring, used with the credential that opened it.
The SDK has no public way to look a session up, count or close sessions: ``SessionTable`` does each through
``gateway.sdk``. ``close`` ends a session as its idle timeout would and forgets it at once, so the SDK's count drops
before the next session is admitted.

Which principal opened each session (``hold``) is noted here too, so its sessions can be counted and the least
recently used one found: the SDK's idle countdown is the last use (a session serving a request is in use now).

What a list page depends on besides the catalogue, the client's name style and the protocol version it
negotiated, is known to the SDK path only (``clientInfo`` arrives once, in ``initialize``). The ``edge``
middleware tells it here when a list request of the session passes (``learn``); it is kept with the session's
transport, held weakly, so it goes when the SDK drops the session, and forgotten when the client initializes
again.
"""

from __future__ import annotations

import math
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.connection import Connection
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.types import InitializeRequestParams
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from gateway.catalogue.naming import Style
from gateway.sdk import (
    admit_session,
    discard_session,
    end_idle,
    idle_deadline,
    idle_ending,
    restart_idle,
    restore_session,
    serve_opening_request,
    session_count,
    session_entry,
)


@dataclass(frozen=True)
class Learned:
    """What the SDK path used to shape the session's list answers."""

    style: Style
    version: str


class SessionTable:
    """Live 2025 sessions as the SDK's session manager holds them, with what was learned of each."""

    def __init__(self) -> None:
        self._manager: StreamableHTTPSessionManager | None = None
        self._learned: weakref.WeakKeyDictionary[StreamableHTTPServerTransport, Learned] = weakref.WeakKeyDictionary()
        # Principal key -> the ids of the sessions it opened, oldest first; ended ones are dropped when counted.
        self._held: dict[str, dict[str, None]] = {}
        self._holdings = 0
        self._connections: weakref.WeakValueDictionary[str, Connection] = weakref.WeakValueDictionary()
        # Told of each session this table closes, so that no other replica serves it either.
        self.on_close: Callable[[str], Awaitable[None]] | None = None

    def bind(self, manager: StreamableHTTPSessionManager) -> None:
        self._manager = manager

    @property
    def size(self) -> int:
        """How many sessions the SDK holds, as its session limit counts them."""
        return 0 if self._manager is None else session_count(self._manager)

    @property
    def capacity(self) -> int | None:
        return None if self._manager is None else self._manager.max_sessions

    def hold(self, session_id: str, key: str) -> None:
        """Note that the principal ``key`` opened the session; ended sessions are swept once notes outgrow them."""
        self._held.setdefault(key, {})[session_id] = None
        self._holdings += 1
        if self._holdings > 2 * self.size + 64:
            for holder in list(self._held):
                self._live(holder)

    def every_held(self) -> list[str]:
        """Every session noted as held, whoever opened it (some may have ended since)."""
        return [session_id for sessions in self._held.values() for session_id in sessions]

    def held(self, key: str) -> list[str]:
        """The principal's open sessions, least recently used first."""
        return sorted(self._live(key), key=self._last_use)

    def largest_holder(self, prefer: str, opening: Mapping[str, int]) -> str | None:
        """The principal holding the most sessions, counting those it is ``opening`` (``prefer`` on a tie)."""
        counts = Counter(opening)
        counts.update({key: len(live) for key in list(self._held) if (live := self._live(key))})
        return max(counts, key=lambda key: (counts[key], key == prefer), default=None)

    async def close(self, session_id: str) -> None:
        """End a session now, as its idle timeout would: its id answers 404 at once, its server task ends."""
        entry = self._entry(session_id)
        if entry is None or self._manager is None:
            return
        transport = entry[0]
        end_idle(transport)
        await discard_session(self._manager, session_id, transport)
        if self.on_close is not None:
            await self.on_close(session_id)

    def holds(self, session_id: str) -> bool:
        return self._entry(session_id) is not None

    async def open(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serve an ``initialize`` that opens a session under ``session_id`` (the gateway's sealed id, not the
        SDK's random one); False, with nothing answered, when the table is full (the SDK answers that 503)."""
        transport = None if self._manager is None else admit_session(self._manager, session_id, _requestor(scope))
        if transport is None or self._manager is None:
            return False
        await serve_opening_request(self._manager, transport, scope, receive, send)
        return True

    async def restore(
        self, session_id: str, scope: Scope, params: InitializeRequestParams, version: str
    ) -> Connection | None:
        """Serve a session initialized on another replica here, owned by this request's credential; None when the
        table is full."""
        transport = None if self._manager is None else admit_session(self._manager, session_id, _requestor(scope))
        if transport is None or self._manager is None:
            return None
        connection = await restore_session(self._manager, transport, params, version)
        self.attach(session_id, connection)
        return connection

    def attach(self, session_id: str, connection: Connection) -> None:
        """Note the connection that serves the session here (held weakly: it goes with the session)."""
        self._connections[session_id] = connection

    def connection(self, session_id: str) -> Connection | None:
        return self._connections.get(session_id)

    def learn(self, session_id: str, style: Style, version: str) -> None:
        entry = self._entry(session_id)
        if entry is not None:
            self._learned[entry[0]] = Learned(style, version)

    def forget(self, session_id: str) -> None:
        entry = self._entry(session_id)
        if entry is not None:
            self._learned.pop(entry[0], None)

    def knows(self, session_id: str) -> bool:
        """Whether something was learned of this live session (cheap: no checks of the request)."""
        entry = self._entry(session_id)
        return entry is not None and entry[0] in self._learned

    def find(self, session_id: str, scope: Scope) -> Learned | None:
        """What was learned of the session a request names, if the SDK would let this request into it.

        A request restarts the session's idle countdown (unless another one holds it open), as the SDK's
        transport restarts it when a request ends; a request left to the SDK after this restarts it again.
        """
        entry = self._entry(session_id)
        if entry is None or self._manager is None:
            return None
        transport, owner = entry
        if transport.is_terminated or idle_ending(transport) or _requestor(scope) != owner:
            return None
        learned = self._learned.get(transport)
        timeout = self._manager.session_idle_timeout
        if learned is not None and timeout is not None:
            restart_idle(transport, timeout)
        return learned

    def _live(self, key: str) -> list[str]:
        """The principal's sessions the SDK still holds; the others are forgotten."""
        held = self._held.pop(key, {})
        live = {session: None for session in held if self._entry(session) is not None}
        self._holdings -= len(held) - len(live)
        if live:
            self._held[key] = live
        return list(live)

    def _last_use(self, session_id: str) -> float:
        """When the session was last used: its idle deadline (infinite while it serves a request), or minus
        infinity once it is ending anyway."""
        entry = self._entry(session_id)
        if entry is None or entry[0].is_terminated or idle_ending(entry[0]):
            return -math.inf
        return idle_deadline(entry[0])

    def _entry(self, session_id: str) -> tuple[StreamableHTTPServerTransport, AuthorizationContext | None] | None:
        """The session's transport and the credential that opened it, as the SDK's session manager holds them."""
        return None if self._manager is None else session_entry(self._manager, session_id)


def opens_session(scope: Scope) -> bool:
    """Whether the SDK would open a new 2025 session for this request: it names no session and no protocol version
    or a handshake-era one (a 2026 request is served without a session)."""
    headers = Headers(scope=scope)
    version = headers.get(MCP_PROTOCOL_VERSION_HEADER)
    return MCP_SESSION_ID_HEADER not in headers and (version is None or version in HANDSHAKE_PROTOCOL_VERSIONS)


def _requestor(scope: Scope) -> AuthorizationContext | None:
    """Who a request is, as the SDK's session manager compares it with a session's owner."""
    user = scope.get("user")
    return authorization_context(user) if isinstance(user, AuthenticatedUser) else None
