"""2025 sessions that any replica serves: sealed ids issued at ``initialize``, checked and restored on each request.

Only with a shared store configured (``cluster.store``); without one the SDK issues and keeps sessions as before.
Two layers around the SDK's ``/mcp`` endpoint (``gateway.cluster.sessions`` says what an id carries and what the
store keeps):

- ``SessionIssuer``, next to the endpoint: an ``initialize`` that opens a session is read, and the session is
  opened under a sealed id carrying its claims instead of the SDK's random one; its record is written before the
  answer leaves, so the id is good on every replica once the client has it.
- ``SessionCheck``, outermost (before the fast path can answer from a cache): a 2025 request naming a session
  restarts its record's time to live. No record (ended by a DELETE on any replica, expired, or never issued): a
  copy held here is closed and the SDK answers 404. A record for a session not held here, whose id opens with a
  configured key and names this request's principal: the session is restored here, born initialized with its
  claims, and its subscriptions taken up again; then the SDK serves the request as if it had always been here.
  While a GET stream is open the record is refreshed now and then, since the SDK counts an open stream as use, and
  the copy here follows the subscriptions the session made on other replicas, whose updates go out on this stream.
  A successful DELETE removes the record, as does a session the table closes here (the per-principal quota).

If the store cannot be reached, sessions held here go on (fail open: a DELETE made elsewhere meanwhile is not seen
until it heals), while one held elsewhere is not restored (fail closed: 503, since it may have been ended).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from mcp import types
from mcp.server.connection import Connection
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.cluster.bus import Bus
from gateway.cluster.sessions import Claims, Record, SharedSessions
from gateway.errors import GatewayError, StoreUnavailable
from gateway.front.session_table import SessionTable, opens_session
from gateway.routing.subscriptions import Subscriptions
from gateway.security.auth import principal_of

logger = logging.getLogger(__name__)
SESSION_HEADER = "mcp-session-id"
RESTORE_TIMEOUT = 10.0
# Seconds between looks at the record of a session whose GET stream is open (at most a third of its TTL).
KEEP_ALIVE = 10.0
# The bus topic on which a replica says a session ended (by its digest), so that the others close their copies.
ENDED = "session-ended"


class SessionIssuer:
    """Opens each new 2025 session under a sealed id; see the module docstring."""

    def __init__(self, app: ASGIApp, table: SessionTable, shared: SharedSessions, max_body: int) -> None:
        self._app = app
        self._table = table
        self._shared = shared
        self._max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not opens_session(scope):
            await self._app(scope, receive, send)
            return
        body = await _body(receive, self._max_body)
        replay = _replay(body, receive)
        claims = _claims(body, principal_of(scope).key)
        if claims is None:
            await self._app(scope, replay, send)
            return
        session_id = self._shared.mint(claims)

        async def recorded(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                try:
                    await self._shared.opened(session_id)
                except StoreUnavailable as exc:
                    logger.warning("a new session is not shared, so only this replica serves it: %s", exc)
            await send(message)

        if not await self._table.open(session_id, scope, replay, recorded):
            await self._app(scope, replay, send)


class SessionCheck:
    """Checks each 2025 request's session against the store, restoring one opened elsewhere; see the module
    docstring."""

    def __init__(
        self,
        app: ASGIApp,
        table: SessionTable,
        shared: SharedSessions,
        subscriptions: Subscriptions,
        on_end: Callable[[str], None],
        bus: Bus,
    ) -> None:
        self._app = app
        self._table = table
        self._shared = shared
        self._subscriptions = subscriptions
        self._on_end = on_end
        self._bus = bus
        self._restoring: dict[str, anyio.Event] = {}
        self._told: set[str] = set()
        table.on_close = self._ended
        bus.on(ENDED, self._ended_elsewhere)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = Headers(scope=scope).get(SESSION_HEADER) if scope["type"] == "http" else None
        if session_id is None or opens_session(scope) or not _handshake_era(scope):
            await self._app(scope, receive, send)
            return
        try:
            record = await self._shared.touch(session_id)
        except StoreUnavailable as exc:
            if not self._table.holds(session_id):
                await _unavailable(scope, receive, send, exc)
                return
            logger.warning("serving a session without checking it in the shared store: %s", exc)
        else:
            await self._settle(session_id, record, scope)
        if scope["method"] == "GET":
            await self._listen(session_id, scope, receive, send)
            return
        if scope["method"] != "DELETE":
            await self._app(scope, receive, send)
            return
        answered = False

        async def watched(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = message["status"] < 400
            await send(message)

        await self._app(scope, receive, watched)
        if answered:
            with anyio.CancelScope(shield=True):
                await self._ended(session_id)

    async def _listen(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a GET stream, keeping the session's record alive meanwhile (an open stream is use, as the SDK
        counts it, though no request restarts the record's time to live) and this copy's subscriptions in step."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._keep_alive, session_id)
            try:
                await self._app(scope, receive, send)
            finally:
                tg.cancel_scope.cancel()

    async def _keep_alive(self, session_id: str) -> None:
        """Refresh the record now and then, and follow the subscriptions the session made on other replicas: the
        updates they bring must go out on this stream."""
        while True:
            try:
                record = await self._shared.touch(session_id)
            except StoreUnavailable as exc:
                logger.warning("could not keep a listening session alive in the shared store: %s", exc)
            else:
                connection = self._table.connection(session_id)
                if record is not None and connection is not None:
                    await self._follow(connection, record)
            await anyio.sleep(min(self._shared.ttl / 3, KEEP_ALIVE))

    async def _follow(self, connection: Connection, record: Record) -> None:
        """Subscribe this replica's copy of a session to what the session subscribed to anywhere, and no more."""
        held, wanted = self._subscriptions.held_by(connection), set(record.subscriptions)
        await self._resubscribe(connection, Record(tuple(wanted - held)))
        if held - wanted:
            await self._subscriptions.discard(connection, held - wanted)

    async def _settle(self, session_id: str, record: Record | None, scope: Scope) -> None:
        """Make the table agree with the store before the SDK looks the session up."""
        if session_id in self._restoring:
            with anyio.move_on_after(RESTORE_TIMEOUT):
                await self._restoring[session_id].wait()
        if record is None:
            if self._table.holds(session_id):
                await self._table.close(session_id)  # ended elsewhere: the store already says so
                self._on_end(session_id)
            return
        claims = self._shared.claims(session_id)
        if self._table.holds(session_id) or claims is None or claims.principal != principal_of(scope).key:
            return
        self._restoring[session_id] = done = anyio.Event()
        try:
            connection = await self._restore(session_id, claims, scope)
            if connection is not None:
                await self._resubscribe(connection, record)
        finally:
            del self._restoring[session_id]
            done.set()

    async def _restore(self, session_id: str, claims: Claims, scope: Scope) -> Connection | None:
        try:
            params = types.InitializeRequestParams(
                protocol_version=claims.version,
                capabilities=types.ClientCapabilities.model_validate(claims.capabilities),
                client_info=types.Implementation.model_validate(claims.client_info),
            )
        except ValidationError:
            return None
        connection = await self._table.restore(session_id, scope, params, claims.version)
        if connection is not None:
            self._table.hold(session_id, claims.principal)
            logger.info("restored a session opened on another replica")
        return connection

    async def _resubscribe(self, connection: Connection, record: Record) -> None:
        for uri in record.subscriptions:
            try:
                await self._subscriptions.add(connection, uri)
            except GatewayError as exc:
                logger.info("a restored session's subscription to %s was not taken up: %s", uri, exc)

    async def _ended(self, session_id: str) -> None:
        if session_id in self._told:  # ended elsewhere, which has told the store and the others
            self._told.discard(session_id)
            return
        try:
            await self._shared.ended(session_id)
        except StoreUnavailable as exc:
            logger.warning("a session ended here may still be served elsewhere until it expires: %s", exc)
        await self._bus.publish(ENDED, {"session": self._shared.digest(session_id)})

    async def _ended_elsewhere(self, body: Mapping[str, Any]) -> None:
        """Close this replica's copy of a session another replica ended (a DELETE, its quota), at once rather than
        at its next request here."""
        digest = body.get("session")
        for session_id in self._table.every_held():
            if self._shared.digest(session_id) == digest and self._table.holds(session_id):
                self._told.add(session_id)
                await self._table.close(session_id)
                self._on_end(session_id)


