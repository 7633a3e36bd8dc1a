"""The ops backend through a real MCP client, in process."""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp.types import INVALID_PARAMS, TextContent, TextResourceContents, ToolAnnotations

from backends.ops.server import build_server
from tests.backends.support import ok, refused

pytestmark = pytest.mark.anyio

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


@pytest.fixture(params=["auto", "legacy"])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Client]:
    """Both protocol eras: 2026-07-28 (auto, in process) and the 2025 initialize handshake (legacy)."""
    async with Client(build_server(tmp_path / "ops.sqlite3"), mode=request.param) as connected:
        yield connected


async def test_lists_the_tools_with_schemas_and_annotations(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(tools) == {"lookup_inventory", "create_ticket", "list_tickets", "update_ticket_status", "search"}
    assert all(tool.output_schema and tool.title and tool.description for tool in tools.values())
    assert tools["lookup_inventory"].annotations == READ_ONLY
    assert tools["create_ticket"].annotations == ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
    )
    assert tools["update_ticket_status"].annotations == ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    )
    assert tools["create_ticket"].input_schema["required"] == ["title", "description", "priority"]
    assert tools["list_tickets"].input_schema["properties"]["limit"]["maximum"] == 100
    assert client.server_info is not None and client.server_info.name == "ops"
    assert client.instructions


async def test_lookup_by_sku_lists_every_warehouse(client: Client) -> None:
    found = await ok(client, "lookup_inventory", {"sku": "srv-r740-01"})

    assert found["count"] == 3
    assert {item["warehouse"] for item in found["items"]} == {"AMS-1", "FRA-2", "NYC-1"}
    fra = next(item for item in found["items"] if item["warehouse"] == "FRA-2")
    assert fra["needs_reorder"] is True


async def test_lookup_filters_combine_and_no_filter_lists_everything(client: Client) -> None:
    nvme_fra = await ok(client, "lookup_inventory", {"name_contains": "nvme ssd", "warehouse": "FRA-2"})
    everything = await ok(client, "lookup_inventory", {})

    assert [item["sku"] for item in nvme_fra["items"]] == ["SSD-1TB-NVME"]
    assert everything["count"] >= 30


async def test_lookup_of_an_unknown_sku_is_a_tool_error(client: Client) -> None:
    assert "No inventory item with SKU 'NOPE-1'" in await refused(client, "lookup_inventory", {"sku": "NOPE-1"})


async def test_ticket_lifecycle(client: Client) -> None:
    created = await ok(
        client,
        "create_ticket",
        {"title": "Fan alarm on app-ams-07", "description": "Fan 3 at 100%", "priority": "high", "assignee": "s.patel"},
    )
    moved = await ok(client, "update_ticket_status", {"ticket_id": created["id"], "status": "in_progress"})
    in_progress = await ok(client, "list_tickets", {"status": "in_progress"})

    assert created["status"] == "open"
    assert created["created_at"].endswith("Z") or "+00:00" in created["created_at"]
    assert moved["status"] == "in_progress"
    assert created["id"] in [ticket["id"] for ticket in in_progress["tickets"]]
    assert all(ticket["status"] == "in_progress" for ticket in in_progress["tickets"])


async def test_list_tickets_is_newest_first_and_limited(client: Client) -> None:
    listed = await ok(client, "list_tickets", {"limit": 2})

    assert listed["count"] == 2
    assert listed["tickets"][0]["id"] > listed["tickets"][1]["id"]


async def test_updating_an_unknown_ticket_is_a_tool_error(client: Client) -> None:
    assert "No ticket with id 4242" in await refused(
        client, "update_ticket_status", {"ticket_id": 4242, "status": "closed"}
    )


