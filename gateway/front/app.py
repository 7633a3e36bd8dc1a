"""The HTTP face of the gateway: ``/mcp`` (both protocol eras), each virtual server's ``/servers/<name>/mcp``,
``/healthz``, ``/readyz`` and ``/metrics``.

The virtual servers are live (``VirtualServers``): a request to ``/servers/<name>/mcp`` finds its endpoint when it
arrives, so a server added, changed or removed while serving (the admin API, a reload) is served, changed or gone
at once, and no other endpoint's sessions are touched.

Requests to an MCP path pass the security layer (``http_security``) first: Host/Origin, authentication, body size
and depth, rate-limit admission. ``/healthz`` answers 200 while the process serves. ``/readyz`` answers 200 when
every backend is connected and 503 otherwise; either way it carries each backend's state, breaker, tool count and,
when it is not ready, the reason. ``/metrics`` is ``metrics_endpoint``'s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Container, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import anyio.abc
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.catalogue.catalog import Kind
from gateway.catalogue.pages import ListCache
from gateway.cluster.sessions import SharedSessions
from gateway.composition.offered import Offered, main_offer, virtual_servers
from gateway.composition.surface import Surface
from gateway.config import GatewayConfig
from gateway.core import Gateway, InFlight
from gateway.front.fastpath import FastPath
from gateway.front.http_security import SecurityLayer
from gateway.front.metrics_endpoint import metrics_route
from gateway.front.portable_sessions import SessionCheck, SessionIssuer
from gateway.front.routing_headers import RoutingHeaders
from gateway.front.server import SESSION_HEADER, build_server
from gateway.front.session_quota import SessionQuota
from gateway.front.session_table import SessionTable
from gateway.principal import Principal
from gateway.sdk import wrap_endpoint
from gateway.security.auth import principal_of

MCP_PATH = "/mcp"
SERVERS_PATH = "/servers"
# Host and Origin are checked by the security layer, against the configured allow-lists.
_SECURITY = TransportSecuritySettings(enable_dns_rebinding_protection=False)
# Seconds a 2025 session may sit unused before it ends (the SDK's default), on this replica and in the store.
SESSION_IDLE_TIMEOUT = 1800.0


class GatewayApp:
    """The ASGI app, plus what a graceful shutdown needs: ``cut_streams`` and ``idle``.

    2025 clients hold a GET stream open for notifications. It never ends by itself, so on shutdown it is cut
    at once. Calls (POSTs) are counted until their whole response is written, so a shutdown can wait for them.
    A DELETE ends a client's session, and with it the backend sessions opened for it.
    """

    def __init__(
        self,
        app: ASGIApp,
        on_session_end: Callable[[str], None],
        paths: Container[str] = frozenset({MCP_PATH}),
        servers: VirtualServers | None = None,
    ) -> None:
        """``paths``: the MCP paths (live: a virtual server's comes and goes with it); ``servers``: the virtual
        servers, to change while serving."""
        self._app = app
        self._on_session_end = on_session_end
        self._paths = paths
        self.servers = servers
        self._streams: set[anyio.CancelScope] = set()
        self._calls = InFlight()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self._paths:
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


@dataclass(frozen=True)
class VirtualServer:
    """A virtual server's endpoint: what it offers, who may use it (anyone else gets the 404 of a path that does
    not exist), and the instructions its clients get."""

    surface: Surface
    admits: Callable[[Principal], bool]
    instructions: str | None = None


def server_path(name: str) -> str:
    return f"{SERVERS_PATH}/{name}{MCP_PATH}"


def build_app(
    gateway: Gateway,
    *,
    host: str = "127.0.0.1",
    routes: Sequence[BaseRoute] = (),
    surface: Surface | None = None,
    servers: Mapping[str, VirtualServer] | None = None,
) -> GatewayApp:
    """The HTTP app for a running gateway (the caller owns the gateway's lifecycle); ``routes`` are served
    beside ``/mcp`` (the admin API), behind no layer of the front's: they bring their own access control.
    ``surface``: what ``/mcp`` offers; ``servers``: the virtual servers, each served at ``/servers/<name>/mcp``
    exactly as ``/mcp`` is, with a session manager of its own (both by default as the configuration says)."""

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        return JSONResponse(gateway.status(), status_code=200 if gateway.ready else 503)

    shared = None
    if gateway.store is not None and gateway.keyring is not None:
        shared = SharedSessions(gateway.store, gateway.keyring, SESSION_IDLE_TIMEOUT)
    offer = main_offer(gateway.config)
    main = _Endpoint(gateway, host, shared, surface if surface is not None else offer.surface(gateway))
    own = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
    if gateway.config.telemetry.metrics.enabled:
        own.append(metrics_route(gateway, main.sessions))
    app = main.app(MCP_PATH, own)
    app.router.routes.extend(routes)  # the SDK takes plain routes only; a mounted app goes in here
    surfaces = {MCP_PATH: main.surface}
    live = VirtualServers(gateway, host, shared, surfaces, None if surface is not None else offer.basis)
    app.router.routes.append(Route(server_path("{name}"), live))
    if servers is None:
        for name, offered in virtual_servers(gateway.config).items():
            live.mount(name, _virtual(gateway, offered), offered.basis)
    else:
        for name, virtual in servers.items():
            live.mount(name, virtual)
    _run_too(app, live)
    return GatewayApp(SecurityLayer(app, gateway, surfaces), gateway.router.end_session, surfaces.keys(), live)


@dataclass
class _Mounted:
    """A virtual server being served: what it is now, its endpoint, and the event that stops its sessions."""

    server: VirtualServer
    endpoint: _Endpoint
    basis: object
    route: Route | None = None
    stop: anyio.Event = field(default_factory=anyio.Event)

    def admits(self, principal: Principal) -> bool:
        return self.server.admits(principal)


class VirtualServers:
    """The virtual servers served now, by name; the ASGI app of every ``/servers/<name>/mcp``.

    Each has an endpoint of its own (SDK server, session manager, session table, list cache), its session manager
    run in a task group of the app's lifespan. ``offer`` makes them what a configuration says: a server added is
    served at once; one changed keeps its sessions, its surface set anew, unless its instructions changed (told
    at initialization, so only new sessions could hear them: it starts afresh); one removed ends its sessions and
    its path answers 404 after, as one that never existed.
    """

    def __init__(
        self,
        gateway: Gateway,
        host: str,
        shared: SharedSessions | None,
        surfaces: dict[str, Surface],
        main_basis: object,
    ) -> None:
        """``surfaces``: each MCP path's surface, ``/mcp``'s among them, kept up to date here (the security layer
        reads it); ``main_basis``: what ``/mcp``'s offer was made from (``None``: a surface of the caller's)."""
        self._gateway, self._host, self._shared = gateway, host, shared
        self._surfaces = surfaces
        self._main_basis = main_basis
        self._mounted: dict[str, _Mounted] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    def __contains__(self, name: str) -> bool:
        return name in self._mounted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        mounted = self._mounted.get(scope["path_params"]["name"])
        if mounted is None or mounted.route is None:
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
        else:
            await mounted.route.handle(scope, receive, send)

    def sessions(self, name: str) -> int:
        return self._mounted[name].endpoint.sessions.size

    def surface(self, name: str) -> Surface:
        return self._mounted[name].server.surface

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the servers' session managers, and those of servers added meanwhile, while the block runs."""
        async with anyio.create_task_group() as tg:
            for mounted in self._mounted.values():
                await tg.start(_run, mounted)
            self._tg = tg
            try:
                yield
            finally:
                self._tg = None
                tg.cancel_scope.cancel()

    def mount(self, name: str, server: VirtualServer, basis: object = None) -> _Mounted:
        """Serve ``server`` at ``/servers/<name>/mcp`` (once the app's lifespan runs its session manager)."""
        path = server_path(name)
        endpoint = _Endpoint(self._gateway, self._host, self._shared, server.surface, server.instructions)
        mounted = _Mounted(server, endpoint, basis)
        mounted.route = _route(endpoint.app(path, [], partial(_Admission, admits=mounted.admits)), path)
        self._mounted[name] = mounted
        self._surfaces[path] = server.surface
        return mounted

    async def offer(self, config: GatewayConfig) -> None:
        """Serve what ``config`` says each endpoint offers, ``/mcp`` included; clients hear that lists changed."""
        changed = False
        main = main_offer(config)
        if self._main_basis is not None and main.basis != self._main_basis:
            main.onto(self._surfaces[MCP_PATH])
            self._main_basis, changed = main.basis, True
        wanted = virtual_servers(config)
        for name in [name for name in self._mounted if name not in wanted]:
            await self.remove(name)
            changed = True
        for name, offered in wanted.items():
            mounted = self._mounted.get(name)
            if mounted is not None and mounted.basis == offered.basis:
                continue
            changed = True
            if mounted is not None and mounted.server.instructions == offered.instructions:
                offered.onto(mounted.server.surface)
                mounted.server = _virtual(self._gateway, offered, mounted.server.surface)
                mounted.basis = offered.basis
                continue
            if mounted is not None:
                await self.remove(name)
            await self._add(name, _virtual(self._gateway, offered), offered.basis)
        if changed:
            await self._gateway.notifier.changed(set(Kind))

    async def _add(self, name: str, server: VirtualServer, basis: object) -> None:
        mounted = self.mount(name, server, basis)
        if self._tg is not None:
            await self._tg.start(_run, mounted)

    async def remove(self, name: str) -> None:
        """Stop serving the server: its path answers 404 from now on, its sessions end."""
        mounted = self._mounted.pop(name)
        del self._surfaces[server_path(name)]
        sessions = mounted.endpoint.sessions
        for session in sessions.every_held():
            await sessions.close(session)
            self._gateway.router.end_session(session)
        mounted.stop.set()


