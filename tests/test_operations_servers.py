"""Virtual servers, composites and search changed through the admin API while the gateway serves: served at once,
changed under their clients' sessions, removed to a 404, refused with the place named, and kept across a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx2
import pytest
from mcp import Client, MCPError, types
from mcp.client.streamable_http import streamable_http_client
from openapi_spec_validator import validate

from gateway.front.app import server_path
from gateway.operations.app import build_operated_app
from gateway.operations.runtime import Runtime, operated
from tests.support.inproc import READER_INFO, http_client, serving_app
from tests.test_auth import JWT_HS256
from tests.test_cli_backends import ADMIN_KEY, KEYS, cli
from tests.test_operations_runtime import Backends, Heard, config_of, names

pytestmark = pytest.mark.anyio
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
COMPOSITE = {
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    "steps": {"first": {"tool": "ops/echo", "arguments": {"text": {"$ref": "input.text"}}}},
    "result": {"said": {"$ref": "steps.first"}},
}


@dataclass
class Served:
    runtime: Runtime
    base: str
    admin: httpx2.AsyncClient


@asynccontextmanager
async def served(state: Path, **settings: Any) -> AsyncIterator[Served]:
    backends = Backends("ops", "hr")
    async with (
        operated(config_of("ops", "hr", **settings), state, backends.connect) as runtime,
        serving_app(build_operated_app(runtime.gateway, runtime=runtime), runtime.gateway.config) as port,
        httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}/admin/api") as admin,
    ):
        yield Served(runtime, f"http://127.0.0.1:{port}", admin)


@asynccontextmanager
async def listening_client(url: str, heard: Heard) -> AsyncIterator[Client]:
    """A 2025 client over streamable HTTP that notes the list_changed it hears."""
    async with httpx2.AsyncClient() as session:
        transport = streamable_http_client(url, http_client=session)
        async with Client(transport, mode="legacy", client_info=READER_INFO, message_handler=heard) as connected:  # type: ignore[arg-type]
            yield connected


async def ping(url: str) -> int:
    async with httpx2.AsyncClient() as session:
        return (await session.post(url, json=PING, headers=MCP_HEADERS)).status_code


def error(response: httpx2.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


async def test_a_server_added_is_served_at_once_and_callable(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        before = await ping(s.base + server_path("team"))
        added = await s.admin.put("/servers/team", json={"backends": ["ops"], "instructions": "The team's."})
        async with http_client(s.base + server_path("team")) as team:
            listed = await names(team)
            said = await team.call_tool("ops/echo", {"text": "via team"})
            instructions = team.instructions
        shown = (await s.admin.get("/servers")).json()["servers"]
    assert before == 404
    assert added.status_code == 201 and added.json()["source"] == "runtime"
    assert listed and all(name.startswith("ops/") for name in listed)
    assert said.content[0].text == "via team"  # type: ignore[union-attr]
    assert instructions == "The team's."
    assert [(e["name"], e["path"], e["config"]["backends"]) for e in shown] == [("team", "/servers/team/mcp", ["ops"])]


async def test_a_changed_view_keeps_the_session_and_its_clients_hear_of_the_new_list(tmp_path: Path) -> None:
    heard, others = Heard(), Heard()
    async with served(tmp_path) as s:
        await s.admin.put("/servers/team", json={"tools": ["ops/echo"]})
        await s.admin.put("/servers/other", json={"tools": ["hr/echo"]})
        async with (
            listening_client(s.base + server_path("team"), heard) as team,
            listening_client(s.base + server_path("other"), others) as other,
        ):
            first = await names(team)
            changed = await s.admin.put("/servers/team", json={"tools": ["ops/echo", "hr/search"]})
            await heard.next_tools()
            second = await names(team)
            other_still = await names(other)
            counted = (await s.admin.get("/servers/team")).json()
    assert changed.status_code == 200
    assert first == {"ops/echo"} and second == {"ops/echo", "hr/search"}
    assert other_still == {"hr/echo"}
    assert counted["sessions"] == 1 and counted["tools"] == 2


async def test_a_removed_server_ends_its_sessions_and_answers_404(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        await s.admin.put("/servers/team", json={"backends": ["ops"]})
        async with http_client(s.base + server_path("team"), mode="legacy") as team:
            await names(team)
            removed = await s.admin.delete("/servers/team")
            with pytest.raises(MCPError) as ended:
                await team.list_tools()
        after = await ping(s.base + server_path("team"))
        again = await s.admin.delete("/servers/team")
        async with http_client(s.base + "/mcp") as main:
            still = await names(main)
    assert removed.json() == {"removed": "team"}
    assert ended.value.code == types.INVALID_REQUEST  # the SDK client's word for a session answered 404
    assert after == 404
    assert (again.status_code, error(again)["code"]) == (404, "unknown_server")
    assert "ops/echo" in still


async def test_a_definition_the_file_would_refuse_is_a_422_naming_the_place_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with served(tmp_path) as s:
        before = s.runtime.gateway.config
        empty = await s.admin.put("/servers/team", json={"tools": [""]})
        unknown = await s.admin.put("/servers/team", json={"backends": ["nobody"]})
        override = await s.admin.put("/servers/team", json={"tools": ["ops/*"], "overrides": {"ops/nope": {}}})
        step = await s.admin.put("/composites/twice", json={**COMPOSITE, "steps": {"first": {"tool": "ops/nope"}}})
        name = await s.admin.put("/servers/Team!", json={"backends": ["ops"]})
        garbled = await s.admin.put("/servers/team", content=b"{not json")
        search = await s.admin.put("/search", json={"lazy": True})
        missing = await s.admin.get("/composites/nothing")
        path = await ping(s.base + server_path("team"))
    fields = [error(r)["field"] for r in (empty, unknown, override, step, name, search)]
    assert {r.status_code for r in (empty, unknown, override, step, name, search)} == {422}
    assert fields == [
        "servers.team.tools",
        "servers.team.backends",
        "servers.team.overrides.ops/nope",
        "composites.twice.steps.first",
        "servers.Team!",
        "search",
    ]
    assert garbled.status_code == 400
    assert (missing.status_code, error(missing)["code"]) == (404, "unknown_composite")
    assert s.runtime.gateway.config == before and path == 404


async def test_a_backend_a_server_includes_is_not_removed_from_under_it(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        await s.admin.put("/servers/team", json={"backends": ["hr"]})
        refused = await s.admin.delete("/backends/hr")
        still = [b.name for b in s.runtime.gateway.config.backends]
    assert (refused.status_code, error(refused)["field"]) == (422, "servers.team.backends")
    assert still == ["ops", "hr"]


async def test_composites_and_search_change_what_mcp_lists(tmp_path: Path) -> None:
    heard = Heard()
    async with served(tmp_path) as s, listening_client(s.base + "/mcp", heard) as main:
        added = await s.admin.put("/composites/twice", json=COMPOSITE)
        await heard.next_tools()
        with_composite = await names(main)
        result = await main.call_tool("twice", {"text": "hi"})
        searched = await s.admin.put("/search", json={"enabled": True, "lazy": True, "always": ["ops/echo"]})
        await heard.next_tools()
        lazy = await names(main)
        reset = await s.admin.delete("/search")
        await heard.next_tools()
        removed = await s.admin.delete("/composites/twice")
        await heard.next_tools()
        after = await names(main)
        listed = (await s.admin.get("/composites")).json()
    assert added.status_code == 201 and added.json()["servers"] == []
    assert "twice" in with_composite and result.structured_content == {"said": {"result": "hi"}}
    assert searched.json()["source"] == "runtime"
    assert lazy == {"search_tools", "describe_tool", "call_tool", "ops/echo"}
    assert reset.json()["source"] == "config" and removed.status_code == 200
    assert "twice" not in after and "hr/echo" in after and listed == {"composites": []}


async def test_a_restart_keeps_the_changes(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        await s.admin.put("/servers/team", json={"tools": ["ops/echo"]})
        await s.admin.put("/composites/twice", json=COMPOSITE)
    async with served(tmp_path) as s:
        servers = (await s.admin.get("/servers")).json()["servers"]
        async with http_client(s.base + server_path("team")) as team:
            listed = await names(team)
        async with http_client(s.base + "/mcp") as main:
            said = await main.call_tool("twice", {"text": "again"})
    assert [(e["name"], e["source"]) for e in servers] == [("team", "runtime")]
    assert listed == {"ops/echo"}
    assert said.structured_content == {"said": {"result": "again"}}


async def test_views_follow_a_backends_new_prefix(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        await s.admin.put("/servers/team", json={"backends": ["hr"]})
        async with http_client(s.base + server_path("team"), mode="legacy") as team:
            before = await names(team)
            changed = await s.admin.put("/backends/hr", json={"url": "http://hr.invalid/mcp", "prefix": "people"})
            after = await names(team)
    assert changed.status_code == 200
    assert before and all(name.startswith("hr/") for name in before)
    assert after == {name.replace("hr/", "people/") for name in before}


async def test_a_reload_applies_the_files_servers_and_keeps_them_when_the_listings_refuse_the_new_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with served(tmp_path) as s:
        await s.runtime.reload(config_of("ops", "hr", servers={"team": {"tools": ["hr/echo"]}}))
        async with http_client(s.base + server_path("team")) as team:
            listed = await names(team)
        unknown = {"team": {"tools": ["hr/*"], "overrides": {"hr/nope": {"title": "Nope"}}}}
        await s.runtime.reload(config_of("ops", "hr", servers=unknown))
        kept = s.runtime.gateway.config.servers["team"].tools
        await s.runtime.reload(config_of("ops", "hr"))
        gone = await ping(s.base + server_path("team"))
    refusals = [r.getMessage() for r in caplog.records if "left as they were" in r.getMessage()]
    assert listed == {"hr/echo"} and kept == ("hr/echo",) and gone == 404
    assert len(refusals) == 1 and "servers.team.overrides.hr/nope: unknown tool" in refusals[0]


async def test_a_change_made_over_the_files_definition_gives_way_to_a_later_edit_of_the_file(tmp_path: Path) -> None:
    file = config_of("ops", "hr", servers={"team": {"tools": ["ops/echo"]}})
    backends = Backends("ops", "hr")
    async with operated(file, tmp_path, backends.connect) as runtime:
        await runtime.endpoints.put("servers", "team", {"tools": ["hr/echo"]})
    async with operated(file, tmp_path, backends.connect) as runtime:
        kept = runtime.gateway.config.servers["team"].tools
    edited = config_of("ops", "hr", servers={"team": {"tools": ["ops/search"]}})
    async with operated(edited, tmp_path, backends.connect) as runtime:
        after_edit = runtime.gateway.config.servers["team"].tools
        source = runtime.endpoints.server("team")["source"]
    assert kept == ("hr/echo",) and after_edit == ("ops/search",) and source == "config"


async def test_the_cli_adds_lists_and_removes_a_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    definition = tmp_path / "team.yaml"
    definition.write_text("description: The team's tools\ntools: [ops/echo]\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("backends: [nobody]\n")
    async with served(tmp_path / "state") as s:
        url = s.base
        added = await anyio.to_thread.run_sync(cli, "servers", "add", "team", str(definition), "--url", url)
        refused = await anyio.to_thread.run_sync(cli, "servers", "add", "other", str(broken), "--url", url)
        listed = await anyio.to_thread.run_sync(cli, "servers", "list", "--url", url)
        out = capsys.readouterr()
        removed = await anyio.to_thread.run_sync(cli, "servers", "remove", "team", "--url", url)
        gone = await ping(s.base + server_path("team"))
    header, row = out.out.splitlines()[1:]
    assert (added, refused, listed, removed, gone) == (0, 1, 0, 0, 404)
    assert out.out.splitlines()[0] == "serving team at /servers/team/mcp"
    assert header.split() == ["SERVER", "PATH", "SOURCE", "SESSIONS", "TOOLS", "DESCRIPTION"]
    assert row.split()[:5] == ["team", "/servers/team/mcp", "runtime", "0", "1"]
    assert "servers.other.backends" in out.err and out.err.count("\n") == 1


async def test_the_openapi_document_describes_every_endpoint_of_servers_composites_and_search(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        document = (await s.admin.get(s.base + "/admin/openapi.json")).json()
    validate(document)
    found = {(path, method) for path, operations in document["paths"].items() for method in operations}
    for path in ("/admin/api/servers/{name}", "/admin/api/composites/{name}"):
        assert {(path, "get"), (path, "put"), (path, "delete")} <= found
    assert {("/admin/api/search", method) for method in ("get", "put", "delete")} <= found
    assert {("/admin/api/servers", "get"), ("/admin/api/composites", "get")} <= found


async def test_a_server_added_while_serving_has_its_protected_resource_metadata(tmp_path: Path) -> None:
    security = {"auth": {**KEYS["auth"], **JWT_HS256}}
    async with served(tmp_path, security=security) as s:
        s.admin.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        document = s.base + "/.well-known/oauth-protected-resource" + server_path("team")
        before = await s.admin.get(document)
        await s.admin.put("/servers/team", json={"backends": ["ops"]})
        after = await s.admin.get(document)
        async with httpx2.AsyncClient() as session:
            refused = await session.post(s.base + server_path("team"), json=PING, headers=MCP_HEADERS)
    assert before.status_code == 404
    assert after.status_code == 200 and after.json()["resource"] == s.base + server_path("team")
    assert refused.status_code == 401 and document in refused.headers["www-authenticate"]
