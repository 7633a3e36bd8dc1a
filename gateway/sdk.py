"""The MCP SDK's internals the gateway relies on, reached here and nowhere else (written against mcp 2.3.0).

Each name below is one private attribute, module or constant of the SDK, or a public one whose use depends on how
the SDK works inside, and its docstring says why no public API serves. ``tests/test_sdk.py`` checks each against
the installed SDK; after an upgrade it fails naming the function here that needs a new way.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, TypeVar

import anyio
import httpx2
from anyio.abc import TaskStatus
from mcp import Client
from mcp.client._transport import TransportStreams
from mcp.server import Server
from mcp.server._streamable_http_modern import _SSE_HEADERS, _SSE_PING_INTERVAL
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.connection import Connection
from mcp.server.context import ServerMiddleware
from mcp.server.runner import serve_connection
from mcp.server.session import ServerSession
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.transport_context import TransportContext
from mcp.types import InitializeRequestParams

__all__ = [
    "SSE_HEADERS",
    "SSE_PING_INTERVAL",
    "TransportStreams",
    "admit_session",
    "connection_of",
    "discard_session",
    "end_idle",
    "idle_deadline",
    "idle_ending",
    "joined_session",
    "number_requests",
    "replace_middleware",
    "restart_idle",
    "restore_session",
    "serve_opening_request",
    "session_count",
    "session_entry",
    "wrap_endpoint",
]

LifespanT = TypeVar("LifespanT")
# ASGI's shapes, spelled without Starlette (which only the front imports).
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
logger = logging.getLogger(__name__)

SSE_PING_INTERVAL: float = _SSE_PING_INTERVAL
"""How long the SDK's 2026 transport waits for a handler before it commits to an SSE stream, and then between
pings; the fast path answers the same way. Only the SDK's private constant says it."""

SSE_HEADERS: list[tuple[bytes, bytes]] = list(_SSE_HEADERS)
"""The headers of the SDK's 2026 SSE responses, which the fast path sends alike; private in the SDK."""


def connection_of(session: ServerSession) -> Connection:
    """The 2025 connection a request came on. A ``ServerSession`` lives for one request; the connection it wraps is
    what outlives it, and ``ServerSession`` keeps it only in the private ``_connection``."""
    return session._connection


def replace_middleware(server: Server[LifespanT], middleware: list[ServerMiddleware[LifespanT]]) -> None:
    """Serve every request through ``middleware`` alone, in place of the SDK's default (OpenTelemetry). The
    ``Server.middleware`` list is public but marked provisional in the SDK: its signature may change in 2.x."""
    server.middleware = middleware


def wrap_endpoint(route: Any, wrap: Callable[[StreamableHTTPASGIApp], object]) -> bool:
    """Put ``wrap`` directly around the SDK's ``StreamableHTTPASGIApp`` under ``route``, inside the middleware the
    SDK nests around it (each holding the next as ``app``); whether it was found. ``Server.streamable_http_app``
    has no hook for a layer between its authentication and its endpoint."""
    holder = route
    for _ in range(8):
        inner = holder.app
        if isinstance(inner, StreamableHTTPASGIApp):
            holder.app = wrap(inner)
            return True
        holder = inner
    return False


def session_count(manager: StreamableHTTPSessionManager) -> int:
    """How many 2025 sessions the manager holds, as its ``max_sessions`` counts them: the size of its private
    ``_server_instances``; the manager has no public count."""
    return len(manager._server_instances)


def session_entry(
    manager: StreamableHTTPSessionManager, session_id: str
) -> tuple[StreamableHTTPServerTransport, AuthorizationContext | None] | None:
    """A live session's transport and the credential that opened it, from the manager's private
    ``_server_instances`` and ``_session_owners``; the manager has no public look-up by session id."""
    transport = manager._server_instances.get(session_id)
    if transport is None:
        return None
    return transport, manager._session_owners.get(session_id)


async def discard_session(
    manager: StreamableHTTPSessionManager, session_id: str, transport: StreamableHTTPServerTransport
) -> None:
    """Terminate a session and forget it at once through the manager's private ``_discard_session``, so the
    manager's count drops before the next session is admitted; the manager has no public way to close one."""
    await manager._discard_session(session_id, transport)


def end_idle(transport: StreamableHTTPServerTransport) -> None:
    """End a session's idle countdown now, as its idle timeout would. ``idle_scope`` is public; that cancelling it
    ends the session is how the manager runs the session, not an API."""
    if transport.idle_scope is not None:
        transport.idle_scope.cancel()


def idle_ending(transport: StreamableHTTPServerTransport) -> bool:
    """Whether the session's idle countdown has fired (or was ended), so the session is going."""
    return transport.idle_scope is not None and transport.idle_scope.cancel_called


def idle_deadline(transport: StreamableHTTPServerTransport) -> float:
    """When the session's idle countdown fires: infinite while a request holds it open (the transport's own
    convention for ``idle_scope.deadline``) or for a session without one."""
    return math.inf if transport.idle_scope is None else transport.idle_scope.deadline


def restart_idle(transport: StreamableHTTPServerTransport, timeout: float) -> None:
    """Restart the session's idle countdown, as the transport does when a request ends, unless a request holds it
    open (an infinite deadline). The transport restarts it only around requests it serves itself."""
    idle = transport.idle_scope
    if idle is not None and idle.deadline != math.inf:
        idle.deadline = anyio.current_time() + timeout


