"""A 2026 request without its Mcp-Method or Mcp-Name header is told the header is missing, on both paths."""

from __future__ import annotations

import json

import pytest
from mcp_types import HEADER_MISMATCH

from tests.support.inproc import http, running_gateway
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
VERSION = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": VERSION, "io.modelcontextprotocol/clientCapabilities": {}}
CALL = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "tools/call",
    "params": {"name": "toy/echo", "arguments": {"text": "hi"}, "_meta": META},
}
BASE = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": VERSION,
}


async def answers(fast_path: bool, *heads: dict[str, str]) -> list[tuple[int, bytes]]:
    async with running_gateway({"toy": build()}, fast_path=fast_path) as gw, http(gw) as client:
        found = []
        for head in heads:
            response = await client.post("/mcp", content=json.dumps(CALL), headers={**BASE, **head})
            assert int(response.headers["content-length"]) == len(response.content)
            found.append((response.status_code, response.content))
        return found


@pytest.mark.parametrize("fast_path", [True, False])
async def test_a_missing_routing_header_is_called_missing_and_a_wrong_one_wrong(fast_path: bool) -> None:
    no_method, no_name, wrong_method, wrong_name, right = await answers(
        fast_path,
        {"mcp-name": "toy/echo"},
        {"mcp-method": "tools/call"},
        {"mcp-method": "tools/list", "mcp-name": "toy/echo"},
        {"mcp-method": "tools/call", "mcp-name": "toy/other"},
        {"mcp-method": "tools/call", "mcp-name": "toy/echo"},
    )
    refused = [(status, json.loads(body)) for status, body in (no_method, no_name, wrong_method, wrong_name)]
    errors = [(status, body["id"], body["error"]) for status, body in refused]
    assert [(status, request_id, error["code"]) for status, request_id, error in errors] == [
        (400, 7, HEADER_MISMATCH)
    ] * 4
    assert [error["message"] for _, _, error in errors] == [
        "mcp-method header is missing; it must repeat the request body's method",
        "mcp-name header is missing; it must repeat the request body's 'name' parameter",
        "mcp-method header does not match the request body's method",
        "mcp-name header does not match the request body's 'name' parameter",
    ]
    assert right[0] == 200 and json.loads(right[1])["result"]["content"][0]["text"] == "hi"


async def test_both_paths_answer_a_missing_header_byte_for_byte_alike() -> None:
    head = {"mcp-name": "toy/echo"}
    assert await answers(True, head) == await answers(False, head)
