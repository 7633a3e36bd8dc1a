"""The names each kind of client gets from the sample backends, in both eras: names every model API accepts, unless
the client is named as one that shows them to a person (``naming.canonical_clients``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import types

from backends.finance.server import build_server as finance
from backends.hr.server import build_server as hr
from backends.ops.server import build_server as ops
from gateway.catalogue.naming import Style
from gateway.core import Gateway
from tests.support.inproc import client, http, running_gateway

pytestmark = pytest.mark.anyio
ERAS = ["legacy", "auto"]
# OpenAI's function names; Anthropic's allow up to 128 characters, Claude Desktop's the same 64.
MODEL_API_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
VERSION = "2026-07-28"
SKU = {"sku": "SSD-1TB-NVME"}


@pytest.fixture
async def samples(tmp_path: Path) -> AsyncIterator[Gateway]:
    servers = {"ops": ops(tmp_path / "ops.db"), "hr": hr(tmp_path / "hr.db"), "finance": finance(tmp_path / "fin.db")}
    async with running_gateway(servers, {"ops": "ops", "hr": "hr", "finance": "fin"}) as gateway:
        yield gateway


async def test_every_strict_name_of_the_sample_catalogue_is_one_the_model_apis_accept(samples: Gateway) -> None:
    names = [item.name for item in samples.catalog.tools(Style.STRICT) + samples.catalog.prompts(Style.STRICT)]
    assert len(names) > 10
    assert [name for name in names if not MODEL_API_NAME.match(name)] == []


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize(
    "name",
    [
        "mcp",  # the Python SDK's default, which openai-agents and langchain-mcp-adapters send
        "openai-agents",
        "langchain-mcp-adapters",
        "claude-ai",  # Claude Desktop and claude.ai
        "some-new-agent",
    ],
)
async def test_sdk_based_and_unknown_clients_get_names_the_model_apis_accept(
    samples: Gateway, name: str, mode: str
) -> None:
    async with client(samples, name=name, mode=mode) as c:
        tools = [t.name for t in (await c.list_tools()).tools]
        prompts = [p.name for p in (await c.list_prompts()).prompts]
        result = await c.call_tool("ops__lookup_inventory", SKU)
    assert "ops__lookup_inventory" in tools and "fin__search" in tools
    assert [n for n in tools + prompts if not MODEL_API_NAME.match(n)] == []
    assert not result.is_error and result.structured_content


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("name", ["curl", "mcp-inspector"])
async def test_clients_named_as_showing_names_to_a_person_get_the_canonical_ones(
    samples: Gateway, name: str, mode: str
) -> None:
    async with client(samples, name=name, mode=mode) as c:
        tools = [t.name for t in (await c.list_tools()).tools]
        result = await c.call_tool("ops/lookup_inventory", SKU)
    assert tools == [t.name for t in samples.catalog.tools(Style.CANONICAL)]
    assert all("/" in n for n in tools) and "ops/lookup_inventory" in tools
    assert not result.is_error


def request(method: str, client_name: str | None, **params: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A 2026 request as curl sends it, with ``clientInfo`` in ``_meta`` only when ``client_name`` is given."""
    meta: dict[str, Any] = {types.PROTOCOL_VERSION_META_KEY: VERSION, types.CLIENT_CAPABILITIES_META_KEY: {}}
    if client_name is not None:
        meta[types.CLIENT_INFO_META_KEY] = {"name": client_name, "version": "1.0"}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": VERSION, "Mcp-Method": method}
    if "name" in params:
        headers["Mcp-Name"] = params["name"]
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}, headers


async def listed(session: httpx2.AsyncClient, client_name: str | None) -> list[str]:
    body, headers = request("tools/list", client_name)
    answer = (await session.post("/mcp", json=body, headers=headers)).json()
    return [tool["name"] for tool in answer["result"]["tools"]]


async def test_a_2026_request_without_client_info_lists_strict_names_and_may_call_either(samples: Gateway) -> None:
    async with http(samples) as session:
        # Twice each, interleaved: the second of each is a cached page, which must be of the asker's style.
        names = [await listed(session, who) for who in (None, "curl", None, "curl")]
        body, headers = request("tools/call", None, name="ops/lookup_inventory", arguments=SKU)
        called = (await session.post("/mcp", json=body, headers=headers)).json()
    assert names[0] == names[2] == [t.name for t in samples.catalog.tools(Style.STRICT)]
    assert names[1] == names[3] == [t.name for t in samples.catalog.tools(Style.CANONICAL)]
    assert called["result"]["isError"] is False
