"""The MCP front, in process: listing, per-client names, routing, errors and list_changed, in both eras."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError, types
from mcp.server import Server

from gateway.errors import BACKEND_UNAVAILABLE
from tests.support.inproc import client, running_gateway
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ERAS = ["legacy", "auto"]
STRICT = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def toys(*names: str) -> dict[str, Any]:
    return {name: build(name) for name in names}


async def direct_tools(name: str) -> dict[str, types.Tool]:
    async with Client(build(name)) as direct:
        return {t.name: t for t in (await direct.list_tools()).tools}


@pytest.mark.parametrize("mode", ERAS)
async def test_every_exposed_tool_equals_the_backends_tool_but_for_the_name(mode: str) -> None:
    own = await direct_tools("ops")
    async with running_gateway(toys("ops", "hr")) as gw, client(gw, mode=mode) as c:
        exposed = {t.name: t for t in (await c.list_tools()).tools}
    assert set(exposed) == {f"{p}/{n}" for p in ("ops", "hr") for n in own}
    for name, tool in own.items():
        assert exposed[f"ops/{name}"].model_dump(exclude={"name"}) == tool.model_dump(exclude={"name"})


@pytest.mark.parametrize("mode", ERAS)
async def test_tools_with_the_same_name_on_two_backends_reach_their_own_backend(mode: str) -> None:
    async with running_gateway(toys("ops", "hr")) as gw, client(gw, mode=mode) as c:
        ops = await c.call_tool("ops/search", {"query": "disk"})
        hr = await c.call_tool("hr/search", {"query": "disk"})
    assert ops.structured_content == {"result": ["ops:disk"]}
    assert hr.structured_content == {"result": ["hr:disk"]}


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("client_name", ["claude-ai", "openai-mcp"])
async def test_a_strict_client_sees_only_strict_names_and_can_call_them(mode: str, client_name: str) -> None:
    async with running_gateway(toys("ops", "hr")) as gw, client(gw, name=client_name, mode=mode) as c:
        names = [t.name for t in (await c.list_tools()).tools]
        prompts = [p.name for p in (await c.list_prompts()).prompts]
        result = await c.call_tool("hr__echo", {"text": "hi"})
    assert names and all(STRICT.match(n) for n in names + prompts)
    assert "ops__search" in names and "hr__search" in names
    assert result.content[0].text == "hi"  # type: ignore[union-attr]


async def test_a_forced_style_applies_to_every_client() -> None:
    naming = {"style": "strict", "separator": "-"}
    async with running_gateway(toys("ops"), naming=naming) as gw, client(gw, name="generic") as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert "ops-search" in names


async def test_every_rendering_of_a_name_is_accepted_by_tools_call() -> None:
    async with running_gateway(toys("ops")) as gw, client(gw) as c:
        canonical = await c.call_tool("ops/echo", {"text": "a"})
        strict = await c.call_tool("ops__echo", {"text": "b"})
    assert [canonical.content[0].text, strict.content[0].text] == ["a", "b"]  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ERAS)
async def test_an_unknown_tool_is_invalid_params_naming_it(mode: str) -> None:
    async with running_gateway(toys("ops")) as gw, client(gw, mode=mode) as c:
        with pytest.raises(MCPError) as caught:
            await c.call_tool("ops/nope", {})
    assert caught.value.code == types.INVALID_PARAMS
    assert "ops/nope" in caught.value.message


async def test_a_backends_own_error_reaches_the_client_with_code_message_and_data() -> None:
    async with running_gateway(toys("ops")) as gw, client(gw) as c:
        with pytest.raises(MCPError) as caught:
            await c.call_tool("ops/fail", {})
    assert (caught.value.code, caught.value.message, caught.value.data) == (-32099, "toy failure", {"why": "asked to"})


@pytest.mark.parametrize("mode", ERAS)
async def test_a_down_backend_answers_at_once_with_an_error_naming_it(mode: str) -> None:
    async with running_gateway({"ops": build("ops"), "hr": None}) as gw, client(gw, mode=mode) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        with anyio.fail_after(2), pytest.raises(MCPError) as caught:
            await c.call_tool("hr/echo", {"text": "x"})
    assert names and not any(n.startswith("hr/") for n in names)
    assert caught.value.code == BACKEND_UNAVAILABLE
    assert caught.value.data == {"backend": "hr"}
    assert "'hr'" in caught.value.message


async def test_a_call_past_the_backends_deadline_is_a_timeout_error() -> None:
    async with running_gateway(toys("ops")) as gw:
        gw.upstreams["ops"].config = gw.upstreams["ops"].config.model_copy(update={"call_timeout": 0.2})
        async with client(gw) as c:
            with anyio.fail_after(5), pytest.raises(MCPError) as caught:
                await c.call_tool("ops/slow", {"seconds": 30})
            after = await c.call_tool("ops/echo", {"text": "still here"})
    assert caught.value.code == types.REQUEST_TIMEOUT
    assert caught.value.data == {"backend": "ops"}
    assert after.content[0].text == "still here"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ERAS)
async def test_resource_uris_in_results_are_prefixed_and_readable_through_the_gateway(mode: str) -> None:
    async with running_gateway(toys("ops")) as gw, client(gw, mode=mode) as c:
        result = await c.call_tool("ops/linked", {})
        link, embedded = result.content
        assert isinstance(link, types.ResourceLink) and isinstance(embedded, types.EmbeddedResource)
        assert (str(link.uri), str(embedded.resource.uri)) == ("ops+toy://notes/1", "ops+toy://notes/2")
        read = await c.read_resource(str(link.uri))
        about = await c.read_resource("ops+toy://about")
    assert read.contents[0].text == "note 1"  # type: ignore[union-attr]
    assert str(read.contents[0].uri) == "ops+toy://notes/1"
    assert about.contents[0].text == "ops server"  # type: ignore[union-attr]


async def test_resources_and_templates_are_listed_under_the_prefixed_scheme() -> None:
    async with running_gateway(toys("ops", "hr")) as gw, client(gw) as c:
        resources = [str(r.uri) for r in (await c.list_resources()).resources]
        templates = [t.uri_template for t in (await c.list_resource_templates()).resource_templates]
    assert resources == ["hr+toy://about", "ops+toy://about"]
    assert templates == [
        "hr+toy://asked/{topic}",
        "hr+toy://notes/{note_id}",
        "ops+toy://asked/{topic}",
        "ops+toy://notes/{note_id}",
    ]


async def test_an_unknown_resource_scheme_is_invalid_params() -> None:
    async with running_gateway(toys("ops")) as gw, client(gw) as c:
        with pytest.raises(MCPError) as caught:
            await c.read_resource("nobody+toy://x")
    assert caught.value.code == types.INVALID_PARAMS


@pytest.mark.parametrize("mode", ERAS)
async def test_prompts_are_listed_and_fetched_from_their_backend(mode: str) -> None:
    async with running_gateway(toys("ops", "hr")) as gw, client(gw, mode=mode) as c:
        names = [p.name for p in (await c.list_prompts()).prompts]
        prompt = await c.get_prompt("hr/greet", {"who": "Ada"})
    assert names == ["hr/greet", "hr/greet_asked", "ops/greet", "ops/greet_asked"]
    assert prompt.messages[0].content.text == "Hello Ada"  # type: ignore[union-attr]


async def test_completion_requests_reach_the_owning_backend_with_its_own_names() -> None:
    async with running_gateway(toys("ops", "hr")) as gw, client(gw) as c:
        prompt = await c.complete(
            types.PromptReference(type="ref/prompt", name="hr/greet"), {"name": "who", "value": "A"}
        )
        template = types.ResourceTemplateReference(type="ref/resource", uri="ops+toy://notes/{note_id}")
        resource = await c.complete(template, {"name": "note_id", "value": "4"})
    assert prompt.completion.values == ["greet:who=A"]
    assert resource.completion.values == ["toy://notes/{note_id}:note_id=4"]


async def test_a_legacy_client_hears_list_changed_when_a_backend_adds_a_tool() -> None:
    heard = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            heard.set()

    async with running_gateway(toys("ops")) as gw, client(gw, mode="legacy", message_handler=on_message) as c:
        await c.call_tool("ops/add_tool", {"tool_name": "fresh"})
        with anyio.fail_after(5):
            await heard.wait()
        names = {t.name for t in (await c.list_tools()).tools}
        result = await c.call_tool("ops/fresh", {})
    assert "ops/fresh" in names
    assert result.content[0].text == "I am fresh"  # type: ignore[union-attr]


async def test_a_2026_client_hears_list_changed_on_its_listen_stream() -> None:
    async with running_gateway(toys("ops")) as gw, client(gw, mode="auto") as c:
        async with c.listen(tools_list_changed=True) as subscription:
            await c.call_tool("ops/add_tool", {"tool_name": "fresh"})
            with anyio.fail_after(5):
                event = await subscription.__anext__()
        names = {t.name for t in (await c.list_tools()).tools}
    assert type(event).__name__ == "ToolsListChanged"
    assert "ops/fresh" in names


async def test_the_gateway_advertises_list_changed_to_legacy_clients() -> None:
    async with running_gateway(toys("ops")) as gw, client(gw, mode="legacy") as c:
        caps = c.server_capabilities
    assert caps.tools and caps.tools.list_changed
    assert caps.prompts and caps.prompts.list_changed


def tools_only() -> Server[Any]:
    """A backend that serves tools and nothing else (``MCPServer`` advertises prompts and resources regardless)."""

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="noop", input_schema={"type": "object"})])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[])

    return Server("plain", on_list_tools=list_tools, on_call_tool=call_tool)


@pytest.mark.parametrize("mode", ERAS)
async def test_capabilities_are_advertised_only_while_a_connected_backend_serves_them(mode: str) -> None:
    async with running_gateway({"plain": tools_only()}) as gw, client(gw, mode=mode) as c:
        plain = c.server_capabilities
    async with running_gateway({"plain": tools_only(), "toy": build("toy")}) as gw, client(gw, mode=mode) as c:
        full = c.server_capabilities
    async with running_gateway({"plain": tools_only(), "toy": None}) as gw, client(gw, mode=mode) as c:
        toy_down = c.server_capabilities
    assert plain.tools is not None
    assert (plain.prompts, plain.resources, plain.completions) == (None, None, None)
    assert full.prompts is not None and full.resources is not None and full.completions is not None
    assert (toy_down.prompts, toy_down.resources, toy_down.completions) == (None, None, None)


def resources_only() -> Server[Any]:
    """A backend with resources it cannot announce changes of (no listen stream, no ``resources/subscribe``)."""

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[types.Resource(name="r", uri="plain://r")])

    return Server("plain", on_list_resources=list_resources)


@pytest.mark.parametrize("mode", ERAS)
async def test_resource_subscriptions_are_advertised_only_while_a_backend_takes_them(mode: str) -> None:
    async with running_gateway({"plain": resources_only()}) as gw, client(gw, mode=mode) as c:
        plain = c.server_capabilities.resources
        listed = [str(r.uri) for r in (await c.list_resources()).resources]
        if mode == "legacy":
            with pytest.raises(MCPError) as refused:
                await c.subscribe_resource("plain+plain://r")
            assert refused.value.code == types.METHOD_NOT_FOUND
    async with running_gateway({"plain": resources_only(), "toy": build("toy")}) as gw, client(gw, mode=mode) as c:
        full = c.server_capabilities.resources
    assert plain is not None and not plain.subscribe
    assert full is not None and full.subscribe
    assert listed == ["plain+plain://r"]