def admit_session(
    manager: StreamableHTTPSessionManager, session_id: str, owner: AuthorizationContext | None
) -> StreamableHTTPServerTransport | None:
    """Register a 2025 session under an id the gateway chose (sealed, see ``gateway.cluster.sessions``), as the
    manager's private ``_admit_session`` registers one under a random id; None at the manager's session limit. The
    manager has no hook for the id it issues."""
    if manager.max_sessions is not None and len(manager._server_instances) >= manager.max_sessions:
        return None
    transport = StreamableHTTPServerTransport(
        mcp_session_id=session_id,
        is_json_response_enabled=manager.json_response,
        event_store=manager.event_store,
        security_settings=manager.security_settings,
        retry_interval=manager.retry_interval,
        idle_timeout=manager.session_idle_timeout,
    )
    if owner is not None:
        manager._session_owners[session_id] = owner
    manager._server_instances[session_id] = transport
    return transport


async def serve_opening_request(
    manager: StreamableHTTPSessionManager,
    transport: StreamableHTTPServerTransport,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Serve the ``initialize`` that opens an admitted session, through the manager's private
    ``_serve_opening_request`` (which starts the session's server task and discards a session not established)."""
    await manager._serve_opening_request(transport, scope, receive, send)


async def restore_session(
    manager: StreamableHTTPSessionManager,
    transport: StreamableHTTPServerTransport,
    params: InitializeRequestParams,
    version: str,
) -> Connection:
    """Serve an admitted session that was initialized elsewhere (another replica) as if its ``initialize`` had
    been answered here: the manager's server task, started in its private ``_task_group`` with its private
    ``_lifespan_state``, over a connection born initialized with ``params`` and ``version``, the session discarded
    (``_discard_session``) however it ends. The manager's own task always begins with a handshake."""
    session_id = transport.mcp_session_id
    assert session_id is not None and manager._task_group is not None

    async def run(*, task_status: TaskStatus[Connection] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            async with transport.connect() as (read_stream, write_stream):
                dispatcher: JSONRPCDispatcher[TransportContext] = JSONRPCDispatcher(
                    read_stream, write_stream, inline_methods=frozenset({"initialize"})
                )
                connection = Connection(dispatcher, protocol_version=version, session_id=session_id)
                connection.client_params = params
                connection.initialized.set()
                task_status.started(connection)
                idle_scope = transport.idle_scope or anyio.CancelScope()
                with idle_scope:
                    lifespan = manager._lifespan_state
                    await serve_connection(manager.app, dispatcher, connection=connection, lifespan_state=lifespan)
        except Exception:
            logger.exception("a restored session crashed")
        finally:
            await manager._discard_session(session_id, transport)

    connection: Connection = await manager._task_group.start(run)
    return connection


def joined_session(
    inner: httpx2.AsyncBaseTransport, session_id: str, result: Mapping[str, Any]
) -> httpx2.AsyncBaseTransport:
    """An HTTP transport under the SDK's streamable-HTTP client that joins a backend session opened elsewhere (by
    another replica) instead of opening one: the client's ``initialize`` is answered here with ``result`` (that
    session's ``InitializeResult``) under ``session_id``, its ``notifications/initialized`` is taken here, and its
    GET stream is refused here (405); everything else goes through ``inner`` to the backend, in that session.

    The SDK's client has no way to resume a session: an ``mcp.Client`` always begins with the handshake, and its
    transport takes its session id only from the answer to its own ``initialize`` (a private step), then opens the
    GET stream once it sends ``notifications/initialized``. The SDK's server allows one GET stream per session,
    which the replica that opened the session holds, so the joined client has none. Close the client with
    ``terminate_on_close=False``: the session is not this connection's to end.
    """
    return _Joined(inner, session_id, dict(result))


def number_requests(client: Client, prefix: str) -> None:
    """Make ``client`` number its requests ``<prefix>1``, ``<prefix>2``, ... rather than 1, 2, ...

    A client joined to a backend session another replica opened shares that session, and the SDK's server keys a
    request's response stream by its id within the session: two replicas both counting from 1 would have their
    responses routed to each other's streams, or a stream ended by the other's clean-up ("SSE stream ended without
    a response"). The SDK mints ids from a private counter (``JSONRPCDispatcher._allocate_id``) and lets a caller
    choose an id only per request, which the high-level calls do not pass through. ``prefix`` must not be digits
    only: the server compares ids as strings.
    """
    dispatcher = client.session._dispatcher
    if not isinstance(dispatcher, JSONRPCDispatcher):
        raise TypeError(f"a client session over {type(dispatcher).__name__} has no request counter to replace")
    counter = itertools.count(1)
    dispatcher._allocate_id = lambda: f"{prefix}{next(counter)}"  # type: ignore[method-assign,assignment,return-value]


class _Joined(httpx2.AsyncBaseTransport):
    def __init__(self, inner: httpx2.AsyncBaseTransport, session_id: str, result: dict[str, Any]) -> None:
        self._inner = inner
        self._session_id = session_id
        self._result = result
        self._joined = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":
            return httpx2.Response(405, request=request)
        if request.method == "POST" and not self._joined:
            message = json.loads(request.content)
            if message.get("method") == "initialize":
                answer = {"jsonrpc": "2.0", "id": message.get("id"), "result": self._result}
                return httpx2.Response(200, headers={"mcp-session-id": self._session_id}, json=answer, request=request)
            if message.get("method") == "notifications/initialized":
                self._joined = True
                return httpx2.Response(202, request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
