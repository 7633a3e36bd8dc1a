"""A thin ASGI layer that answers stateless (2026-07-28) ``tools/call`` and cached list pages itself (and hands 2025
sessions' list requests to ``gateway.front.session_lists``, which answers cached pages the same way).

On the SDK path a stateless call goes through the session manager, the modern transport, the runner, its dispatcher and
memory streams, and its answer is validated and dumped twice more; on this machine that was most of the gateway's CPU
once the upstream leg went raw. This layer sits where the SDK's ``/mcp`` endpoint sits (inside Starlette and any
middleware in front of it) and serves a request itself only when it is sure the SDK would accept it: the same
transport-security, Accept, routing-header, envelope and ``Mcp-Param-*`` checks run first, through the SDK's own
functions, and any request that fails one (or is anything but a 2026 ``tools/call`` that asks for no progress, no log
messages and continues no multi-round request, or a list page the SDK has already shaped for a catalogue nobody's rules
filter) goes to the SDK unchanged, its body replayed.

What it keeps from the SDK path: ``Surface.call_tool`` and the ``Guard`` (authorization, rate limits, validation,
pinning, audit, then ``Router.call_tool``) with the caller built as the SDK path builds it (``server.stateless_caller``:
the principal the security layer left in the ASGI scope), gateway errors through ``rpc_errors.to_mcp_error`` and the
redactor, any other failure through the SDK's own ladder (``modern_error_data``), each with the SDK's HTTP status per
code, the in-flight count for graceful shutdown, the result shaped by the protocol version's schema with the
``resultType`` and ``serverInfo`` stamp of 2026 results (so the bytes are the SDK's), and the response mode: plain JSON
in JSON mode; in SSE mode JSON when the answer comes within the SDK's deferral window, else an SSE stream with
keep-alive pings, and the call cancelled if the client goes away. With ``fast_path: false`` the app leaves this layer
out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import anyio
from mcp import MCPError, types
from mcp.server.runner import modern_error_data
from mcp.server.streamable_http import check_accept_headers
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    InboundModernRoute,
    classify_inbound_request,
    find_duplicated_routing_header,
    validate_mcp_param_headers,
)
from mcp_types import methods as wire
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from opentelemetry.trace import Span
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.catalogue.naming import Style, style_for_client
from gateway.catalogue.pages import ListCache, list_key
from gateway.composition.surface import Surface
from gateway.core import Gateway
from gateway.errors import GatewayError
from gateway.front.server import LISTS, SESSION_HEADER, redacted, stateless_caller
from gateway.front.session_lists import SessionLists
from gateway.front.session_table import SessionTable
from gateway.rpc_errors import to_mcp_error
from gateway.sdk import SSE_HEADERS, SSE_PING_INTERVAL
from gateway.security.auth import SCOPE_ADMITTED, principal_of
from gateway.telemetry import access_log
from gateway.telemetry.access_log import keep_traceparent
from gateway.telemetry.tracing import answered

logger = logging.getLogger(__name__)
# The SDK's modern transport waits this long for a handler before it commits to an SSE stream with pings.
SSE_DEFERRAL = SSE_PING_INTERVAL
# A call that asks for progress or log messages, or continues a multi-round request, is left to the SDK path,
# which relays them on the request's stream.
_RELAYED_META = ("progressToken", types.LOG_LEVEL_META_KEY)
_MULTI_ROUND = ("inputResponses", "requestState")
_JSON = [(b"content-type", b"application/json")]
_PING = b": ping\r\n\r\n"
_SESSION = SESSION_HEADER.encode()
_UNTRACED: AbstractContextManager[None] = nullcontext()
Answer = Callable[[], Awaitable[tuple[int, bytes]]]
Respond = Callable[[Scope, Receive, Send], Awaitable[None]]


class FastPath:
    """Wraps the SDK's ``/mcp`` endpoint; see the module docstring for what it serves itself."""

    def __init__(
        self,
        app: ASGIApp,
        gateway: Gateway,
        surface: Surface,
        lists: ListCache,
        sessions: SessionTable,
        stamp: dict[str, Any],
        security: TransportSecuritySettings | None,
        max_body: int,
    ) -> None:
        self._app = app
        self._gateway = gateway
        self._surface = surface
        self._lists = lists
        self._stamp = stamp
        self._security = TransportSecurityMiddleware(security)
        self._sessions = sessions
        self._session_lists = SessionLists(gateway, surface, lists, sessions, self._security)
        self._max_body = max_body
        self._json_mode = gateway.config.json_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        modern, session = _era(scope) if scope["type"] == "http" and scope["method"] == "POST" else (False, None)
        if not modern and (session is None or not self._sessions.knows(session)):
            await self._app(scope, receive, send)
            return
        request = Request(scope)
        body, complete = await _read_body(receive, self._max_body)
        if not complete:
            answer = None
        elif session is not None:
            answer = await self._session_lists.answer(request, session, body)
        else:
            answer = await self._answer(request, body)
        if answer is None:
            await self._app(scope, _replay(body, complete, receive), send)
        else:
            await answer(scope, receive, send)

    async def _answer(self, request: Request, body: bytes) -> Respond | None:
        """How to answer the request here, or ``None`` to leave it to the SDK."""
        if await self._security.validate_request(request, is_post=True) is not None:
            return None
        has_json, has_sse = check_accept_headers(request)
        if not has_json or not (self._json_mode or has_sse):
            return None
        message = _request(body)
        if message is None or find_duplicated_routing_header(request.headers.items()) is not None:
            return None
        route = classify_inbound_request(message, headers=request.headers)
        if not isinstance(route, InboundModernRoute):
            return None
        method, params, request_id = message["method"], message.get("params") or {}, message["id"]
        try:
            wire.validate_client_request(method, route.protocol_version, params)
        except (ValidationError, ValueError, KeyError):
            return None
        if method in LISTS:
            return self._cached_list(request, route, method, params, request_id)
        if method != "tools/call" or _relayed(params) or self._param_headers_rejected(request, params):
            return None

        async def call() -> tuple[int, bytes]:
            return await self._call_tool(request, route, params, request_id)

        return lambda scope, receive, send: self._respond(call, scope, receive, send)

    def _param_headers_rejected(self, request: Request, params: Mapping[str, Any]) -> bool:
        arguments = params.get("arguments") or {}
        if not arguments and not any(name.startswith("mcp-param-") for name in request.headers):
            return False
        schema = self._surface.input_schema(params["name"])
        return schema is not None and validate_mcp_param_headers(schema, arguments, request.headers) is not None

    def _cached_list(
        self, request: Request, route: InboundModernRoute, method: str, params: Mapping[str, Any], request_id: Any
    ) -> Respond | None:
        """A list page the SDK has already shaped for this generation, as bytes; ``None`` on a miss."""
        if self._surface.filters:
            return None
        key = list_key(method, self._style(route), route.protocol_version, params.get("cursor"))
        entry = self._lists.get(self._surface.generation, key)
        if entry is None:
            return None
        body = _envelope(request_id, entry.encoded)

        async def respond(scope: Scope, receive: Receive, send: Send) -> None:
            await _send_json(200, body, send)
            if access_log.enabled():
                access_log.served(method, principal_of(scope).key, "2026", None)

        tracing = self._gateway.tracing
        if tracing is None:
            return respond
        version = route.protocol_version
        return tracing.answering(respond, method, params, request_id, headers=request.headers, version=version)

    async def _call_tool(
        self, request: Request, route: InboundModernRoute, params: Mapping[str, Any], request_id: Any
    ) -> tuple[int, bytes]:
        gateway = self._gateway
        caller = stateless_caller(request, route.client_capabilities)
        keep_traceparent(request.headers.get("traceparent"))
        admitted = request.scope.get(SCOPE_ADMITTED) is True
        try:
            with gateway.inflight.track(), self._traced(request, route, params, request_id) as span:
                result = await self._surface.call_tool(
                    caller,
                    params["name"],
                    params.get("arguments"),
                    params.get("_meta"),
                    style=self._style(route),
                    request_id=request_id,
                    admitted=admitted,
                )
                if span is not None:
                    answered(span, result)
        except GatewayError as exc:
            return _error(request_id, redacted(gateway.redactor, to_mcp_error(exc)))
        except MCPError as exc:
            return _error(request_id, redacted(gateway.redactor, exc))
        except Exception as exc:
            return _error(request_id, MCPError.from_error_data(modern_error_data(exc)))
        try:
            wire_result = wire.serialize_server_result(
                "tools/call", route.protocol_version, result.model_dump(by_alias=True, mode="json", exclude_none=True)
            )
        except ValidationError:
            logger.exception("tools/call %r returned an invalid result", params.get("name"))
            return _error(request_id, MCPError(types.INTERNAL_ERROR, "Handler returned an invalid result"))
        wire_result.setdefault("resultType", "complete")
        meta = wire_result.get("_meta")
        if not isinstance(meta, dict) or meta.get(types.SERVER_INFO_META_KEY) is None:
            wire_result["_meta"] = {**(meta if isinstance(meta, dict) else {}), types.SERVER_INFO_META_KEY: self._stamp}
        return 200, _envelope(request_id, json.dumps(wire_result, separators=(",", ":")).encode())

    def _style(self, route: InboundModernRoute) -> Style:
        client = route.client_info.get("name") if isinstance(route.client_info, Mapping) else None
        return style_for_client(client if isinstance(client, str) else None, self._gateway.config.naming)

    def _traced(
        self, request: Request, route: InboundModernRoute, params: Mapping[str, Any], request_id: Any
    ) -> AbstractContextManager[Span | None]:
        """The call's SERVER span while tracing is on (``gateway.telemetry.tracing``)."""
        tracing = self._gateway.tracing
        if tracing is None:
            return _UNTRACED
        version = route.protocol_version
        return tracing.serving("tools/call", params, request_id, headers=request.headers, version=version)

    async def _respond(self, call: Answer, scope: Scope, receive: Receive, send: Send) -> None:
        """JSON, or in SSE mode an SSE stream once the answer takes longer than the SDK's deferral window."""
        if self._json_mode:
            await _send_json(*await call(), send)
            return
        outcome: list[tuple[int, bytes]] = []
        done = anyio.Event()

        async def run() -> None:
            outcome.append(await call())
            done.set()

        async def watch_disconnect(cancel: anyio.CancelScope) -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            cancel.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_disconnect, tg.cancel_scope)
            tg.start_soon(run)
            with anyio.move_on_after(SSE_DEFERRAL):
                await done.wait()
            if done.is_set():
                await _send_json(*outcome[0], send)
            else:
                await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
                while not done.is_set():
                    await send({"type": "http.response.body", "body": _PING, "more_body": True})
                    with anyio.move_on_after(SSE_DEFERRAL):
                        await done.wait()
                event = b"event: message\r\ndata: " + outcome[0][1] + b"\r\n\r\n"
                await send({"type": "http.response.body", "body": event, "more_body": False})
            tg.cancel_scope.cancel()


