"""Who may use the admin API: principals with the admin role, or, with no authentication configured, loopback.

The same Host and Origin allow-lists as ``/mcp`` come first (a browser page on another site must not reach a
loopback admin API through DNS rebinding), then the same authenticator: no credential, or a bad one, is a 401 with
the same ``WWW-Authenticate`` challenge; a principal without ``admin.role`` is a 403. Without authentication every
caller is the same anonymous principal, so only where the request comes from can tell an operator: a client not on
a loopback address gets a 403. Refusals carry no data beyond the reason. The dashboard's page, static and holding no
data, needs only the Host and Origin checks.
"""

from __future__ import annotations

import ipaddress

from mcp.server.auth.routes import build_resource_metadata_url
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.core import Gateway
from gateway.errors import Unauthorized
from gateway.front.app import MCP_PATH
from gateway.front.http_security import HOST, Allowed, challenge, resource_url
from gateway.operations.errors import error
from gateway.security.auth import SCOPE_PRINCIPAL

# The dashboard's page holds no data (its script asks the API, with the operator's credential), so a browser may
# load it before it has one to send.
PUBLIC = frozenset({"/"})


class AdminAccess:
    """ASGI middleware in front of the whole admin app: every request passes it or is refused."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        security = gateway.config.security
        self._app = app
        self._hosts = Allowed(security.http.allowed_hosts)
        self._origins = Allowed(security.http.allowed_origins)
        self._auth = security.auth
        self._authenticator = gateway.guard.authenticator
        self._role = gateway.config.admin.role

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        refused = await self._refusal(scope)
        if refused is not None:
            await refused(scope, receive, send)
            return
        await self._app(scope, receive, send)

    async def _refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        host = headers.get("host")
        if not self._hosts.admits(host):
            return error(421, "host_not_allowed", "Host not allowed")
        if host is not None and not HOST.fullmatch(host):
            return error(400, "malformed_host", "Malformed Host header: expected a host name or address and a port")
        origin = headers.get("origin")
        if origin is not None and not self._origins.admits(origin):
            return error(403, "origin_not_allowed", "Origin not allowed")
        if _route_path(scope) in PUBLIC:
            return None
        if not self._auth.enabled:
            if not _loopback(scope):
                return error(403, "forbidden", "Without authentication the admin API answers loopback clients only")
            return None
        try:
            principal = await self._authenticator.authenticate(headers.get("authorization"))
        except Unauthorized as exc:
            return self._unauthorized(scope, exc)
        if self._role not in principal.roles:
            return error(403, "forbidden", f"The admin API needs the {self._role!r} role")
        scope[SCOPE_PRINCIPAL] = principal
        return None

    def _unauthorized(self, scope: Scope, exc: Unauthorized) -> Response:
        """401 with the challenge ``/mcp`` sends, naming the same protected-resource metadata."""
        metadata = None
        if self._auth.jwt is not None and (resource := resource_url(scope, self._auth, MCP_PATH)) is not None:
            metadata = str(build_resource_metadata_url(resource))
        return error(401, "unauthorized", str(exc), headers={"WWW-Authenticate": challenge(exc, metadata)})


def _route_path(scope: Scope) -> str:
    """The path below the mount point (``/admin``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if path.startswith(root) else path


def _loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False
