"""Closing a 2025 session through the SDK's table, and which requests open one. The SDK internals the table reaches
through ``gateway.sdk`` are checked in ``tests/test_sdk.py``."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.server import Server
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from gateway.front.session_table import SessionTable, opens_session

pytestmark = pytest.mark.anyio


def manager() -> StreamableHTTPSessionManager:
    return StreamableHTTPSessionManager(app=Server("contract"), max_sessions=7)


async def test_closing_a_session_forgets_it_at_once_and_terminates_its_transport() -> None:
    made, table = manager(), SessionTable()
    table.bind(made)
    transport = StreamableHTTPServerTransport(mcp_session_id="s1", idle_timeout=60)
    made._server_instances["s1"] = transport
    table.hold("s1", "api_key:alice")
    assert (table.size, table.held("api_key:alice"), table.largest_holder("x", {})) == (1, ["s1"], "api_key:alice")
    await table.close("s1")
    await table.close("s1")  # already gone: nothing to do
    assert transport.is_terminated
    assert (table.size, table.held("api_key:alice"), table.largest_holder("x", {"x": 1})) == (0, [], "x")


def scope(**headers: str) -> dict[str, Any]:
    return {"type": "http", "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}


@pytest.mark.parametrize(
    ("headers", "opens"),
    [
        ({}, True),
        ({"MCP-Protocol-Version": "2025-06-18"}, True),
        ({"Mcp-Session-Id": "abc"}, False),
        ({"MCP-Protocol-Version": "2026-07-28"}, False),
        ({"MCP-Protocol-Version": "1999-01-01"}, False),
    ],
)
def test_a_request_opens_a_session_when_it_names_none_in_the_2025_era(headers: dict[str, str], opens: bool) -> None:
    assert opens_session(scope(**headers)) is opens
