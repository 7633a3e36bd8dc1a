"""The hr backend through a real MCP client, in process."""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, MCPError
from mcp.types import INVALID_PARAMS, TextContent, TextResourceContents, ToolAnnotations

from backends.hr.server import build_server
from tests.backends.support import ok, refused

pytestmark = pytest.mark.anyio

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)

# Far from the seeded 2026 requests, so balances start full.
YEAR = 2031


@pytest.fixture(params=["auto", "legacy"])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Client]:
    """Both protocol eras: 2026-07-28 (auto, in process) and the 2025 initialize handshake (legacy)."""
    async with Client(build_server(tmp_path / "hr.sqlite3"), mode=request.param) as connected:
        yield connected


def leave(employee_id: str, start: str, end: str, kind: str = "vacation") -> dict[str, Any]:
    return {"employee_id": employee_id, "start_date": f"{YEAR}-{start}", "end_date": f"{YEAR}-{end}", "kind": kind}


async def test_lists_the_tools(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(tools) == {
        "search_policy",
        "get_employee",
        "request_leave",
        "approve_leave",
        "list_leave_requests",
        "search",
    }
    assert all(tool.output_schema and tool.title for tool in tools.values())
    assert tools["get_employee"].annotations == READ_ONLY
    assert tools["request_leave"].annotations is not None
    assert tools["request_leave"].annotations.destructive_hint is False
    assert tools["get_employee"].input_schema["properties"]["employee_id"]["pattern"] == r"^E\d{4}$"


async def test_search_policy_ranks_the_best_section_first(client: Client) -> None:
    found = await ok(client, "search_policy", {"query": "how many vacation days carry over"})

    assert found["results"][0]["section"] == "Carry-over"
    assert found["count"] <= 5


async def test_get_employee_includes_manager_and_balances(client: Client) -> None:
    employee = await ok(client, "get_employee", {"employee_id": "E1012"})

    assert employee["name"] == "Grace Liu"
    assert employee["manager_id"] == "E1002"
    assert employee["manager_name"] == "Lars Jensen"
    assert [balance["kind"] for balance in employee["balances"]] == ["vacation", "sick", "parental", "unpaid"]


async def test_get_unknown_employee_is_a_tool_error(client: Client) -> None:
    assert "No employee with id 'E9999'" in await refused(client, "get_employee", {"employee_id": "E9999"})


async def test_request_and_approve_leave(client: Client) -> None:
    requested = await ok(client, "request_leave", {**leave("E1012", "03-03", "03-07"), "note": "Ski trip"})
    approved = await ok(client, "approve_leave", {"request_id": requested["id"], "approver_id": "E1002"})
    listed = await ok(client, "list_leave_requests", {"employee_id": "E1012", "status": "approved"})

    assert requested["status"] == "pending"
    assert requested["working_days"] == 5
    assert approved["status"] == "approved"
    assert approved["decided_by"] == "E1002"
    assert requested["id"] in [r["id"] for r in listed["requests"]]


async def test_hr_may_approve_anyone_but_not_their_own_leave(client: Client) -> None:
    other = await ok(client, "request_leave", leave("E1017", "04-07", "04-08"))
    own = await ok(client, "request_leave", leave("E1016", "04-07", "04-08"))

    approved = await ok(client, "approve_leave", {"request_id": other["id"], "approver_id": "E1016"})
    message = await refused(client, "approve_leave", {"request_id": own["id"], "approver_id": "E1016"})

    assert approved["decided_by"] == "E1016"
    assert "cannot approve their own" in message


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (leave("E1012", "05-08", "05-04"), "is before start_date"),
        ({**leave("E1012", "12-28", "12-31"), "end_date": f"{YEAR + 1}-01-02"}, "span two calendar years"),
        (leave("E1012", "05-10", "05-11"), "no working days"),
        (leave("E1012", "01-06", "02-28"), "only 25 remain"),
        (leave("E9999", "05-05", "05-06"), "No employee with id 'E9999'"),
    ],
)
async def test_request_leave_rules(client: Client, arguments: dict[str, Any], message: str) -> None:
    assert message in await refused(client, "request_leave", arguments)


async def test_request_leave_refuses_overlaps_and_spent_balances(client: Client) -> None:
    four_weeks = await ok(client, "request_leave", leave("E1009", "06-02", "06-27"))

    assert four_weeks["working_days"] == 20
    assert "Overlaps leave request" in await refused(client, "request_leave", leave("E1009", "06-27", "06-30", "sick"))
    assert "only 5 remain" in await refused(client, "request_leave", leave("E1009", "07-07", "07-18"))
    assert (await ok(client, "request_leave", leave("E1009", "07-07", "07-18", "unpaid")))["working_days"] == 10


@pytest.mark.parametrize(
    ("approver", "message"),
    [("E1005", "neither the manager of E1012 nor in HR"), ("E1012", "cannot approve their own"), ("E9999", "E9999")],
)
async def test_approve_leave_checks_the_approver(client: Client, approver: str, message: str) -> None:
    requested = await ok(client, "request_leave", leave("E1012", "09-08", "09-09"))

    assert message in await refused(client, "approve_leave", {"request_id": requested["id"], "approver_id": approver})


