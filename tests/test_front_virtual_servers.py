"""Virtual servers' endpoints: each served at /servers/<name>/mcp as /mcp is, in both eras, behind its access rule."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp import types

from gateway.catalogue.naming import Style
from gateway.composition.sources import Reach
from gateway.composition.surface import Surface
from gateway.core import Gateway
from gateway.front.app import VirtualServer, build_app, server_path
from tests.support.inproc import http_client, running_gateway, serving_app
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ERAS = ["legacy", "auto"]


class Hello:
    def tools(self, style: Style) -> Sequence[types.Tool]:
        return [types.Tool(name="hello", input_schema={"type": "object"})]

    def owns(self, name: str) -> bool:
        return name == "hello"

    async def call(self, reach: Reach, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text="hello")])


@asynccontextmanager
async def served(admits: bool = True) -> AsyncIterator[tuple[Gateway, str]]:
    async with running_gateway({"ops": build("ops")}) as gw:
        team = VirtualServer(Surface(gw, [Hello()]), lambda principal: admits, "The team's server.")
        app = build_app(gw, servers={"team": team})
        async with serving_app(app, gw.config) as port:
            yield gw, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("mode", ERAS)
async def test_a_virtual_server_serves_its_own_surface_beside_mcp(mode: str) -> None:
    async with served() as (_, base):
        async with http_client(base + server_path("team"), mode=mode) as team:
            team_tools = {t.name for t in (await team.list_tools()).tools}
            said = await team.call_tool("hello", {})
            echoed = await team.call_tool("ops/echo", {"text": "via team"})
        async with http_client(base + "/mcp", mode=mode) as main:
            main_tools = {t.name for t in (await main.list_tools()).tools}
    assert "hello" in team_tools and "ops/echo" in team_tools
    assert "hello" not in main_tools and "ops/echo" in main_tools
    assert said.content[0].text == "hello"  # type: ignore[union-attr]
    assert echoed.content[0].text == "via team"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ERAS)
async def test_a_client_gets_the_virtual_servers_instructions(mode: str) -> None:
    async with served() as (_, base), http_client(base + server_path("team"), mode=mode) as team:
        assert team.instructions == "The team's server."


async def test_a_principal_the_server_does_not_admit_gets_the_404_of_a_server_that_does_not_exist() -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    async with served(admits=False) as (_, base), httpx2.AsyncClient() as session:
        refused = await session.post(base + server_path("team"), json=body, headers=headers)
        missing = await session.post(base + server_path("nobody"), json=body, headers=headers)
    assert refused.status_code == missing.status_code == 404
    assert refused.text == missing.text