def _virtual(gateway: Gateway, offered: Offered, surface: Surface | None = None) -> VirtualServer:
    assert offered.view is not None
    built = surface if surface is not None else offered.surface(gateway)
    return VirtualServer(built, offered.view.admits, offered.instructions)


async def _run(mounted: _Mounted, *, task_status: anyio.abc.TaskStatus[None]) -> None:
    async with mounted.endpoint.server.session_manager.run():
        task_status.started()
        await mounted.stop.wait()


class _Endpoint:
    """One MCP endpoint: its SDK server and session table, its list answers, and the layers around the SDK's."""

    def __init__(
        self,
        gateway: Gateway,
        host: str,
        shared: SharedSessions | None,
        surface: Surface,
        instructions: str | None = None,
    ) -> None:
        self.gateway, self.host, self.shared, self.surface = gateway, host, shared, surface
        self.lists, self.sessions = ListCache(), SessionTable()
        self.server = build_server(
            gateway, lists=self.lists, sessions=self.sessions, shared=shared, surface=surface, instructions=instructions
        )

    def app(self, path: str, routes: list[Route], outer: Callable[[ASGIApp], ASGIApp] | None = None) -> Starlette:
        """The SDK's app serving this endpoint at ``path`` (plus ``routes``), its endpoint wrapped in ours (and
        in ``outer`` around them)."""
        gateway, limits = self.gateway, self.gateway.config.security.limits
        app: Starlette = self.server.streamable_http_app(
            streamable_http_path=path,
            host=self.host,
            json_response=gateway.config.json_response,
            max_request_body_size=limits.max_body_bytes,
            max_sessions=limits.max_client_sessions,
            session_idle_timeout=SESSION_IDLE_TIMEOUT,
            transport_security=_SECURITY,
            custom_starlette_routes=routes,
        )
        self.sessions.bind(self.server.session_manager)
        wrap = self._wrap if outer is None else lambda endpoint: outer(self._wrap(endpoint))
        _route(app, path, wrap)
        return app

    def _wrap(self, endpoint: ASGIApp) -> ASGIApp:
        gateway, sessions, shared = self.gateway, self.sessions, self.shared
        limits = gateway.config.security.limits
        max_body, stamp = limits.max_body_bytes, self.server.server_info_stamp
        issued = endpoint if shared is None else SessionIssuer(endpoint, sessions, shared, max_body)
        quota = SessionQuota(issued, sessions, limits.max_sessions_per_principal, gateway.router.end_session)
        sdk = RoutingHeaders(quota)
        served = (
            sdk
            if not gateway.config.fast_path
            else FastPath(sdk, gateway, self.surface, self.lists, sessions, stamp, _SECURITY, max_body)
        )
        if shared is None:
            return served
        return SessionCheck(served, sessions, shared, gateway.subscriptions, gateway.router.end_session, gateway.bus)


class _Admission:
    """A virtual server's access rule, after authentication: anyone it does not admit gets the 404 of a path that
    does not exist, as a denied tool is answered as an unknown one."""

    def __init__(self, app: ASGIApp, admits: Callable[[Principal], bool]) -> None:
        self._app = app
        self._admits = admits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._admits(principal_of(scope)):
            await self._app(scope, receive, send)
        else:
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)


def _run_too(app: Starlette, servers: VirtualServers) -> None:
    """Run the virtual servers' session managers for as long as the app's own lifespan runs."""
    lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def together(running: Any) -> AsyncIterator[Any]:
        async with lifespan(running) as state, servers.running():
            yield state

    app.router.lifespan_context = together


def _route(app: Starlette, path: str, wrap: Callable[[ASGIApp], ASGIApp] | None = None) -> Route:
    """The SDK's route of the endpoint at ``path``; ``wrap`` put directly around its endpoint, behind every
    middleware in front of it."""
    for route in app.router.routes:
        if isinstance(route, Route) and route.path == path and (wrap is None or wrap_endpoint(route, wrap)):
            return route
    raise RuntimeError(f"the SDK app has no {path} endpoint to serve the fast path in front of")
