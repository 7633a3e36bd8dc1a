"""The HTTP app ``mcp-gateway serve`` runs: the front's app, with the admin API mounted at ``/admin``."""

from __future__ import annotations

from starlette.routing import Mount

from gateway.core import Gateway
from gateway.front.app import GatewayApp, build_app
from gateway.operations.admin import admin_app
from gateway.operations.changes import change_routes
from gateway.operations.runtime import Runtime
from gateway.operations.servers import endpoint_routes


def build_operated_app(gateway: Gateway, *, host: str = "127.0.0.1", runtime: Runtime | None = None) -> GatewayApp:
    """``build_app`` plus the admin API, unless ``admin.enabled`` is off; with ``runtime``, the API also changes
    backends, virtual servers, composites and search, and the app serves what those changes make of them."""
    if runtime is None:
        return build_app(gateway, host=host, routes=_admin(gateway, None))
    app = build_app(gateway, host=host, routes=_admin(gateway, runtime))
    runtime.served = app.servers
    return app


def _admin(gateway: Gateway, runtime: Runtime | None) -> list[Mount]:
    if not gateway.config.admin.enabled:
        return []
    if runtime is None:
        return [Mount("/admin", app=admin_app(gateway))]
    routes = change_routes(runtime) + endpoint_routes(runtime.endpoints)
    return [Mount("/admin", app=admin_app(gateway, routes, runtime.source))]
