"""The SDK's table of 2025 sessions, read in one place, and what the gateway learned of each session.

The fast path (``gateway.fastpath``) may answer a 2025 session's request only where the SDK would serve it: a
session its session manager holds, not terminated and not expiring, used with the credential that opened it.
SDK 2.3.0 has no public way to look a session up, so ``SessionTable._entry`` reads the manager's private
``_server_instances`` and ``_session_owners``; nothing else in the gateway reads them.

What a list page depends on besides the catalogue, the client's name style and the protocol version it
negotiated, is known to the SDK path only (``clientInfo`` arrives once, in ``initialize``). The ``edge``
middleware tells it here when a list request of the session passes (``learn``); it is kept with the session's
transport, held weakly, so it goes when the SDK drops the session, and forgotten when the client initializes
again.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Scope

from gateway.naming import Style


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

    def bind(self, manager: StreamableHTTPSessionManager) -> None:
        self._manager = manager

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
        idle = transport.idle_scope
        if transport.is_terminated or (idle is not None and idle.cancel_called) or _requestor(scope) != owner:
            return None
        learned = self._learned.get(transport)
        timeout = self._manager.session_idle_timeout
        if learned is not None and idle is not None and timeout is not None and idle.deadline != math.inf:
            idle.deadline = anyio.current_time() + timeout
        return learned

    def _entry(self, session_id: str) -> tuple[StreamableHTTPServerTransport, AuthorizationContext | None] | None:
        """The session's transport and the credential that opened it: the one read of the SDK's private table."""
        manager = self._manager
        transport = None if manager is None else manager._server_instances.get(session_id)
        if manager is None or transport is None:
            return None
        return transport, manager._session_owners.get(session_id)


def _requestor(scope: Scope) -> AuthorizationContext | None:
    """Who a request is, as the SDK's session manager compares it with a session's owner."""
    user = scope.get("user")
    return authorization_context(user) if isinstance(user, AuthenticatedUser) else None
