"""The HTTP face of the gateway: ``/mcp`` (both protocol eras), ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process serves. ``/readyz`` answers 200 when every backend is connected and
503 otherwise; both carry each backend's state, tool count and, when it is not ready, the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server import Server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.config import GatewayConfig
from gateway.core import Gateway
from gateway.server import build_server

MCP_PATH = "/mcp"


def build_app(config: GatewayConfig, *, host: str = "127.0.0.1") -> Starlette:
    """A Starlette app whose lifespan runs the whole gateway (backend connections included)."""
    gateway = Gateway(config)

    @asynccontextmanager
    async def lifespan(server: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        async with gateway:
            yield {}

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        return JSONResponse(gateway.status(), status_code=200 if gateway.ready else 503)

    server = build_server(gateway, lifespan)
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        host=host,
        json_response=config.json_response,
        custom_starlette_routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
    )
    app.state.gateway = gateway
    return app
