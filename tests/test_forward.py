"""Raw forwarding to streamable-HTTP backends: JSON and SSE answers in both eras, deadlines cancelled at the backend.

The SDK backends here are real processes on free ports; the calls go through the gateway's raw path
(``gateway.upstream.forward``) while the SDK client keeps the connection, the lists and the probes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError, types

from gateway.config import BackendConfig, GatewayConfig
from gateway.core import Gateway
from gateway.front.server import build_server
from tests.support.procs import Processes, free_port, listening, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.processes]
FAST = {"health_interval": 60.0, "reconnect_min": 0.1, "reconnect_max": 1.0}
MODES = ["json", "sse"]


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, str]]:
    """One toy backend answering in plain JSON and one answering in SSE streams, shared by the module."""
    procs = Processes()
    urls: dict[str, str] = {}
    try:
        for mode in MODES:
            port = free_port()
            extra = ["--json-response"] if mode == "json" else []
            procs.start("-m", "tests.support.toy_server", "--port", str(port), "--name", mode, *extra)
            urls[mode] = f"http://127.0.0.1:{port}/mcp"
        for url in urls.values():
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            wait_until(lambda port=port: listening(port), what="the toy backend to listen")
        yield urls
    finally:
        procs.stop_all()


@asynccontextmanager
async def through_gateway(url: str, protocol: str, **fields: Any) -> AsyncIterator[tuple[Gateway, Client]]:
    backend = BackendConfig(name="toy", url=url, protocol=protocol, **fields)
    async with (
        Gateway(GatewayConfig(backends=(backend,), **FAST)) as gateway,
        Client(build_server(gateway), mode="legacy") as client,
    ):
        assert gateway.upstreams["toy"].forwarder is not None
        yield gateway, client


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
@pytest.mark.parametrize("mode", MODES)
async def test_calls_reads_prompts_and_completions_go_raw_and_come_back_whole(
    backends: dict[str, str], mode: str, protocol: str
) -> None:
    async with through_gateway(backends[mode], protocol) as (gw, c):
        echoed = await c.call_tool("toy/echo", {"text": "héllo"})
        linked = await c.call_tool("toy/linked", {})
        read = await c.read_resource("toy+toy://notes/7")
        prompt = await c.get_prompt("toy/greet", {"who": "Ada"})
        completion = await c.complete(
            types.PromptReference(type="ref/prompt", name="toy/greet"), {"name": "who", "value": "A"}
        )
        with pytest.raises(MCPError) as failed:
            await c.call_tool("toy/fail", {})
        version = gw.upstreams["toy"].protocol_version
    assert version == ("2025-11-25" if protocol == "legacy" else "2026-07-28")
    assert echoed.content[0].text == "héllo"  # type: ignore[union-attr]
    assert [str(getattr(block, "uri", "")) for block in linked.content][:1] == ["toy+toy://notes/1"]
    assert read.contents[0].text == "note 7"  # type: ignore[union-attr]
    assert prompt.messages[0].content.text == "Hello Ada"  # type: ignore[union-attr]
    assert completion.completion.values == ["greet:who=A"]
    assert failed.value.code != types.INTERNAL_ERROR


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
@pytest.mark.parametrize("mode", MODES)
async def test_a_call_past_its_deadline_times_out_and_is_cancelled_at_the_backend(
    backends: dict[str, str], mode: str, protocol: str
) -> None:
    async with through_gateway(backends[mode], protocol, tool_timeouts={"slow": 0.5}) as (_gw, c):
        before = (await c.call_tool("toy/cancellations", {})).structured_content or {}
        started = time.monotonic()
        with pytest.raises(MCPError) as timed_out:
            # Long past the deadline, but short enough that a handler left running (below) ends before teardown.
            await c.call_tool("toy/slow", {"seconds": 4})
        took = time.monotonic() - started
        assert timed_out.value.code == types.REQUEST_TIMEOUT
        assert 0.4 < took < 3
        if mode == "json" and protocol == "2026-07-28":
            # A 2026 call is cancelled by closing its connection, which the gateway does; the SDK's JSON-mode
            # server does not watch for the disconnect, so the backend's handler runs on.
            return

        async def cancelled() -> int:
            result = (await c.call_tool("toy/cancellations", {})).structured_content or {}
            return int(result["result"]) - int(before["result"])

        with anyio.fail_after(10):
            while await cancelled() < 1:
                await anyio.sleep(0.05)


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
async def test_concurrent_calls_share_a_few_kept_alive_connections(backends: dict[str, str], protocol: str) -> None:
    async with through_gateway(backends["sse"], protocol) as (gw, c):
        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(c.call_tool, "toy/echo", {"text": str(i)})
        pool = gw.upstreams["toy"].forwarder._pool  # type: ignore[union-attr]
        idle = len(pool._idle)
    assert 1 <= idle <= 40
