"""The admin API's read side: backends with their call statistics, reconnects, pinned-tool approvals, OpenAPI,
and the dashboard page (``/admin/``, a static page that polls the API).

Every route is under ``/admin`` behind ``AdminAccess``; the API itself is under ``/admin/api``, together with the
``extra_routes`` the caller adds (changing backends at run time), and ``/admin/openapi.json`` describes all of it
from the endpoints' docstrings (Starlette's ``SchemaGenerator``: the YAML after ``---``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.schemas import SchemaGenerator

from gateway.config import Transport
from gateway.core import Gateway
from gateway.errors import UnknownTarget
from gateway.operations.access import AdminAccess
from gateway.operations.errors import error
from gateway.upstream.backend import Upstream

API_PATH = "/admin/api"
# The dashboard's page: its own script and styles only, and never inside another site's frame (its buttons act).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "Cache-Control": "no-store",
}
INFO = {"openapi": "3.1.0", "info": {"title": "mcp-gateway admin API", "version": "1"}}


def admin_app(
    gateway: Gateway, extra_routes: Sequence[BaseRoute] = (), source: Callable[[str], str] = lambda name: "config"
) -> AdminAccess:
    """The app to mount at ``/admin``: the API and ``extra_routes`` under ``/api``, the OpenAPI document, and the
    dashboard. ``source`` says where a backend's definition comes from (the file, or a change at run time)."""
    api = api_routes(gateway, extra_routes, source)
    schema = SchemaGenerator(INFO).get_schema([Mount(API_PATH, routes=api)])

    async def openapi(request: Request) -> Response:
        return JSONResponse(schema)

    page = resources.files(__package__).joinpath("dashboard.html").read_bytes()

    async def dashboard(request: Request) -> Response:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    app = Starlette(
        routes=[
            Route("/", dashboard, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Mount("/api", routes=api),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    return AdminAccess(app, gateway)


def api_routes(
    gateway: Gateway, extra_routes: Sequence[BaseRoute] = (), source: Callable[[str], str] = lambda name: "config"
) -> list[BaseRoute]:
    """Every route of the API, relative to ``/admin/api``."""
    endpoints = _Endpoints(gateway, source)
    return [
        Route("/backends", endpoints.backends, methods=["GET"]),
        Route("/backends/{name}", endpoints.backend, methods=["GET"]),
        Route("/backends/{name}/reconnect", endpoints.reconnect, methods=["POST"]),
        Route("/pins", endpoints.pins, methods=["GET"]),
        Route("/pins/approve", endpoints.approve, methods=["POST"]),
        *extra_routes,
    ]


class _Endpoints:
    def __init__(self, gateway: Gateway, source: Callable[[str], str]) -> None:
        self._gateway = gateway
        self._source = source

    async def backends(self, request: Request) -> Response:
        """Every backend, with its state, counts, last error and call statistics.
        ---
        summary: List the backends
        responses:
          200:
            description: '{"backends": [Backend, ...]}'
        """
        return JSONResponse({"backends": [self._entry(b) for b in self._gateway.status()["backends"]]})

    async def backend(self, request: Request) -> Response:
        """One backend.
        ---
        summary: Show one backend
        parameters:
          - {name: name, in: path, required: true, schema: {type: string}}
        responses:
          200:
            description: Backend
          404:
            description: unknown_backend
        """
        name = request.path_params["name"]
        found = [b for b in self._gateway.status()["backends"] if b["name"] == name]
        return JSONResponse(self._entry(found[0])) if found else _unknown(name)

    async def reconnect(self, request: Request) -> Response:
        """Drop the backend's connection and open a new one at once (listing everything again).
        ---
        summary: Reconnect a backend
        parameters:
          - {name: name, in: path, required: true, schema: {type: string}}
        responses:
          202:
            description: '{"backend": name}: the new connection is being opened'
          404:
            description: unknown_backend
        """
        name = request.path_params["name"]
        upstream = self._gateway.upstreams.get(name)
        if upstream is None:
            return _unknown(name)
        upstream.reconnect()
        return JSONResponse({"backend": name}, status_code=202)

    async def pins(self, request: Request) -> Response:
        """Pinned tools whose definition changed, withheld until approved.
        ---
        summary: List the withheld tools
        responses:
          200:
            description: '{"pending": [{"tool", "backend", "fingerprint", "since"}, ...]}'
        """
        pending = [
            {"tool": name, "backend": self._owner(name), "fingerprint": fingerprint, "since": since.isoformat()}
            for name, fingerprint, since in self._gateway.guard.pins.pending()
        ]
        return JSONResponse({"pending": pending})

    async def approve(self, request: Request) -> Response:
        """Pin a withheld tool's current definition: it is listed again, and clients hear that the list changed.
        ---
        summary: Approve a withheld tool
        requestBody:
          required: true
          content:
            application/json:
              schema: {type: object, required: [tool], properties: {tool: {type: string}}}
        responses:
          200:
            description: '{"approved": name}'
          404:
            description: not_pending (the tool is not withheld)
          409:
            description: pinning_off
          422:
            description: invalid (no tool named)
        """
        tool = await _tool_named(request)
        if isinstance(tool, Response):
            return tool
        pins = self._gateway.guard.pins
        if not pins.enabled:
            return error(409, "pinning_off", "Tool pinning is off: set security.pinning.file")
        if tool not in pins.changed():
            return error(404, "not_pending", f"Tool {tool!r} is not withheld")
        await self._gateway.approve_tools([tool])
        return JSONResponse({"approved": tool})

    def _owner(self, tool: str) -> str | None:
        try:
            return self._gateway.catalog.resolve_tool(tool).backend
        except UnknownTarget:
            return None

    def _entry(self, status: dict[str, Any]) -> dict[str, Any]:
        """A status entry (already redacted) as the API shows a backend."""
        upstream = self._gateway.upstreams[status["name"]]
        entry = {key: value for key, value in status.items() if key not in ("stderr", "call_breakers")}
        entry.setdefault("protocol", None)
        entry.setdefault("error", upstream.error and self._gateway.redactor.text(upstream.error))
        entry["enabled"] = upstream.name not in self._gateway.disabled
        entry["source"] = self._source(upstream.name)
        entry["stderr_tail"] = _stderr(self._gateway, upstream)
        entry["calls"] = upstream.stats.summary()
        return entry


def _stderr(gateway: Gateway, upstream: Upstream) -> list[str]:
    if upstream.config.transport is not Transport.STDIO:
        return []
    return [gateway.redactor.text(line) for line in list(upstream.stderr_tail)]


async def _tool_named(request: Request) -> str | Response:
    """The ``tool`` of a ``{"tool": name}`` body, or the 422 saying what is wrong with it."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        return error(422, "invalid", "The body is not JSON", field="tool")
    tool = body.get("tool") if isinstance(body, dict) else None
    if not isinstance(tool, str) or not tool:
        return error(422, "invalid", 'Name the tool: {"tool": name}', field="tool")
    return tool


def _unknown(name: str) -> Response:
    return error(404, "unknown_backend", f"No backend is named {name!r}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    return error(exc.status_code, code, str(exc.detail), headers=exc.headers)