def _claims(body: bytes, principal: str) -> Claims | None:
    """What an ``initialize`` request fixes for its session (the version as the SDK negotiates it); None for any
    other body, which the SDK refuses as it would."""
    try:
        message = json.loads(body)
        if not isinstance(message, dict) or message.get("method") != "initialize":
            return None
        params = types.InitializeRequestParams.model_validate(message.get("params") or {}, by_name=False)
    except (ValueError, ValidationError):
        return None
    requested = params.protocol_version
    version = requested if requested in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
    return Claims(
        principal=principal,
        version=version,
        client_info=params.client_info.model_dump(by_alias=True, mode="json", exclude_none=True),
        capabilities=params.capabilities.model_dump(by_alias=True, mode="json", exclude_none=True),
        created=round(time.time(), 3),
    )


def _handshake_era(scope: Scope) -> bool:
    version = Headers(scope=scope).get("mcp-protocol-version")
    return version is None or version in HANDSHAKE_PROTOCOL_VERSIONS


async def _body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if not message.get("more_body", False) or size > limit:
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then whatever the client sends next (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _unavailable(scope: Scope, receive: Receive, send: Send, exc: StoreUnavailable) -> None:
    logger.warning("cannot restore a session opened elsewhere: %s", exc)
    error = {"code": types.INTERNAL_ERROR, "message": "the session store is unavailable; retry shortly"}
    response = JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=503)
    await response(scope, receive, send)
