"""``Router``: every rendering of a name to its ``(backend, name)``, the precise error for a name nobody serves,
and results as the backend sent them but for URIs under the gateway's prefix and the backend's ``serverInfo``
stamp."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import MCPError, types
from mcp.server import MCPServer
from mcp.types import INVALID_PARAMS, LOG_LEVEL_META_KEY

from gateway.catalogue.catalog import Route
from gateway.core import Gateway
from gateway.errors import BACKEND_UNAVAILABLE, BackendUnavailable, UnknownTarget
from gateway.rpc_errors import to_mcp_error
from gateway.upstream import calls
from gateway.upstream.caller import Caller
from tests.support.inproc import running_gateway
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio


def stamping() -> MCPServer:
    """A backend whose results carry ``_meta`` of their own."""
    server = MCPServer("stamping")

    @server.tool(description="A result with its own _meta entry.")
    def stamped() -> types.CallToolResult:
        return types.CallToolResult(content=[], _meta={"example.com/trace": "t-1"})

    return server


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[Gateway]:
    servers = {"ops": build("ops"), "bare": build("bare"), "stamping": stamping(), "down": None}
    async with running_gateway(servers, {"ops": "ops", "bare": "", "stamping": "st", "down": "dn"}) as gateway:
        yield gateway


async def test_each_rendering_of_a_name_resolves_to_its_backend_and_original_name(gateway: Gateway) -> None:
    router = gateway.router
    assert router.route_tool("ops/echo") == router.route_tool("ops__echo") == Route("ops", "echo")
    assert router.route_tool("echo") == Route("bare", "echo")  # an empty prefix: the backend's own names
    assert router.route_prompt("ops/greet") == router.route_prompt("ops__greet") == Route("ops", "greet")


@pytest.mark.parametrize("name", ["ops/nope", "nope/echo", "ops__nope", "", "ops/"])
async def test_a_name_nobody_serves_is_unknown_and_named_in_the_error(gateway: Gateway, name: str) -> None:
    with pytest.raises(UnknownTarget) as unknown:
        await gateway.router.call_tool(name, {})
    error = to_mcp_error(unknown.value)
    assert (error.code, error.error.data) == (INVALID_PARAMS, {"tool": name})
    with pytest.raises(UnknownTarget):
        await gateway.router.get_prompt(name, {})


async def test_a_uri_of_no_known_prefix_goes_to_the_unprefixed_backend_whose_refusal_comes_back_unchanged(
    gateway: Gateway,
) -> None:
    with pytest.raises(MCPError) as refused:
        await gateway.router.read_resource("zz+toy://notes/1")
    assert (refused.value.code, refused.value.error.data) == (INVALID_PARAMS, {"uri": "zz+toy://notes/1"})


@pytest.mark.parametrize("name", ["dn/echo", "dn__echo"])
async def test_a_name_under_the_prefix_of_a_backend_that_is_down_names_that_backend(
    gateway: Gateway, name: str
) -> None:
    with pytest.raises(BackendUnavailable) as unavailable:
        gateway.router.route_tool(name)
    error = to_mcp_error(unavailable.value)
    assert (error.code, error.error.data) == (BACKEND_UNAVAILABLE, {"backend": "down"})


async def test_resource_uris_in_tool_results_get_the_backends_prefix(gateway: Gateway) -> None:
    result = await gateway.router.call_tool("ops/linked", {})
    assert isinstance(result, types.CallToolResult)
    link, embedded = result.content
    assert isinstance(link, types.ResourceLink) and isinstance(embedded, types.EmbeddedResource)
    assert (str(link.uri), str(embedded.resource.uri)) == ("ops+toy://notes/1", "ops+toy://notes/2")
    assert isinstance(embedded.resource, types.TextResourceContents) and embedded.resource.text == "two"


async def test_read_results_get_the_prefix_and_a_backend_without_one_keeps_its_uris(gateway: Gateway) -> None:
    read = await gateway.router.read_resource("ops+toy://notes/7")
    assert isinstance(read, types.ReadResourceResult)
    assert [str(c.uri) for c in read.contents] == ["ops+toy://notes/7"]
    bare = await gateway.router.call_tool("linked", {})
    assert isinstance(bare, types.CallToolResult)
    assert isinstance(bare.content[0], types.ResourceLink) and str(bare.content[0].uri) == "toy://notes/1"


async def test_the_backends_server_info_stamp_is_dropped_and_its_other_meta_kept(gateway: Gateway) -> None:
    plain = await gateway.router.call_tool("ops/echo", {"text": "hi"})
    stamped = await gateway.router.call_tool("st/stamped", {})
    prompt = await gateway.router.get_prompt("ops/greet", {"who": "Ann"})
    assert plain.meta is None and prompt.meta is None
    assert stamped.meta == {"example.com/trace": "t-1"}


async def test_the_callers_own_meta_and_progress_token_are_forwarded_its_protocol_keys_are_not(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    forwarded: list[dict[str, Any] | None] = []

    async def recorded(
        upstream: Any, name: str, arguments: Any, meta: dict[str, Any] | None, *rest: Any, **named: Any
    ) -> Any:
        forwarded.append(meta)
        return types.CallToolResult(content=[])

    monkeypatch.setattr(calls, "call_tool", recorded)
    meta = {"progress_token": "p-1", "example.com/mine": 1, "io.modelcontextprotocol/clientInfo": {"name": "x"}}
    await gateway.router.call_tool("ops/echo", {}, meta, Caller(log_level="warning"))
    await gateway.router.call_tool("ops/echo", {}, {"io.modelcontextprotocol/clientInfo": {"name": "x"}}, Caller())
    assert forwarded == [{"progressToken": "p-1", "example.com/mine": 1, LOG_LEVEL_META_KEY: "warning"}, None]