async def test_search_covers_inventory_and_tickets(client: Client) -> None:
    found = await ok(client, "search", {"query": "psu FRA-2"})

    kinds = {hit["kind"] for hit in found["results"]}
    assert kinds == {"inventory", "ticket"}
    assert found["results"][0]["id"] == "PSU-750W-HP@FRA-2"


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("list_tickets", {"limit": 0}),
        ("list_tickets", {"limit": "many"}),
        ("list_tickets", {"status": "done"}),
        ("create_ticket", {"title": "No description", "priority": "low"}),
        ("create_ticket", {"title": "Bad priority", "description": "x", "priority": "urgent"}),
        ("update_ticket_status", {"ticket_id": "seven", "status": "closed"}),
        ("lookup_inventory", {"warehouse": "LON-1"}),
        ("search", {"query": ""}),
        ("search", {"query": "   "}),
        ("no_such_tool", {}),
    ],
)
async def test_invalid_arguments_are_invalid_params(client: Client, tool: str, arguments: dict[str, Any]) -> None:
    with pytest.raises(MCPError) as raised:
        await client.call_tool(tool, arguments)

    assert raised.value.code == INVALID_PARAMS
    assert "Traceback" not in raised.value.message


async def test_inventory_summary_resource(client: Client) -> None:
    resources = (await client.list_resources()).resources
    summary = json.loads(await read_text(client, "ops://inventory/summary"))

    assert [str(resource.uri) for resource in resources] == ["ops://inventory/summary"]
    assert {row["warehouse"] for row in summary["warehouses"]} == {"AMS-1", "FRA-2", "NYC-1"}
    fra = next(row for row in summary["warehouses"] if row["warehouse"] == "FRA-2")
    assert "SRV-R740-01" in fra["needs_reorder"]


async def test_ticket_resource_template(client: Client) -> None:
    templates = (await client.list_resource_templates()).resource_templates
    ticket = json.loads(await read_text(client, "ops://tickets/1"))

    assert [template.uri_template for template in templates] == ["ops://tickets/{ticket_id}"]
    assert ticket["id"] == 1
    assert ticket["title"] == "Disk failure on db-ams-03"


@pytest.mark.parametrize("uri", ["ops://tickets/999", "ops://tickets/abc"])
async def test_unknown_ticket_resource_is_invalid_params(client: Client, uri: str) -> None:
    with pytest.raises(MCPError) as raised:
        await client.read_resource(uri)

    assert raised.value.code == INVALID_PARAMS


async def test_incident_report_prompt(client: Client) -> None:
    prompts = (await client.list_prompts()).prompts
    rendered = await client.get_prompt("incident_report", {"ticket_id": "4"})

    assert [(p.name, [a.name for a in p.arguments or []]) for p in prompts] == [("incident_report", ["ticket_id"])]
    text = rendered.messages[0].content
    assert isinstance(text, TextContent)
    assert "Latency spikes on AMS-1 core switch" in text.text


@pytest.mark.parametrize("arguments", [{"ticket_id": "999"}, {}])
async def test_incident_report_for_a_missing_ticket_is_invalid_params(
    client: Client, arguments: dict[str, str]
) -> None:
    with pytest.raises(MCPError) as raised:
        await client.get_prompt("incident_report", arguments)

    assert raised.value.code == INVALID_PARAMS


async def test_concurrent_ticket_creation_gets_distinct_ids(client: Client) -> None:
    ids: list[int] = []

    async def create(n: int) -> None:
        created = await ok(client, "create_ticket", {"title": f"Batch {n}", "description": "d", "priority": "low"})
        ids.append(created["id"])

    async with anyio.create_task_group() as tg:
        for n in range(12):
            tg.start_soon(create, n)

    assert len(set(ids)) == 12


async def test_writes_survive_a_rebuild_and_seed_runs_once(tmp_path: Path) -> None:
    db = tmp_path / "ops.sqlite3"
    async with Client(build_server(db)) as first:
        created = await ok(first, "create_ticket", {"title": "Persist me", "description": "d", "priority": "medium"})
        before = await ok(first, "lookup_inventory", {})

    async with Client(build_server(db)) as second:
        ticket = json.loads(await read_text(second, f"ops://tickets/{created['id']}"))
        after = await ok(second, "lookup_inventory", {})

    assert ticket["title"] == "Persist me"
    assert after["count"] == before["count"]


async def read_text(client: Client, uri: str) -> str:
    contents = (await client.read_resource(uri)).contents
    assert isinstance(contents[0], TextResourceContents)
    assert contents[0].mime_type == "application/json"
    return contents[0].text