async def test_approve_leave_only_approves_pending_requests(client: Client) -> None:
    rejected = (await ok(client, "list_leave_requests", {"status": "rejected"}))["requests"][0]

    assert "already rejected" in await refused(
        client, "approve_leave", {"request_id": rejected["id"], "approver_id": "E1004"}
    )
    assert "No leave request with id 777" in await refused(
        client, "approve_leave", {"request_id": 777, "approver_id": "E1004"}
    )


async def test_list_leave_requests_filters(client: Client) -> None:
    pending = await ok(client, "list_leave_requests", {"status": "pending"})
    everything = await ok(client, "list_leave_requests", {})

    assert pending["count"] >= 3 and all(r["status"] == "pending" for r in pending["requests"])
    assert everything["count"] > pending["count"]
    assert "No employee" in await refused(client, "list_leave_requests", {"employee_id": "E9998"})


async def test_search_covers_employees_and_policies(client: Client) -> None:
    people = await ok(client, "search", {"query": "network engineer"})
    policies = await ok(client, "search", {"query": "multi-factor authentication"})

    assert people["results"][0] == {
        "kind": "employee",
        "id": "E1009",
        "title": "Sanjay Patel",
        "snippet": people["results"][0]["snippet"],
    }
    assert policies["results"][0]["kind"] == "policy"
    assert policies["results"][0]["id"] == "information-security"


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("get_employee", {"employee_id": "1012"}),
        ("get_employee", {}),
        ("request_leave", {**leave("E1012", "05-04", "05-05"), "start_date": "2031-02-30"}),
        ("request_leave", {**leave("E1012", "05-04", "05-05"), "kind": "holiday"}),
        ("approve_leave", {"request_id": 0, "approver_id": "E1002"}),
        ("list_leave_requests", {"status": "cancelled"}),
        ("search_policy", {"query": "leave", "limit": 500}),
    ],
)
async def test_invalid_arguments_are_invalid_params(client: Client, tool: str, arguments: dict[str, Any]) -> None:
    with pytest.raises(MCPError) as raised:
        await client.call_tool(tool, arguments)

    assert raised.value.code == INVALID_PARAMS


async def test_employee_resource_template(client: Client) -> None:
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    employee = json.loads(await read_text(client, "hr://employees/E1020"))

    assert templates == {"hr://employees/{employee_id}", "hr://policies/{policy_id}"}
    assert employee["name"] == "Lena Fischer"


async def test_policy_index_and_policy_resources(client: Client) -> None:
    index = json.loads(await read_text(client, "hr://policies"))
    sick = (await client.read_resource("hr://policies/sick-leave")).contents[0]

    assert len(index["policies"]) == 8
    sick_entry = next(policy for policy in index["policies"] if policy["id"] == "sick-leave")
    assert sick_entry["uri"] == "hr://policies/sick-leave"
    assert sick_entry["sections"] == ["Reporting sickness", "Medical certificates"]
    assert isinstance(sick, TextResourceContents)
    assert sick.mime_type == "text/markdown"
    assert sick.text.startswith("# Sick Leave Policy")


@pytest.mark.parametrize("uri", ["hr://employees/E0001", "hr://policies/bonus-scheme"])
async def test_unknown_resources_are_invalid_params(client: Client, uri: str) -> None:
    with pytest.raises(MCPError) as raised:
        await client.read_resource(uri)

    assert raised.value.code == INVALID_PARAMS


async def test_onboarding_checklist_prompt(client: Client) -> None:
    rendered = await client.get_prompt("onboarding_checklist", {"employee_id": "E1020"})

    content = rendered.messages[0].content
    assert isinstance(content, TextContent)
    assert "Lena Fischer" in content.text
    assert "Onboarding Policy" in content.text


async def test_onboarding_checklist_for_an_unknown_employee_is_invalid_params(client: Client) -> None:
    with pytest.raises(MCPError) as raised:
        await client.get_prompt("onboarding_checklist", {"employee_id": "E0000"})

    assert raised.value.code == INVALID_PARAMS


async def test_leave_survives_a_rebuild(tmp_path: Path) -> None:
    db = tmp_path / "hr.sqlite3"
    async with Client(build_server(db)) as first:
        requested = await ok(first, "request_leave", leave("E1007", "10-06", "10-10"))

    async with Client(build_server(db)) as second:
        listed = await ok(second, "list_leave_requests", {"employee_id": "E1007", "status": "pending"})
        employees = await ok(second, "search", {"query": "E10", "limit": 50})

    assert [r["id"] for r in listed["requests"]] == [requested["id"]]
    assert sum(hit["kind"] == "employee" for hit in employees["results"]) == 20


async def read_text(client: Client, uri: str) -> str:
    contents = (await client.read_resource(uri)).contents
    assert isinstance(contents[0], TextResourceContents)
    return contents[0].text
