"""Every backend transport on real sockets and real subprocesses: streamable HTTP, legacy SSE and stdio.

The gateway runs in process here (it is the same code the CLI serves); the backends are real processes.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client, types

from gateway.config import BackendConfig, GatewayConfig
from gateway.core import Gateway
from gateway.front.server import build_server
from tests.support.inproc import READER_INFO
from tests.support.procs import Processes, free_port, listening, wait_until

pytestmark = pytest.mark.anyio


def start_toy(processes: Processes, transport: str, name: str) -> str:
    port = free_port()
    processes.start("-m", "tests.support.toy_server", "--transport", transport, "--port", str(port), "--name", name)
    wait_until(lambda: listening(port), what=f"the {name} backend to listen")
    return f"http://127.0.0.1:{port}/{'sse' if transport == 'sse' else 'mcp'}"


@asynccontextmanager
async def gateway_for(*backends: BackendConfig) -> AsyncIterator[Gateway]:
    config = GatewayConfig(backends=backends, health_interval=0.5, reconnect_min=0.1, reconnect_max=1)
    async with Gateway(config) as gateway:
        yield gateway


def stdio_backend(name: str, **fields: Any) -> BackendConfig:
    args = ["-m", "tests.support.toy_server", "--stdio", "--name", name]
    return BackendConfig(name=name, transport="stdio", command=sys.executable, args=args, **fields)


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_backends_on_all_three_transports_are_listed_and_called(processes: Processes, protocol: str) -> None:
    http_url = start_toy(processes, "streamable-http", "web")
    sse_url = start_toy(processes, "sse", "old")
    backends = (
        BackendConfig(name="web", url=http_url, protocol=protocol),
        BackendConfig(name="old", transport="sse", url=sse_url, protocol=protocol),
        stdio_backend("local", protocol=protocol),
    )
    async with gateway_for(*backends) as gw, Client(build_server(gw), client_info=READER_INFO) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        results = {p: await c.call_tool(f"{p}/search", {"query": "q"}) for p in ("web", "old", "local")}
        status = gw.status()
    assert {"web/echo", "old/echo", "local/echo"} <= names
    assert {p: r.structured_content for p, r in results.items()} == {
        p: {"result": [f"{p}:q"]} for p in ("web", "old", "local")
    }
    assert [b["state"] for b in status["backends"]] == ["ready"] * 3


@pytest.mark.parametrize("protocol", ["auto", "legacy", "2026-07-28"])
@pytest.mark.parametrize("transport", ["streamable-http", "stdio"])
async def test_a_backends_list_change_reaches_clients_over_real_transports(
    processes: Processes, protocol: str, transport: str
) -> None:
    if transport == "stdio":
        backend = stdio_backend("toy", protocol=protocol)
    else:
        backend = BackendConfig(name="toy", url=start_toy(processes, transport, "toy"), protocol=protocol)
    heard = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            heard.set()

    async with (
        gateway_for(backend) as gw,
        Client(build_server(gw), mode="legacy", message_handler=on_message, client_info=READER_INFO) as c,
    ):
        await c.call_tool("toy/add_tool", {"tool_name": "late"})
        with anyio.fail_after(10):
            await heard.wait()
        names = {t.name for t in (await c.list_tools()).tools}
    assert "toy/late" in names


async def test_a_stdio_backend_that_cannot_start_is_down_with_a_reason_and_the_others_serve(
    processes: Processes,
) -> None:
    broken = BackendConfig(name="broken", transport="stdio", command="/nonexistent/mcp-server", connect_timeout=5)
    async with gateway_for(broken, stdio_backend("fine")) as gw, Client(build_server(gw), client_info=READER_INFO) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        status = {b["name"]: b for b in gw.status()["backends"]}
    assert "fine/echo" in names and not any(n.startswith("broken/") for n in names)
    assert status["broken"]["state"] == "down" and status["broken"]["error"]
    assert gw.ready is False
