"""The whole stack on real sockets: three sample backends and the gateway as subprocesses, SDK clients in front."""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError, StdioServerParameters, types

from tests.support.inproc import READER_INFO
from tests.support.procs import ROOT, http_get, run_python, wait_until
from tests.support.stack import BACKENDS, Stack

pytestmark = [pytest.mark.anyio, pytest.mark.processes]
ERAS = ["legacy", "2026-07-28"]
STRICT = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
READ_CALLS = {
    "ops": ("lookup_inventory", {"sku": "SRV-R740-01"}),
    "hr": ("get_employee", {"employee_id": "E1002"}),
    "finance": ("calculate_budget", {"department": "Engineering", "quarter": "2026-Q1"}),
}


def info(name: str) -> types.Implementation:
    return types.Implementation(name=name, version="1.0")


def comparable(result: types.CallToolResult) -> dict[str, Any]:
    """A result without its ``_meta``, which carries the answering server's identity on 2026 connections."""
    return result.model_dump(exclude={"meta"})


@pytest.mark.parametrize("mode", ERAS)
async def test_every_backend_tool_is_exposed_unchanged_but_for_its_prefixed_name(stack: Stack, mode: str) -> None:
    async with Client(stack.url, mode=mode, client_info=READER_INFO) as gateway:
        exposed = {t.name: t for t in (await gateway.list_tools()).tools}
        prompts = {p.name for p in (await gateway.list_prompts()).prompts}
    expected: set[str] = set()
    for name, prefix in BACKENDS.items():
        async with Client(stack.backend_url(name), mode=mode) as direct:
            tools = (await direct.list_tools()).tools
            expected |= {f"{prefix}/{p.name}" for p in (await direct.list_prompts()).prompts}
        for tool in tools:
            mine = exposed[f"{prefix}/{tool.name}"]
            assert mine.model_dump(exclude={"name"}) == tool.model_dump(exclude={"name"})
        assert f"{prefix}/search" in exposed
    assert len(exposed) == sum(1 for n in exposed if n.split("/")[0] in BACKENDS.values())
    assert prompts == expected


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("backend", list(READ_CALLS))
async def test_a_call_through_the_gateway_returns_what_a_direct_call_returns(
    stack: Stack, mode: str, backend: str
) -> None:
    tool, arguments = READ_CALLS[backend]
    async with Client(stack.url, mode=mode) as gateway, Client(stack.backend_url(backend), mode=mode) as direct:
        through = await gateway.call_tool(f"{BACKENDS[backend]}/{tool}", arguments)
        straight = await direct.call_tool(tool, arguments)
    assert not through.is_error
    assert comparable(through) == comparable(straight)


@pytest.mark.parametrize("mode", ERAS)
async def test_a_strict_client_sees_only_strict_names_and_can_call_them(stack: Stack, mode: str) -> None:
    async with Client(stack.url, mode=mode, client_info=info("claude-ai")) as gateway:
        names = [t.name for t in (await gateway.list_tools()).tools]
        result = await gateway.call_tool("ops__lookup_inventory", {"sku": "SRV-R740-01"})
    assert names and all(STRICT.match(n) for n in names)
    assert {"ops__search", "hr__search", "fin__search"} <= set(names)
    assert not result.is_error and result.structured_content


async def test_search_tools_of_different_backends_reach_different_backends(stack: Stack) -> None:
    async with Client(stack.url) as gateway:
        ops = await gateway.call_tool("ops/search", {"query": "nvme"})
        hr = await gateway.call_tool("hr/search", {"query": "nvme"})
        fin = await gateway.call_tool("fin/search", {"query": "Engineering"})
    assert ops.structured_content and ops.structured_content["count"] > 0
    assert hr.structured_content is not None and hr.structured_content["count"] == 0
    assert fin.structured_content and fin.structured_content["count"] > 0


async def test_an_unknown_tool_is_invalid_params_naming_it(stack: Stack) -> None:
    async with Client(stack.url) as gateway:
        with pytest.raises(MCPError) as caught:
            await gateway.call_tool("ops/no_such_tool", {})
    assert caught.value.code == types.INVALID_PARAMS
    assert "ops/no_such_tool" in caught.value.message


async def test_a_backends_invalid_params_error_passes_through(stack: Stack) -> None:
    async with Client(stack.url) as gateway:
        with pytest.raises(MCPError) as caught:
            await gateway.call_tool("fin/calculate_budget", {"department": "Engineering", "quarter": "Q5"})
    assert caught.value.code == types.INVALID_PARAMS


def test_health_and_readiness_report_every_backend(stack: Stack) -> None:
    assert http_get(f"{stack.base}/healthz") == (200, {"status": "ok"})
    status, body = http_get(f"{stack.base}/readyz")
    assert status == 200 and body["status"] == "ready"
    assert {b["name"]: b["state"] for b in body["backends"]} == dict.fromkeys(BACKENDS, "ready")
    assert all(b["tools"] > 0 for b in body["backends"])


async def test_a_ticket_created_through_the_gateway_survives_an_ops_restart(stack: Stack) -> None:
    title = "Disk alarm on db-7 after restart test"
    async with Client(stack.url) as gateway:
        created = await gateway.call_tool(
            "ops/create_ticket", {"title": title, "description": "raised by the test", "priority": "high"}
        )
        assert not created.is_error
        stack.stop_backend("ops")
        await anyio.to_thread.run_sync(lambda: wait_until(lambda: stack.backend_state("ops") != "ready"))
        with pytest.raises(MCPError) as down:
            await gateway.call_tool("ops/list_tickets", {})
        stack.start_backend("ops")
        await anyio.to_thread.run_sync(stack.wait_ready)
        listed = await gateway.call_tool("ops/list_tickets", {"limit": 100})
    assert down.value.code == -32050 and down.value.data == {"backend": "ops"}
    assert title in json.dumps(listed.structured_content)


async def test_the_stdio_gateway_serves_the_same_catalogue(stack: Stack) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "gateway", "stdio", "--config", str(stack.config_path), "--log-level", "warning"],
        cwd=str(ROOT),
    )
    async with Client(stack.url) as http:
        over_http = [t.model_dump() for t in (await http.list_tools()).tools]
    with anyio.fail_after(60):
        async with Client(params) as stdio:
            over_stdio = [t.model_dump() for t in (await stdio.list_tools()).tools]
            result = await stdio.call_tool("hr/get_employee", {"employee_id": "E1002"})
    assert over_stdio == over_http
    assert not result.is_error


def test_a_raw_json_rpc_call_in_the_2026_form_needs_no_session(stack: Stack) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "ops/lookup_inventory",
            "arguments": {"sku": "SRV-R740-01"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "ops/lookup_inventory",
    }
    request = urllib.request.Request(stack.url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    payload = json.loads(text[text.index("{") :].splitlines()[0]) if text.startswith(("event", "data")) else None
    payload = payload or json.loads(text)
    items = payload["result"]["structuredContent"]["items"]
    assert payload["id"] == 1 and items and {item["sku"] for item in items} == {"SRV-R740-01"}


def test_an_invalid_config_stops_the_start_with_status_2_and_one_message(tmp_path: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("backends:\n  - name: ops\n    transport: stdio\n")
    done = run_python("-m", "gateway", "serve", "--config", str(bad))
    assert done.returncode == 2
    assert str(bad) in done.stderr and "backends[0]" in done.stderr and "command" in done.stderr
    assert "Traceback" not in done.stderr
