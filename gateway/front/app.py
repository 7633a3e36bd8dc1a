"""The HTTP face of the gateway: ``/mcp`` (both protocol eras), ``/healthz``, ``/readyz`` and ``/metrics``.

Requests to ``/mcp`` pass the security layer (``http_security``) first: Host/Origin, authentication, body size
and depth, rate-limit admission. ``/healthz`` answers 200 while the process serves. ``/readyz`` answers 200 when
every backend is connected and 503 otherwise; either way it carries each backend's state, breaker, tool count and,
when it is not ready, the reason. ``/metrics`` is ``metrics_endpoint``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.catalogue.pages import ListCache
from gateway.cluster.sessions import SharedSessions
from gateway.composition.surface import Surface
from gateway.core import Gateway, InFlight
from gateway.front.fastpath import FastPath
from gateway.front.http_security import SecurityLayer
from gateway.front.metrics_endpoint import metrics_route
from gateway.front.portable_sessions import SessionCheck, SessionIssuer
from gateway.front.routing_headers import RoutingHeaders
from gateway.front.server import SESSION_HEADER, build_server
from gateway.front.session_quota import SessionQuota
from gateway.front.session_table import SessionTable
from gateway.sdk import wrap_endpoint

MCP_PATH = "/mcp"
# Seconds a 2025 session may sit unused before it ends (the SDK's default), on this replica and in the store.
SESSION_IDLE_TIMEOUT = 1800.0


class GatewayApp:
    """The ASGI app, plus what a graceful shutdown needs: ``cut_streams`` and ``idle``.

    2025 clients hold a GET stream open for notifications. It never ends by itself, so on shutdown it is cut
    at once. Calls (POSTs) are counted until their whole response is written, so a shutdown can wait for them.
    A DELETE ends a client's session, and with it the backend sessions opened for it.
    """

    def __init__(self, app: ASGIApp, on_session_end: Callable[[str], None]) -> None:
        self._app = app
        self._on_session_end = on_session_end
        self._streams: set[anyio.CancelScope] = set()
        self._calls = InFlight()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != MCP_PATH:
            await self._app(scope, receive, send)
        elif scope["method"] == "DELETE":
            answered = _Status(send)
            with self._calls.track():
                await self._app(scope, receive, answered)
            # Only a DELETE the session's owner was allowed to make ends it (not a refused or foreign one).
            if answered.ok and (session := Headers(scope=scope).get(SESSION_HEADER)):
                self._on_session_end(session)
        elif scope["method"] != "GET":
            with self._calls.track():
                await self._app(scope, receive, send)
        else:
            await self._stream(scope, receive, send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a GET stream that ``cut_streams`` can end; a cut stream still ends its response properly."""
        state = {"started": False, "ended": False}

        async def tracked(message: Message) -> None:
            state["started"] = state["started"] or message["type"] == "http.response.start"
            state["ended"] = message["type"] == "http.response.body" and not message.get("more_body", False)
            await send(message)

        with anyio.CancelScope() as stream:
            self._streams.add(stream)
            try:
                await self._app(scope, receive, tracked)
            finally:
                self._streams.discard(stream)
        if stream.cancelled_caught and state["started"] and not state["ended"]:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def cut_streams(self) -> None:
        for stream in list(self._streams):
            stream.cancel()

    async def idle(self) -> None:
        """Return once no call is being answered."""
        await self._calls.idle()


class _Status:
    """A ``send`` that remembers whether the response was a success."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.ok = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.ok = message["status"] < 400
        await self._send(message)


def build_app(
    gateway: Gateway,
    *,
    host: str = "127.0.0.1",
    routes: Sequence[BaseRoute] = (),
    surface: Surface | None = None,
) -> GatewayApp:
    """The HTTP app for a running gateway (the caller owns the gateway's lifecycle); ``routes`` are served
    beside ``/mcp`` (the admin API), behind no layer of the front's: they bring their own access control.
    ``surface``: what ``/mcp`` offers (by default the catalogue alone)."""

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        return JSONResponse(gateway.status(), status_code=200 if gateway.ready else 503)

    lists, sessions = ListCache(), SessionTable()
    shared = None
    if gateway.store is not None and gateway.keyring is not None:
        shared = SharedSessions(gateway.store, gateway.keyring, SESSION_IDLE_TIMEOUT)
    surface = surface if surface is not None else Surface(gateway)
    server = build_server(gateway, lists=lists, sessions=sessions, shared=shared, surface=surface)
    limits = gateway.config.security.limits
    max_body = limits.max_body_bytes
    # Host and Origin are checked by the security layer, against the configured allow-lists.
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    own = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
    if gateway.config.telemetry.metrics.enabled:
        own.append(metrics_route(gateway, sessions))
    app: Starlette = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        host=host,
        json_response=gateway.config.json_response,
        max_request_body_size=max_body,
        max_sessions=limits.max_client_sessions,
        session_idle_timeout=SESSION_IDLE_TIMEOUT,
        transport_security=security,
        custom_starlette_routes=own,
    )
    app.router.routes.extend(routes)  # the SDK takes plain routes only; a mounted app goes in here
    stamp = server.server_info_stamp
    sessions.bind(server.session_manager)

    def wrap(endpoint: ASGIApp) -> ASGIApp:
        issued = endpoint if shared is None else SessionIssuer(endpoint, sessions, shared, max_body)
        quota = SessionQuota(issued, sessions, limits.max_sessions_per_principal, gateway.router.end_session)
        sdk = RoutingHeaders(quota)
        served = (
            sdk
            if not gateway.config.fast_path
            else FastPath(sdk, gateway, surface, lists, sessions, stamp, security, max_body)
        )
        if shared is None:
            return served
        return SessionCheck(served, sessions, shared, gateway.subscriptions, gateway.router.end_session, gateway.bus)

    _wrap_endpoint(app, wrap)
    return GatewayApp(SecurityLayer(app, gateway, MCP_PATH), gateway.router.end_session)


def _wrap_endpoint(app: Starlette, wrap: Callable[[ASGIApp], ASGIApp]) -> None:
    """Put ``wrap`` directly around the SDK's ``/mcp`` endpoint, behind every middleware in front of it."""
    for route in app.router.routes:
        if isinstance(route, Route) and route.path == MCP_PATH and wrap_endpoint(route, wrap):
            return
    raise RuntimeError(f"the SDK app has no {MCP_PATH} endpoint to serve the fast path in front of")
