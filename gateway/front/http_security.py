"""The HTTP security layer in front of ``/mcp``: everything decided before a JSON-RPC message is handled.

In order: the Host and Origin headers against their allow-lists (421 and 403: DNS-rebinding protection), and a
Host that is no host at all (400: URLs are built from it); authentication (401 with the ``WWW-Authenticate``
header of the MCP authorization spec); the body's size (413) and JSON nesting depth (400), read once and replayed
to the app; and, for a call, the rate-limit budget (429 with ``Retry-After``). Every refusal carries a JSON-RPC
error body. What passes carries its principal in the ASGI scope (``auth.SCOPE_PRINCIPAL``) and, when credentials
are configured, the SDK's ``user`` too, so the SDK binds each 2025 session to the credential that opened it. With
JWTs configured it also serves the RFC 9728 protected-resource metadata at
``/.well-known/oauth-protected-resource[/mcp]``, behind the same Host and Origin checks, as is ``/metrics``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.shared.auth import ProtectedResourceMetadata
from mcp.types import INVALID_REQUEST
from pydantic import AnyHttpUrl, ValidationError
from starlette.authentication import AuthCredentials
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.composition.surface import Surface
from gateway.config import AuthConfig
from gateway.core import Gateway
from gateway.errors import UNAUTHORIZED, InvalidToken, RateLimited, Unauthorized
from gateway.front.metrics_endpoint import METRICS_PATH
from gateway.front.session_table import opens_session
from gateway.rpc_errors import to_mcp_error
from gateway.security.auth import SCOPE_ADMITTED, SCOPE_PRINCIPAL, access_token
from gateway.security.guard import CALLS
from gateway.security.limits import too_deep

METADATA = "/.well-known/oauth-protected-resource"
# A Host header as RFC 9110 allows it: a name or IPv4 address, or a bracketed IPv6 one, and an optional port.
HOST = re.compile(r"(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


class SecurityLayer:
    """ASGI middleware guarding the MCP paths (``/mcp`` and each virtual server's), each with the surface it
    serves; other paths (``/healthz``, ``/readyz``) pass untouched."""

    def __init__(self, app: ASGIApp, gateway: Gateway, surfaces: Mapping[str, Surface]) -> None:
        security = gateway.config.security
        self._app = app
        self._surfaces = surfaces
        self._guard = gateway.guard
        self._hosts = Allowed(security.http.allowed_hosts)
        self._origins = Allowed(security.http.allowed_origins)
        self._limits = security.limits
        self._auth = security.auth
        self._first = next(iter(surfaces))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
        elif self._documented(scope["path"]) is not None and scope["method"] in ("GET", "HEAD"):
            await (self._front(scope) or self._metadata(scope))(scope, receive, send)
        elif scope["path"] == METRICS_PATH:
            await (self._front(scope) or self._app)(scope, receive, send)
        elif scope["path"] not in self._surfaces:
            await self._app(scope, receive, send)
        else:
            await self._guarded(scope, receive, send)

    def _front(self, scope: Scope) -> Response | None:
        """The refusal of a request from somewhere it may not come from: a Host not allowed (421, DNS
        rebinding) or not a host at all (400, so no URL is ever built from it), an Origin not allowed (403)."""
        headers = Headers(scope=scope)
        host = headers.get("host")
        if not self._hosts.admits(host):
            return _refusal(421, INVALID_REQUEST, "Host not allowed")
        if host is not None and not HOST.fullmatch(host):
            return _malformed_host()
        origin = headers.get("origin")
        if origin is not None and not self._origins.admits(origin):
            return _refusal(403, INVALID_REQUEST, "Origin not allowed")
        return None

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = self._front(scope)
        if refused is not None:
            return await refused(scope, receive, send)
        headers = Headers(scope=scope)
        try:
            principal = await self._guard.authenticator.authenticate(headers.get("authorization"))
        except Unauthorized as exc:
            return await self._unauthorized(scope, exc)(scope, receive, send)
        scope = {**scope, SCOPE_PRINCIPAL: principal}
        if self._auth.enabled:
            scope["user"] = AuthenticatedUser(access_token(principal))
            scope["auth"] = AuthCredentials(sorted(principal.scopes))
        if scope["method"] == "POST":
            try:
                read = await self._read(scope, receive, headers)
            except _ClientGone:
                return  # nobody to answer, and a partial body must not pass for a whole one
            if isinstance(read, Response):
                return await read(scope, receive, send)
            receive = _replay(read, receive)
        elif (refused := await self._budget(scope, None, None, None)) is not None:
            return await refused(scope, receive, send)
        await self._app(scope, receive, send)

    async def _read(self, scope: Scope, receive: Receive, headers: Headers) -> bytes | Response:
        """The body, or the refusal: too large, too deep, or a call or session opening over its budget."""
        limit = self._limits.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return _refusal(413, INVALID_REQUEST, f"Request body larger than {limit} bytes")
        body = await _body(receive, limit)
        if body is None:
            return _refusal(413, INVALID_REQUEST, f"Request body larger than {limit} bytes")
        try:
            message = json.loads(body)
        except RecursionError:
            return _refusal(400, INVALID_REQUEST, "JSON nested too deeply")
        except ValueError:
            message = None  # not JSON: the SDK answers with its parse error
        if too_deep(message, self._limits.max_json_depth):
            return _refusal(400, INVALID_REQUEST, f"JSON nested deeper than {self._limits.max_json_depth} levels")
        fields = message if isinstance(message, dict) else {}
        method = fields.get("method") if "id" in fields else None
        call = method if isinstance(method, str) else None
        return await self._budget(scope, call, fields.get("params"), fields.get("id")) or body

    async def _budget(self, scope: Scope, method: str | None, params: Any, request_id: Any) -> Response | None:
        """A call, or a request that opens a session, spends the principal's budget first: 429 once it is spent."""
        principal = scope[SCOPE_PRINCIPAL]
        request_id = request_id if isinstance(request_id, str | int) else None
        try:
            if method is not None and method in CALLS:
                named = self._catalogued(scope, method, params)
                scope[SCOPE_ADMITTED] = await self._guard.admit(principal, method, named, request_id)
            elif opens_session(scope):
                await self._guard.admit_session(principal)
        except RateLimited as exc:
            retry = {"Retry-After": str(math.ceil(exc.retry_after))}
            return _refusal(429, to_mcp_error(exc).code, str(exc), request_id, retry, {"retryAfter": exc.retry_after})
        return None

    def _catalogued(self, scope: Scope, method: str, params: Any) -> Any:
        """A call's parameters with the tool named as the catalogue names it (a virtual server may rename it), so
        the tool's own budget is spent."""
        name = params.get("name") if method == "tools/call" and isinstance(params, dict) else None
        if not isinstance(name, str):
            return params
        known = self._surfaces[scope["path"]].catalogue_name(name)
        return params if known == name else {**params, "name": known}

    def _unauthorized(self, scope: Scope, exc: Unauthorized) -> Response:
        """401 with ``WWW-Authenticate: Bearer``, naming the metadata document when there is one (RFC 9728)."""
        metadata = None
        if self._auth.jwt:
            resource = self._resource(scope)
            if resource is None:
                return _malformed_host()
            metadata = str(build_resource_metadata_url(resource))
        return _refusal(401, UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": challenge(exc, metadata)})

    def _metadata(self, scope: Scope) -> Response:
        jwt = self._auth.jwt
        assert jwt is not None
        resource = self._resource(scope)
        if resource is None:
            return _malformed_host()
        # Validated from strings: the model keeps a path-less issuer without a trailing slash (exact comparison).
        document = ProtectedResourceMetadata.model_validate(
            {"resource": str(resource), "authorization_servers": [jwt.issuer], "resource_name": "mcp-gateway"}
        )
        return JSONResponse(document.model_dump(mode="json", exclude_none=True))

    def _resource(self, scope: Scope) -> AnyHttpUrl | None:
        path: str = scope["path"]
        return resource_url(scope, self._auth, self._documented(path) or path)

    def _documented(self, path: str) -> str | None:
        """The MCP path whose protected-resource metadata (RFC 9728) ``path`` is, with JWT authentication: each MCP
        path's (a virtual server's added while serving too) under the bare document, which is the first's (``/mcp``)."""
        if not self._auth.jwt or not path.startswith(METADATA):
            return None
        if path == METADATA:
            return self._first
        mcp = path.removeprefix(METADATA)
        return mcp if mcp in self._surfaces else None


def resource_url(scope: Scope, auth: AuthConfig, path: str) -> AnyHttpUrl | None:
    """The public URL of the MCP path: configured, or as this request addressed it (``None`` when its Host,
    though shaped like one, makes no URL)."""
    if auth.resource_url:
        return AnyHttpUrl(auth.resource_url)
    host = Headers(scope=scope).get("host") or "localhost"
    try:
        return AnyHttpUrl(f"{scope.get('scheme', 'http')}://{host}{path}")
    except ValidationError:
        return None


def challenge(exc: Unauthorized, metadata_url: str | None = None) -> str:
    """The ``WWW-Authenticate`` value of a 401: Bearer, why (RFC 6750), and the metadata document (RFC 9728)."""
    parts = ['realm="mcp-gateway"']
    if isinstance(exc, InvalidToken):
        parts.append('error="invalid_token"')  # RFC 6750: no error code when no bearer credential was sent
    if metadata_url is not None:
        parts.append(f'resource_metadata="{metadata_url}"')
    return "Bearer " + ", ".join(parts)


class Allowed:
    """An allow-list of Host or Origin values: exact, ``value:*`` for any port, or ``*`` for anything."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._any = "*" in patterns
        self._exact = {p for p in patterns if not p.endswith(":*")}
        self._any_port = tuple(p[:-1] for p in patterns if p.endswith(":*"))

    def admits(self, value: str | None) -> bool:
        if self._any:
            return True
        if not value:
            return False
        return value in self._exact or any(
            value.startswith(prefix) and value[len(prefix) :].isdigit() for prefix in self._any_port
        )


def _malformed_host() -> Response:
    return _refusal(400, INVALID_REQUEST, "Malformed Host header: expected a host name or address and a port")


def _refusal(
    status: int,
    code: int,
    message: str,
    request_id: str | int | None = None,
    headers: dict[str, str] | None = None,
    data: Any = None,
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": error}, status_code=status, headers=headers)


class _ClientGone(Exception):
    """The client disconnected before its request body was complete."""


async def _body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or ``None`` once it passes ``limit`` bytes (the rest is never read); raises
    ``_ClientGone`` when the client leaves first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then waits on the real one (for disconnects)."""
    pending = [body]

    async def replayed() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed
