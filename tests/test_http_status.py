"""A 2026 error's HTTP status is the one the README's error table gives its code, on the fast path and the SDK's."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from gateway.errors import BACKEND_UNAVAILABLE, RATE_LIMITED, UNAUTHORIZED
from tests.support.inproc import http, running_gateway
from tests.support.procs import ROOT
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
VERSION = "2026-07-28"
KEY = "a-key-for-the-status-tests"
META = {"io.modelcontextprotocol/protocolVersion": VERSION, "io.modelcontextprotocol/clientCapabilities": {}}
SECURITY = {
    "auth": {"api_keys": [{"principal": "alice", "key": KEY}]},
    "policy": {"rules": [{"principals": ["alice"], "allow": ["*"]}]},
    "limits": {"per_tool": {"ops/search": {"rate": 0.001, "burst": 1}}},
}


def documented() -> dict[int, set[int]]:
    """The README's error table: each code and the HTTP statuses its row names for the 2026 era."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Errors\n") : readme.index("\n## ", readme.index("## Errors\n") + 1)]
    statuses: dict[int, set[int]] = {}
    for codes, status in re.findall(r"^\| (`-\d+`(?:, `-\d+`)*) \|.*\| ([^|]*) \|$", table, flags=re.M):
        for code in re.findall(r"-\d+", codes):
            statuses[int(code)] = {int(s) for s in re.findall(r"\d{3}", status)}
    return statuses


def request(method: str, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": META}}


# What to send, and the code it must be answered with.
CASES: list[tuple[str, dict[str, Any], dict[str, str], int]] = [
    ("unknown tool", request("tools/call", name="ops/nope", arguments={}), {}, -32602),
    ("backend down", request("tools/call", name="hr/echo", arguments={"text": "x"}), {}, BACKEND_UNAVAILABLE),
    ("unknown method", request("nope/nothing"), {}, -32601),
    ("no credential", request("tools/list"), {"authorization": "Bearer not-the-key"}, UNAUTHORIZED),
    ("rate limited", request("tools/call", name="ops/search", arguments={"query": "x"}), {}, RATE_LIMITED),
]


@pytest.mark.parametrize("fast_path", [True, False])
async def test_each_codes_status_is_the_one_the_readme_gives_it(fast_path: bool) -> None:
    table = documented()
    servers = {"ops": build("ops"), "hr": None}
    settings = {"security": SECURITY, "fast_path": fast_path}
    seen = []
    async with running_gateway(servers, **settings) as gw, http(gw, authorization=f"Bearer {KEY}") as client:
        spend = request("tools/call", name="ops/search", arguments={"query": "x"})
        assert (await client.post("/mcp", content=json.dumps(spend), headers=heads(spend))).status_code == 200
        for what, message, extra, _ in CASES:
            response = await client.post("/mcp", content=json.dumps(message), headers={**heads(message), **extra})
            seen.append((what, response.json()["error"]["code"], response.status_code))
    assert [(what, got) for what, got, _ in seen] == [(what, code) for what, _, _, code in CASES]
    assert all(status in table[code] for _, code, status in seen), (seen, table)


def heads(message: dict[str, Any]) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": VERSION,
        "mcp-method": message["method"],
    }
    name = message["params"].get("name")
    return {**headers, "mcp-name": name} if name else headers