def _relayed(params: Mapping[str, Any]) -> bool:
    meta = params.get("_meta")
    asks = isinstance(meta, Mapping) and any(key in meta for key in _RELAYED_META)
    return asks or any(key in params for key in _MULTI_ROUND)


def _era(scope: Scope) -> tuple[bool, str | None]:
    """Whether the SDK takes the request as a 2026 one, else the 2025 session it names (as the SDK routes it:
    no ``MCP-Protocol-Version`` or a handshake-era one)."""
    version: str | None = None
    session: str | None = None
    for name, value in scope["headers"]:
        if name == b"mcp-protocol-version" and version is None:
            version = value.decode("latin-1")
        elif name == _SESSION and session is None:
            session = value.decode("latin-1")
    if version in MODERN_PROTOCOL_VERSIONS:
        return True, None
    return False, session if version is None or version in HANDSHAKE_PROTOCOL_VERSIONS else None


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The request body, or what was read of it before it passed ``limit`` (then ``complete`` is false)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(parts), False
        chunk = message.get("body", b"")
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(parts), False
        if not message.get("more_body", False):
            return b"".join(parts), True


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A ``receive`` that hands the SDK the body already read, then whatever the client sends next."""
    replayed = False

    async def replaying() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replaying


def _request(body: bytes) -> dict[str, Any] | None:
    """The body as a single JSON-RPC request the fast path may serve, else ``None``."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return None
    request_id, method, params = message.get("id"), message.get("method"), message.get("params")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int) or not isinstance(method, str):
        return None
    if params is not None and not isinstance(params, dict):
        return None
    if method == "tools/call" and not (isinstance(params, dict) and isinstance(params.get("name"), str)):
        return None
    return message


def _envelope(request_id: Any, result: bytes) -> bytes:
    return b'{"jsonrpc":"2.0","id":' + json.dumps(request_id).encode() + b',"result":' + result + b"}"


def _error(request_id: Any, error: MCPError) -> tuple[int, bytes]:
    """A JSON-RPC error with the HTTP status the SDK gives its code."""
    payload: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.data is not None:
        payload["data"] = error.data
    body = json.dumps({"jsonrpc": "2.0", "id": request_id, "error": payload}, separators=(",", ":")).encode()
    return ERROR_CODE_HTTP_STATUS.get(error.code, 200), body


async def _send_json(status: int, body: bytes, send: Send) -> None:
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
