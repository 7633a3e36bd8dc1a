"""The HTTP app ``mcp-gateway serve`` runs: the front's app, with the admin API mounted at ``/admin``."""

from __future__ import annotations

from starlette.routing import Mount

from gateway.core import Gateway
from gateway.front.app import GatewayApp, build_app
from gateway.operations.admin import admin_app
from gateway.operations.changes import change_routes
from gateway.operations.runtime import Runtime


def build_operated_app(gateway: Gateway, *, host: str = "127.0.0.1", runtime: Runtime | None = None) -> GatewayApp:
    """``build_app`` plus the admin API, unless ``admin.enabled`` is off; with ``runtime``, the API also changes
    backends."""
    if not gateway.config.admin.enabled:
        return build_app(gateway, host=host)
    admin = admin_app(gateway) if runtime is None else admin_app(gateway, change_routes(runtime), runtime.source)
    return build_app(gateway, host=host, routes=[Mount("/admin", app=admin)])
