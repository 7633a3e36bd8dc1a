"""A missing routing header called missing, around the SDK's ``/mcp`` endpoint.

The SDK checks a 2026-07-28 request's ``Mcp-Method`` and ``Mcp-Name`` headers against its body and rejects a
request without them as it rejects one whose headers say something else (``-32020``, HTTP 400): "Mcp-Method header
does not match the request body's method", which sends a client looking for a wrong value where there is none.
This layer leaves every check, its order and its status to the SDK and changes only the wording of that answer,
and only when the header it names is absent from the request. It reads nothing of a request that carries both
headers, and of any other answer nothing but its status.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_NAME_HEADER, MCP_PROTOCOL_VERSION_HEADER
from mcp_types import HEADER_MISMATCH
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ROUTING = (MCP_METHOD_HEADER.encode(), MCP_NAME_HEADER.encode())
_VERSION = MCP_PROTOCOL_VERSION_HEADER.encode()
_MISMATCH = " header does not match "
_MISSING = " header is missing; it must repeat "


class RoutingHeaders:
    """Wraps the SDK's ``/mcp`` endpoint; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        missing = _missing(scope) if scope["type"] == "http" and scope["method"] == "POST" else set()
        await self._app(scope, receive, _Reworded(send, missing) if missing else send)


def _missing(scope: Scope) -> set[str]:
    """The routing headers a 2026 request lacks (lower case); none for a 2025 one, which has none to carry."""
    present = {name for name, _ in scope["headers"]}
    version = next((value for name, value in scope["headers"] if name == _VERSION), b"").decode("latin-1")
    if version not in MODERN_PROTOCOL_VERSIONS:
        return set()
    return {name.decode() for name in _ROUTING if name not in present}


class _Reworded:
    """A ``send`` that holds back a 400 answer whole and says "missing" where the SDK said "does not match" of a
    header the request lacks; any other answer passes as it comes."""

    def __init__(self, send: Send, missing: set[str]) -> None:
        self._send = send
        self._missing = missing
        self._start: Message | None = None
        self._body: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 400:
            self._start = message
            return
        if self._start is None or message["type"] != "http.response.body":
            await self._send(message)
            return
        self._body.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = _reworded(b"".join(self._body), self._missing)
        headers = [(k, v) for k, v in self._start["headers"] if k != b"content-length"]
        await self._send({**self._start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


def _reworded(body: bytes, missing: set[str]) -> bytes:
    try:
        answer: Any = json.loads(body)
        error = answer["error"]
        code, message = error["code"], error["message"]
    except (ValueError, TypeError, KeyError):
        return body
    header, found, rest = message.partition(_MISMATCH) if isinstance(message, str) else ("", "", "")
    if code != HEADER_MISMATCH or not found or header.lower() not in missing:
        return body
    error["message"] = header + _MISSING + rest
    return json.dumps(answer, separators=(",", ":")).encode()
