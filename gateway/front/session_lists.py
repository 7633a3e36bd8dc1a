"""Cached list pages for 2025 sessions, written as the SDK's session transport would write them.

On the SDK path every page of a 2025 session's list goes through the session transport, the runner and its
memory streams, and the cached answer is dumped with pydantic and framed by sse-starlette again on every request
(for a 1,000-tool page, about 7 ms of CPU). ``SessionLists`` answers such a request itself only when the SDK
would serve it and the answer is already cached: the session is live and the credential owns it
(``gateway.front.session_table``), the same transport-security, Accept and Content-Type checks pass, the body parses
and validates as the transport parses it, the params validate for the session's protocol version, no rule
filters anybody's lists, and the page was shaped by the SDK path for this session's name style and version.
The response carries the same status, headers and body the SDK writes: JSON in JSON mode, else a one-event SSE
stream. Anything else goes to the SDK.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pydantic_core
from mcp.server.streamable_http import check_accept_headers
from mcp.server.transport_security import TransportSecurityMiddleware
from mcp_types import JSONRPCRequest, jsonrpc_message_adapter
from mcp_types import methods as wire
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from gateway.catalogue.pages import Cached, ListCache, list_key
from gateway.composition.surface import Surface
from gateway.core import Gateway
from gateway.front.server import LISTS
from gateway.front.session_table import Learned, SessionTable
from gateway.security.auth import principal_of
from gateway.telemetry import access_log

Respond = Callable[[Scope, Receive, Send], Awaitable[None]]
_EVENT = b"event: message\r\ndata: "
_EVENT_END = b"\r\n\r\n"


class SessionLists:
    """Answers cached list pages of 2025 sessions; see the module docstring."""

    def __init__(
        self,
        gateway: Gateway,
        surface: Surface,
        lists: ListCache,
        table: SessionTable,
        security: TransportSecurityMiddleware,
    ) -> None:
        self._gateway = gateway
        self._surface = surface
        self._lists = lists
        self._table = table
        self._security = security
        self._json_mode = gateway.config.json_response

    async def answer(self, request: Request, session_id: str, body: bytes) -> Respond | None:
        """How to answer the request here, or ``None`` to leave it to the SDK."""
        message = _list_request(body)
        if message is None or self._surface.filters:
            return None
        learned = self._table.find(session_id, request.scope)
        if learned is None or not await self._admitted(request):
            return None
        entry = self._page(message, learned)
        if entry is None:
            return None
        envelope = b'{"jsonrpc":"2.0","id":' + pydantic_core.to_json(message.id) + b',"result":'
        payload = envelope + entry.session_encoded + b"}"
        sid = session_id.encode("latin-1")
        send_answer = _send_json if self._json_mode else _send_event

        async def respond(scope: Scope, receive: Receive, send: Send) -> None:
            await send_answer(payload, sid, send)
            if access_log.enabled():
                access_log.served(message.method, principal_of(scope).key, "2025", session_id)

        tracing = self._gateway.tracing
        if tracing is None:
            return respond
        headers, version = request.headers, learned.version
        return tracing.answering(
            respond, message.method, message.params, message.id, headers=headers, session=session_id, version=version
        )

    async def _admitted(self, request: Request) -> bool:
        """The session transport's own checks: transport security, and Accept and Content-Type for this mode."""
        if await self._security.validate_request(request, is_post=True) is not None:
            return False
        has_json, has_sse = check_accept_headers(request)
        if not has_json or not (self._json_mode or has_sse):
            return False
        content_type = request.headers.get("content-type", "")
        return any(part.strip() == "application/json" for part in content_type.split(";")[0].split(","))

    def _page(self, message: JSONRPCRequest, learned: Learned) -> Cached | None:
        """The answer the SDK path gave this page for the session's name style and version, if the params are
        valid for that version."""
        params = message.params or {}
        cursor = params.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            return None
        try:
            wire.validate_client_request(message.method, learned.version, params)
        except (ValidationError, ValueError, KeyError):
            return None
        key = list_key(message.method, learned.style, learned.version, cursor)
        return self._lists.get(self._surface.generation, key)


def _list_request(body: bytes) -> JSONRPCRequest | None:
    """The body as the session transport reads it, if it is a single list request (anything else is left to the
    SDK before it is validated: most of a session's requests are calls)."""
    try:
        raw = pydantic_core.from_json(body)
        if not isinstance(raw, dict) or not isinstance(raw.get("method"), str) or raw["method"] not in LISTS:
            return None
        message = jsonrpc_message_adapter.validate_python(raw, by_name=False)
    except (ValueError, ValidationError):
        return None
    return message if isinstance(message, JSONRPCRequest) else None


async def _send_json(payload: bytes, session_id: bytes, send: Send) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"mcp-session-id", session_id),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _send_event(payload: bytes, session_id: bytes, send: Send) -> None:
    headers = [
        (b"cache-control", b"no-cache, no-transform"),
        (b"connection", b"keep-alive"),
        (b"content-type", b"text/event-stream"),
        (b"mcp-session-id", session_id),
        (b"x-accel-buffering", b"no"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _EVENT + payload + _EVENT_END, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
