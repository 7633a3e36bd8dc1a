"""An in-process gateway in front of in-process backends: the fast path for server and routing tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from mcp import Client, types
from mcp.server import MCPServer

from gateway.config import BackendConfig, GatewayConfig
from gateway.core import Gateway
from gateway.server import build_server


class Unreachable(OSError):
    """Stands in for a backend nobody can connect to."""


def config_for(prefixes: Mapping[str, str], **settings: Any) -> GatewayConfig:
    backends = [
        BackendConfig(name=name, prefix=prefix, url=f"http://{name}.invalid/mcp") for name, prefix in prefixes.items()
    ]
    return GatewayConfig(backends=tuple(backends), **settings)


@asynccontextmanager
async def running_gateway(
    servers: Mapping[str, MCPServer | None], prefixes: Mapping[str, str] | None = None, **settings: Any
) -> AsyncIterator[Gateway]:
    """Backends by name (``None`` = unreachable); prefixes default to the names."""

    async def connect(config: BackendConfig, stack: AsyncExitStack, hooks: Any) -> Any:
        server = servers[config.name]
        if server is None:
            raise Unreachable(f"cannot reach {config.name}")
        return server

    config = config_for(prefixes or {name: name for name in servers}, **settings)
    async with Gateway(config, connect) as gateway:
        yield gateway


def client(gateway: Gateway, *, name: str = "test-client", mode: str = "auto", **kwargs: Any) -> Client:
    """An SDK client connected in-process to the gateway's MCP server."""
    info = types.Implementation(name=name, version="1.0")
    return Client(build_server(gateway), mode=mode, client_info=info, **kwargs)  # type: ignore[arg-type]
