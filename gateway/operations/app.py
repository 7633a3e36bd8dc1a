"""The HTTP app ``mcp-gateway serve`` runs: the front's app, with the admin API mounted at ``/admin``."""

from __future__ import annotations

from starlette.routing import Mount

from gateway.core import Gateway
from gateway.front.app import GatewayApp, build_app
from gateway.operations.admin import admin_app


def build_operated_app(gateway: Gateway, *, host: str = "127.0.0.1") -> GatewayApp:
    """``build_app`` plus the admin API, unless ``admin.enabled`` is off."""
    routes = [Mount("/admin", app=admin_app(gateway))] if gateway.config.admin.enabled else []
    return build_app(gateway, host=host, routes=routes)
