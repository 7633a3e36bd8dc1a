"""A backend's requests and log messages on a per-client connection: to the one call in flight, or to nobody."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import MCPError, types

from gateway.config import BackendConfig, GatewayConfig
from gateway.core import Gateway
from tests.support.inproc import client
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def per_client() -> AsyncIterator[Gateway]:
    """A gateway whose backend gives each client a connection of its own (in process, 2025 on the link)."""

    async def connect(config: BackendConfig, stack: AsyncExitStack, hooks: Any) -> Any:
        return build("toy")

    backend = BackendConfig(name="toy", url="http://toy.invalid/mcp", protocol="legacy", session="per_client")
    async with Gateway(GatewayConfig(backends=(backend,)), connect) as gateway:
        yield gateway


async def test_while_a_client_overlaps_its_calls_the_backend_asks_nobody_and_its_logs_reach_nobody() -> None:
    asked: list[str] = []
    logged: list[Any] = []
    sampling, release = anyio.Event(), anyio.Event()

    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        sampling.set()
        await release.wait()
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="hi"), model="m")

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def log(params: types.LoggingMessageNotificationParams) -> None:
        logged.append(params.data)

    callbacks: dict[str, Any] = {"sampling_callback": sample, "elicitation_callback": elicit, "logging_callback": log}
    first: list[Any] = []
    async with per_client() as gateway, client(gateway, mode="legacy", **callbacks) as alice:

        async def ask_model() -> None:
            first.append(await alice.call_tool("toy/ask_model", {"prompt": "hello"}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask_model)
            with anyio.fail_after(10):
                await sampling.wait()  # alone on the connection, the call got its backend's question
            # Now two calls are in flight: nothing says which one the backend's question or log message is for.
            with pytest.raises(MCPError) as refused:
                await alice.call_tool("toy/ask_user", {"question": "Who?"})
            await alice.call_tool("toy/steps", {"count": 1})
            release.set()
        assert refused.value.code == types.INVALID_REQUEST
        assert asked == [] and logged == []
        # One call at a time: the backend's question and log messages are that call's.
        answered = await alice.call_tool("toy/ask_user", {"question": "Who?"})
        await alice.call_tool("toy/steps", {"count": 1})
        with anyio.fail_after(10):
            while len(logged) < 2:
                await anyio.sleep(0.01)
    assert first[0].content[0].text == "m: hi"
    assert answered.content[0].text == "accept: Ada"  # type: ignore[union-attr]
    assert asked == ["Who?"] and logged == ["a detail", {"steps": 1}]
