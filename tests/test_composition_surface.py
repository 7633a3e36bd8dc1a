"""An endpoint's surface: the catalogue alone, or with tools of the gateway's own beside it, in lists and calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError, types
from mcp.types import INVALID_PARAMS

from gateway.catalogue.naming import Style
from gateway.composition.sources import Reach
from gateway.composition.surface import Surface
from gateway.composition.views import View
from gateway.config.servers import ServerConfig
from gateway.core import Gateway
from gateway.front.app import build_app
from gateway.front.server import build_server
from gateway.security.guard import OWN
from gateway.upstream.caller import Caller
from tests.support.inproc import LOCAL, READER_INFO, lifespan, running_gateway
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ERAS = ["legacy", "auto"]


class Twice:
    """A tool of the gateway's own: calls the echo tool it is given twice, through the reach, and reports what the
    reach showed it."""

    def __init__(self) -> None:
        self.seen: list[Reach] = []

    def tools(self, style: Style) -> Sequence[types.Tool]:
        schema = {"type": "object", "properties": {"tool": {"type": "string"}, "text": {"type": "string"}}}
        return [types.Tool(name="twice", description="Echo twice.", input_schema=schema)]

    def owns(self, name: str) -> bool:
        return name == "twice"

    async def call(self, reach: Reach, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        self.seen.append(reach)
        args = arguments or {}
        tool, text = str(args["tool"]), str(args["text"])
        first = await reach.call_tool(tool, {"text": text})
        second = await reach.call_tool(tool, {"text": text})
        texts = [block.text for result in (first, second) for block in result.content if block.type == "text"]
        visible = sorted(t.name for t in reach.everything() if reach.may_use(t.name))
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=" ".join(texts))],
            structured_content={"texts": texts, "visible": visible, "style": reach.style.value},
        )


@asynccontextmanager
async def gateway_with(**settings: Any) -> AsyncIterator[Gateway]:
    async with running_gateway({"ops": build("ops"), "hr": build("hr")}, **settings) as gateway:
        yield gateway


def connect(gateway: Gateway, surface: Surface, *, mode: str = "auto", name: str = "mcp-inspector") -> Client:
    info = types.Implementation(name=name, version="1.0") if name != READER_INFO.name else READER_INFO
    return Client(build_server(gateway, surface=surface), mode=mode, client_info=info)  # type: ignore[arg-type]


async def all_tools(client: Client) -> list[types.Tool]:
    tools, cursor = [], None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        if page.next_cursor is None:
            return tools
        cursor = page.next_cursor


async def test_a_surface_of_its_own_adds_nothing_to_the_catalogue() -> None:
    async with gateway_with() as gw:
        surface = Surface(gw)
        assert surface.everything(Style.CANONICAL) == gw.catalog.tools(Style.CANONICAL)
        assert surface.page("tools", Style.STRICT, None, 3) == gw.catalog.page("tools", Style.STRICT, None, 3)
        assert surface.generation == gw.catalog.generation


@pytest.mark.parametrize("mode", ERAS)
async def test_own_tools_are_listed_in_order_and_every_page_holds_each_once(mode: str) -> None:
    async with gateway_with(list_page_size=3) as gw, connect(gw, Surface(gw, [Twice()]), mode=mode) as c:
        names = [t.name for t in await all_tools(c)]
    expected = sorted([t.name for t in gw.catalog.tools(Style.CANONICAL)] + ["twice"])
    assert names == expected


async def test_a_strict_client_gets_own_tools_sorted_among_the_strict_names() -> None:
    async with gateway_with() as gw, connect(gw, Surface(gw, [Twice()]), name="claude-ai") as c:
        names = [t.name for t in await all_tools(c)]
    assert "twice" in names and "ops__echo" in names
    assert names.index("twice") > names.index("ops__echo")  # sorted by canonical name: ops/… before twice


@pytest.mark.parametrize("mode", ERAS)
async def test_an_own_tool_calls_backends_as_the_caller_and_in_the_callers_style(mode: str) -> None:
    twice = Twice()
    async with gateway_with() as gw, connect(gw, Surface(gw, [twice]), mode=mode, name="claude-ai") as c:
        result = await c.call_tool("twice", {"tool": "hr__echo", "text": "hi"})
    assert result.is_error is not True
    assert result.structured_content is not None
    assert result.structured_content["texts"] == ["hi", "hi"]
    assert result.structured_content["style"] == "strict"
    assert "hr__echo" in result.structured_content["visible"] and "twice" in result.structured_content["visible"]


async def test_own_tools_and_their_calls_are_audited_and_ruled_like_any_tool(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    security = {
        "audit": {"file": str(audit)},
        "policy": {"rules": [{"principals": ["local"], "deny": ["hr/*"]}]},
    }
    twice = Twice()
    async with gateway_with(security=security) as gw, connect(gw, Surface(gw, [twice])) as c:
        ok = await c.call_tool("twice", {"tool": "ops/echo", "text": "a"})
        with pytest.raises(MCPError) as denied:
            await c.call_tool("twice", {"tool": "hr/echo", "text": "b"})
        listed = {t.name for t in await all_tools(c)}
    assert ok.structured_content is not None
    assert "hr/echo" not in ok.structured_content["visible"] and "ops/echo" in ok.structured_content["visible"]
    assert "hr/echo" not in listed and "twice" in listed
    # The step's denial reached the gateway's own tool as the caller's own denial would: as an unknown tool.
    assert denied.value.code == INVALID_PARAMS and "hr/echo" in denied.value.message
    lines = [json.loads(line) for line in audit.read_text().splitlines() if '"kind"' in line]
    calls = [(line["name"], line["backend"], line["outcome"]) for line in lines if line.get("kind") == "tool"]
    assert calls == [
        ("ops/echo", "ops", "ok"),
        ("ops/echo", "ops", "ok"),
        ("twice", OWN, "ok"),
        ("hr/echo", "hr", "denied"),
        ("twice", OWN, "denied"),
    ]


async def test_a_principal_denied_an_own_tool_neither_sees_nor_calls_it() -> None:
    security = {"policy": {"rules": [{"principals": ["local"], "deny": ["twice"]}]}}
    async with gateway_with(security=security) as gw, connect(gw, Surface(gw, [Twice()])) as c:
        listed = {t.name for t in await all_tools(c)}
        with pytest.raises(MCPError) as caught:
            await c.call_tool("twice", {"tool": "ops/echo", "text": "a"})
    assert "twice" not in listed and "ops/echo" in listed
    assert caught.value.code == INVALID_PARAMS
    assert "twice" in caught.value.message


async def test_a_cancelled_own_tool_cancels_the_call_it_is_making() -> None:
    started, cancelled = anyio.Event(), anyio.Event()

    class Slow(Twice):
        async def call(self, reach: Reach, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
            started.set()
            try:
                return await reach.call_tool("ops/slow", {"seconds": 30})
            except anyio.get_cancelled_exc_class():
                cancelled.set()
                raise

    async with gateway_with() as gw:
        surface = Surface(gw, [Slow()])
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: surface.call_tool(_caller(gw), "twice", {}))
                await started.wait()
                tg.cancel_scope.cancel()
            assert cancelled.is_set()


@pytest.mark.parametrize("fast_path", [True, False])
async def test_a_2026_http_client_calls_own_tools_on_either_path(fast_path: bool) -> None:
    meta = {
        types.PROTOCOL_VERSION_META_KEY: "2026-07-28",
        types.CLIENT_CAPABILITIES_META_KEY: {},
        types.CLIENT_INFO_META_KEY: {"name": "mcp-inspector", "version": "1"},
    }
    params = {"name": "twice", "arguments": {"tool": "ops/echo", "text": "x"}, "_meta": meta}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    headers = {
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "twice",
    }
    twice = Twice()
    async with gateway_with(json_response=True, fast_path=fast_path) as gw:
        app = build_app(gw, surface=Surface(gw, [twice]))
        transport = httpx2.ASGITransport(app=app)
        async with lifespan(app), httpx2.AsyncClient(transport=transport, base_url=LOCAL) as session:
            answer = await session.post("/mcp", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["structuredContent"]["texts"] == ["x", "x"]
    assert len(twice.seen) == 1


def _caller(gateway: Gateway) -> Caller:
    return Caller(principal=gateway.guard.local)


async def test_a_views_schemas_are_the_ones_it_shows_under_either_rendering() -> None:
    server = ServerConfig(
        tools=("ops/echo", "ops/slow"), overrides={"ops/slow": {"name": "nap", "fixed": {"seconds": 0}}}
    )
    async with gateway_with() as gw:
        surface = Surface(gw, view=View(server, gw.config.backends))
        nap, echo, strict = (
            surface.input_schema("nap"),
            surface.input_schema("ops/echo"),
            surface.input_schema("ops__echo"),
        )
        hidden = surface.input_schema("ops/search")
    assert nap is not None and "seconds" not in nap.get("properties", {})
    assert echo is not None and echo == strict and "text" in echo["properties"]
    assert hidden is None


async def test_a_tools_input_schema_is_looked_up_without_going_through_every_tool_each_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with gateway_with() as gw:
        surface = Surface(gw, [Twice()])
        expected = surface.input_schema("twice")

        def everything(style: Style) -> list[types.Tool]:
            raise AssertionError("every tool gone through again for one schema")

        monkeypatch.setattr(surface, "everything", everything)
        again = [surface.input_schema("twice") for _ in range(3)]
        missing = surface.input_schema("nothing")
    assert expected is not None and expected["properties"]["tool"] == {"type": "string"}
    assert again == [expected] * 3 and missing is None
