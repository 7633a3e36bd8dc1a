"""A call whose SSE stream the backend ends before the answer is resumed, on every link, and answered as if the
stream had never ended: a real SDK backend that keeps its events and closes a call's stream mid-call
(``close_sse_stream``), on a loopback socket, against what the same backend answers an SDK client directly.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client, types
from mcp.client.session import ClientRequestContext
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

from gateway.config import BackendConfig, GatewayConfig
from gateway.core import Gateway
from gateway.front.server import build_server
from gateway.upstream.backend import State
from gateway.upstream.caller import ANONYMOUS, Caller
from gateway.upstream.exchange import SdkLink
from tests.support.loopback import MemoryEvents, linked, serving

pytestmark = pytest.mark.anyio
RETRY_MS = 10


def resumable() -> MCPServer:
    server = MCPServer("resumable")

    @server.tool(description="Log, end the call's stream, log again, and answer.")
    async def interrupted(ctx: Context) -> str:
        await ctx.log("info", "before the close")
        await ctx.close_sse_stream()
        await ctx.log("info", "after the close")
        return "answered after the close"

    @server.tool(description="End the call's stream once per round, asking the client's model after each close.")
    async def polling(rounds: int, ctx: Context) -> str:
        heard = []
        for n in range(rounds):
            await ctx.log("info", f"round {n}")
            await ctx.close_sse_stream()
            # Asked on the closed stream: kept, and sent once the client has resumed it.
            question = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=f"{n}?"))
            session = ctx.request_context.session
            answer = await session.create_message([question], max_tokens=5, related_request_id=ctx.request_id)
            heard.append(answer.content.text if isinstance(answer.content, types.TextContent) else "")
        return ", ".join(heard)

    return server


def app() -> Any:
    return resumable().streamable_http_app(host="127.0.0.1", event_store=MemoryEvents(), retry_interval=RETRY_MS)


def reply(prompt: str) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"ok {prompt}"), model="m"
    )


class Answering:
    """A caller's sink: keeps the call's notifications and answers the backend's sampling requests."""

    def __init__(self) -> None:
        self.notes: list[dict[str, Any]] = []

    async def notify(self, message: dict[str, Any]) -> None:
        self.notes.append(message)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        prompt = message["params"]["messages"][0]["content"]["text"]
        return {"result": reply(prompt).model_dump(by_alias=True, mode="json", exclude_none=True)}

    def logged(self) -> list[Any]:
        return [n["params"]["data"] for n in self.notes if n["method"] == "notifications/message"]


async def sampling(
    context: ClientRequestContext, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    content = params.messages[0].content
    return reply(content.text if isinstance(content, types.TextContent) else "")


async def test_the_raw_link_resumes_each_time_the_backend_ends_the_stream_and_gets_the_direct_answer() -> None:
    call = {"name": "polling", "arguments": {"rounds": 3}}
    sink = Answering()
    async with serving(app()) as url:
        async with linked(url, "legacy") as (_, raw):
            through_raw = await raw.send("tools/call", call, 20.0, Caller(sink=sink))
        async with Client(url, mode="legacy", sampling_callback=sampling) as direct:
            through_sdk = await SdkLink(direct).send("tools/call", call, 20.0, ANONYMOUS)
    assert through_raw == through_sdk
    assert through_raw["content"][0]["text"] == "ok 0?, ok 1?, ok 2?"
    assert sink.logged() == ["round 0", "round 1", "round 2"]


@pytest.mark.parametrize("session", ["shared", "per_client"])
async def test_a_call_the_backend_ends_the_stream_of_is_answered_through_the_gateway_and_the_backend_stays_up(
    session: str,
) -> None:
    """On the shared connection the raw link resumes the stream; on a per-client connection the SDK client does."""
    async with serving(app()) as url:
        backend = BackendConfig(name="poll", url=url, protocol="legacy", session=session)
        settings = GatewayConfig(backends=(backend,), health_interval=60.0, reconnect_min=0.1, reconnect_max=1.0)
        async with Gateway(settings) as gateway, Client(build_server(gateway), mode="legacy") as client:
            result = await client.call_tool("poll/interrupted", {})
            upstream = gateway.upstreams["poll"]
            state, breaker, calls = upstream.state, upstream.breaker.state.value, upstream.call_breakers.states()
        async with Client(url, mode="legacy") as direct:
            expected = await direct.call_tool("interrupted", {})
    assert not result.is_error
    assert result.content == expected.content
    assert (state, breaker, calls) == (State.READY, "closed", {})
