"""``gateway.upstream.calls``: which requests are sent again after the connection dropped under them, which end
with their outcome unknown, and which the breakers let through, for an in-process backend whose link the test
cuts mid-call."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import types
from mcp.client._memory import InMemoryTransport  # the SDK's own in-process link, as `Client(server)` uses
from mcp.server import MCPServer

from gateway.config import BackendConfig, GatewayConfig
from gateway.core import Gateway
from gateway.errors import BackendTimeout, BackendUnavailable, OutcomeUnknown
from gateway.upstream import calls
from gateway.upstream.backend import State, Upstream

pytestmark = pytest.mark.anyio
READ_ONLY = types.ToolAnnotations(read_only_hint=True)
IDEMPOTENT = types.ToolAnnotations(idempotent_hint=True)


class Cuttable:
    """Connects to ``server`` in process; ``cut()`` ends the connection in use, as a dropped one ends: nothing more
    arrives from the backend, and every request in flight on it is lost."""

    def __init__(self, server: MCPServer) -> None:
        self.server = server
        self._cut = anyio.Event()

    async def connect(self, config: BackendConfig, stack: AsyncExitStack, hooks: Any) -> Any:
        self._cut = anyio.Event()
        return self._transport(self._cut)

    def cut(self) -> None:
        self._cut.set()

    @asynccontextmanager
    async def _transport(self, cut: anyio.Event) -> AsyncIterator[tuple[Any, Any]]:
        async with InMemoryTransport(self.server) as (read, write):
            yield _Severed(read, cut), write


class _Severed:
    """A read stream that ends once its connection is cut, dropping whatever comes after."""

    def __init__(self, inner: Any, cut: anyio.Event) -> None:
        self._inner = inner
        self._cut = cut

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def __aenter__(self) -> _Severed:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self._inner.__aexit__(*exc_info)

    def __aiter__(self) -> _Severed:
        return self

    async def __anext__(self) -> Any:
        if self._cut.is_set():
            raise StopAsyncIteration
        item = await self._inner.__anext__()
        if self._cut.is_set():
            raise StopAsyncIteration
        return item


class Backend:
    """Tools and a resource that count their executions; the first execution of each cuts the link under it
    (``always``: every execution does)."""

    def __init__(self) -> None:
        self.server = MCPServer("flaky")
        self.link = Cuttable(self.server)
        self.runs: Counter[str] = Counter()
        self.hang = anyio.Event()
        for name, hints in (("peek", READ_ONLY), ("settle", IDEMPOTENT), ("bump", None), ("listed", None)):
            self.server.tool(name=name, annotations=hints)(self._cutting(name))
        self.server.tool(name="always", annotations=READ_ONLY)(self._cutting("always", every=True))
        self.server.resource("flaky://page")(self._cutting("page"))

        @self.server.tool()
        async def stall() -> str:
            self.runs["stall"] += 1
            await self.hang.wait()
            return "late"

        @self.server.tool()
        def fine() -> str:
            self.runs["fine"] += 1
            return "fine"

    def _cutting(self, name: str, every: bool = False) -> Any:
        def run() -> str:
            self.runs[name] += 1
            if every or self.runs[name] == 1:
                self.link.cut()
            return f"{name} done"

        return run


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[Backend, Upstream]]:
    backend = Backend()
    config = BackendConfig(
        name="flaky",
        transport="stdio",  # one stream for everything: a cut ends the whole link, as a stdio process's exit does
        command="unused",
        idempotent_tools=["listed"],
        tool_timeouts={"stall": 0.1},
        breaker_threshold=2,
        breaker_cooldown=60,
        connect_timeout=5,
    )
    async with Gateway(GatewayConfig(backends=(config,), reconnect_min=0.01), backend.link.connect) as gateway:
        yield backend, gateway.upstreams["flaky"]
        backend.hang.set()


def text(result: Any) -> str:
    assert isinstance(result, types.CallToolResult) and isinstance(result.content[0], types.TextContent)
    return result.content[0].text


@pytest.mark.parametrize("tool", ["peek", "settle", "listed"])
async def test_a_tool_safe_to_repeat_is_sent_again_once_after_the_connection_dropped_under_it(
    flaky: tuple[Backend, Upstream], tool: str
) -> None:
    backend, upstream = flaky
    with anyio.fail_after(10):
        assert text(await calls.call_tool(upstream, tool, {})) == f"{tool} done"
    assert backend.runs[tool] == 2


async def test_a_read_is_sent_again_after_the_connection_dropped_under_it(flaky: tuple[Backend, Upstream]) -> None:
    backend, upstream = flaky
    with anyio.fail_after(10):
        result = await calls.read_resource(upstream, "flaky://page")
    assert isinstance(result, types.ReadResourceResult) and backend.runs["page"] == 2


async def test_any_other_tool_is_not_repeated_and_its_outcome_is_unknown(flaky: tuple[Backend, Upstream]) -> None:
    backend, upstream = flaky
    with anyio.fail_after(10), pytest.raises(OutcomeUnknown) as unknown:
        await calls.call_tool(upstream, "bump", {})
    assert (unknown.value.backend, unknown.value.tool) == ("flaky", "bump")
    assert backend.runs["bump"] == 1


async def test_a_connection_that_drops_again_under_the_repeat_makes_the_backend_unavailable(
    flaky: tuple[Backend, Upstream],
) -> None:
    backend, upstream = flaky
    with anyio.fail_after(10), pytest.raises(BackendUnavailable):
        await calls.call_tool(upstream, "always", {})
    assert backend.runs["always"] == 2


async def test_an_open_link_breaker_refuses_every_call_before_the_backend_sees_it(
    flaky: tuple[Backend, Upstream],
) -> None:
    backend, upstream = flaky
    for _ in range(upstream.config.breaker_threshold):
        upstream.breaker.failure()
    with pytest.raises(BackendUnavailable):
        await calls.call_tool(upstream, "fine", {})
    with pytest.raises(BackendUnavailable):
        await calls.read_resource(upstream, "flaky://page")
    assert backend.runs == Counter()


async def test_a_tool_that_keeps_failing_is_refused_at_once_and_the_backends_other_tools_are_not(
    flaky: tuple[Backend, Upstream],
) -> None:
    backend, upstream = flaky
    for _ in range(upstream.config.breaker_threshold):
        with anyio.fail_after(10), pytest.raises(BackendTimeout):
            await calls.call_tool(upstream, "stall", {})
    with pytest.raises(BackendUnavailable) as refused:
        await calls.call_tool(upstream, "stall", {})
    assert "stall" in str(refused.value)
    assert backend.runs["stall"] == upstream.config.breaker_threshold
    assert text(await calls.call_tool(upstream, "fine", {})) == "fine"


async def test_a_backend_that_is_not_ready_takes_no_call(flaky: tuple[Backend, Upstream]) -> None:
    backend, upstream = flaky
    upstream.lose("taken down by the test")
    assert upstream.state is State.DOWN
    with pytest.raises(BackendUnavailable):
        await calls.call_tool(upstream, "fine", {})
    assert backend.runs["fine"] == 0
