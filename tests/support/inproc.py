"""An in-process gateway in front of in-process backends: the fast path for server and routing tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx2
import uvicorn
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.server import MCPServer
from starlette.types import ASGIApp, Message

from gateway.cli.running import server_config
from gateway.config import BackendConfig, GatewayConfig
from gateway.core import Gateway
from gateway.front.app import MCP_PATH, build_app
from gateway.front.server import build_server
from gateway.principal import Principal
from tests.support.procs import free_port

LOCAL = "http://127.0.0.1:8000"
# The tests read canonical names (``ops/search``), which the gateway shows only to clients that show names to a
# person; any other client, the SDK's default ``mcp`` included, gets strict ones (``gateway.catalogue.naming``).
READER = "mcp-inspector"
READER_INFO = types.Implementation(name=READER, version="1.0")


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


def client(
    gateway: Gateway,
    *,
    name: str = READER,
    mode: str = "auto",
    principal: Principal | None = None,
    **kwargs: Any,
) -> Client:
    """An SDK client connected in-process to the gateway's MCP server, calling as ``principal``."""
    info = types.Implementation(name=name, version="1.0")
    return Client(build_server(gateway, principal), mode=mode, client_info=info, **kwargs)  # type: ignore[arg-type]


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run an ASGI app's lifespan (startup before the block, shutdown after), as a server would."""
    to_app, app_inbox = anyio.create_memory_object_stream[Message](4)
    app_outbox, from_app = anyio.create_memory_object_stream[Message](4)
    async with to_app, app_inbox, app_outbox, from_app, anyio.create_task_group() as tg:
        tg.start_soon(app, {"type": "lifespan", "asgi": {"version": "3.0"}}, app_inbox.receive, app_outbox.send)
        await to_app.send({"type": "lifespan.startup"})
        assert (await from_app.receive())["type"] == "lifespan.startup.complete"
        try:
            yield
        finally:
            await to_app.send({"type": "lifespan.shutdown"})
            await from_app.receive()


@asynccontextmanager
async def http(gateway: Gateway, **headers: str) -> AsyncIterator[httpx2.AsyncClient]:
    """Plain HTTP to the gateway's ASGI app, in process (no socket); ``url`` is ``/mcp``."""
    app = build_app(gateway)
    transport = httpx2.ASGITransport(app=app)
    async with lifespan(app), httpx2.AsyncClient(transport=transport, base_url=LOCAL, headers=headers) as session:
        yield session


@asynccontextmanager
async def serving(gateway: Gateway) -> AsyncIterator[str]:
    """The gateway's HTTP app on a real loopback socket, served as ``mcp-gateway serve`` serves it; yields the
    ``/mcp`` URL."""
    async with serving_app(build_app(gateway), gateway.config) as port:
        yield f"http://127.0.0.1:{port}{MCP_PATH}"


@asynccontextmanager
async def serving_app(app: ASGIApp, config: GatewayConfig) -> AsyncIterator[int]:
    """Any ASGI app on a real loopback socket, served as ``mcp-gateway serve`` serves the gateway's with ``config``;
    yields the port."""
    port = free_port()
    server = uvicorn.Server(server_config(app, config, "127.0.0.1", port))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        try:
            yield port
        finally:
            server.should_exit = True


@asynccontextmanager
async def http_client(url: str, *, mode: str = "auto", token: str | None = None) -> AsyncIterator[Client]:
    """An SDK client over streamable HTTP, sending ``token`` as its bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with httpx2.AsyncClient(headers=headers) as session:
        transport = streamable_http_client(url, http_client=session)
        async with Client(transport, mode=mode, client_info=READER_INFO) as connected:  # type: ignore[arg-type]
            yield connected
