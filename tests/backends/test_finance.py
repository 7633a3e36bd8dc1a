"""The finance backend through a real MCP client, in process."""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, MCPError
from mcp.types import INVALID_PARAMS, TextContent, TextResourceContents, ToolAnnotations

from backends.finance.server import build_server
from tests.backends.support import ok, refused

pytestmark = pytest.mark.anyio

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


@pytest.fixture(params=["auto", "legacy"])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Client]:
    """Both protocol eras: 2026-07-28 (auto, in process) and the 2025 initialize handshake (legacy)."""
    async with Client(build_server(tmp_path / "finance.sqlite3"), mode=request.param) as connected:
        yield connected


def expense(amount: float | str, date: str = "2026-05-15", department: str = "HR") -> dict[str, Any]:
    return {"department": department, "amount": amount, "category": "training", "description": "Course", "date": date}


async def test_lists_the_tools(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(tools) == {"calculate_budget", "record_expense", "generate_report", "list_expenses", "search"}
    assert all(tool.output_schema and tool.title for tool in tools.values())
    assert tools["calculate_budget"].annotations == READ_ONLY
    assert tools["record_expense"].annotations is not None
    assert tools["record_expense"].annotations.destructive_hint is False
    assert "110%" in (tools["record_expense"].description or "")


async def test_calculate_budget(client: Client) -> None:
    budget = await ok(client, "calculate_budget", {"department": "hr", "quarter": "2026-Q2"})

    assert budget == {
        "department": "HR",
        "quarter": "2026-Q2",
        "allocated": 18000.0,
        "spent": 17750.0,
        "remaining": 250.0,
        "utilisation_percent": 98.6,
        "expense_count": 3,
    }


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"department": "Legal", "quarter": "2026-Q2"}, "Unknown department 'Legal'"),
        ({"department": "HR", "quarter": "2025-Q4"}, "No budget for HR in 2025-Q4"),
    ],
)
async def test_calculate_budget_domain_errors(client: Client, arguments: dict[str, str], message: str) -> None:
    assert message in await refused(client, "calculate_budget", arguments)


async def test_record_expense_updates_the_budget(client: Client) -> None:
    recorded = await ok(client, "record_expense", expense("1234.56", department="engineering"))
    budget = await ok(client, "calculate_budget", {"department": "Engineering", "quarter": "2026-Q2"})

    assert recorded["department"] == "Engineering"
    assert recorded["quarter"] == "2026-Q2"
    assert recorded["amount"] == 1234.56
    assert budget["spent"] == 19774.56
    assert budget["expense_count"] == 4


async def test_record_expense_allows_up_to_ten_percent_over_budget(client: Client) -> None:
    within = await ok(client, "record_expense", expense(2050))
    message = await refused(client, "record_expense", expense("0.01"))
    budget = await ok(client, "calculate_budget", {"department": "HR", "quarter": "2026-Q2"})

    assert within["amount"] == 2050.0
    assert "more than 10% over budget" in message
    assert budget["spent"] == 19800.0
    assert budget["remaining"] == -1800.0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (expense(100, date="2025-06-01"), "No budget for HR in 2025-Q2"),
        (expense(100, department="Marketing"), "Unknown department 'Marketing'"),
    ],
)
async def test_record_expense_domain_errors(client: Client, arguments: dict[str, Any], message: str) -> None:
    assert message in await refused(client, "record_expense", arguments)


async def test_refused_expenses_are_not_booked(client: Client) -> None:
    await refused(client, "record_expense", expense(50_000))

    listed = await ok(client, "list_expenses", {"department": "HR", "quarter": "2026-Q2"})
    assert listed["count"] == 3


async def test_generate_report(client: Client) -> None:
    report = await ok(client, "generate_report", {"quarter": "2026-Q1"})
    sales = await ok(client, "generate_report", {"quarter": "2026-Q1", "department": "Sales"})

    assert [d["budget"]["department"] for d in report["departments"]] == [
        "Engineering",
        "Operations",
        "Finance",
        "HR",
        "Sales",
    ]
    assert report["total_allocated"] == 225_000.0
    assert report["total_remaining"] == round(report["total_allocated"] - report["total_spent"], 2)
    assert [d["budget"]["department"] for d in sales["departments"]] == ["Sales"]
    assert sales["departments"][0]["top_categories"][0] == {"category": "marketing", "amount": 12000.0}


async def test_generate_report_for_a_quarter_without_budgets_is_a_tool_error(client: Client) -> None:
    assert "No budgets for 2027-Q1" in await refused(client, "generate_report", {"quarter": "2027-Q1"})


async def test_list_expenses(client: Client) -> None:
    everything = await ok(client, "list_expenses", {"limit": 100})
    sales_q1 = await ok(client, "list_expenses", {"department": "sales", "quarter": "2026-Q1", "limit": 2})

    assert everything["count"] == 40
    assert sales_q1["count"] == 2
    assert [e["date"] for e in sales_q1["expenses"]] == ["2026-03-26", "2026-03-09"]
    assert sales_q1["total"] == 14100.0


async def test_search_covers_departments_and_expenses(client: Client) -> None:
    found = await ok(client, "search", {"query": "frankfurt travel"})
    owner = await ok(client, "search", {"query": "CC-400"})

    assert found["results"][0] == {
        "kind": "expense",
        "id": found["results"][0]["id"],
        "title": "Bank meeting in Frankfurt",
        "snippet": "EUR 620.00, travel, Finance, 2026-05-19",
    }
    assert owner["results"][0]["kind"] == "department"
    assert owner["results"][0]["id"] == "HR"


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("calculate_budget", {"department": "HR", "quarter": "2026-Q5"}),
        ("calculate_budget", {"department": "HR", "quarter": "Q2 2026"}),
        ("calculate_budget", {"department": "HR"}),
        ("record_expense", expense(0)),
        ("record_expense", expense(-5)),
        ("record_expense", expense("12.345")),
        ("record_expense", {**expense(10), "category": "food"}),
        ("record_expense", {**expense(10), "date": "yesterday"}),
        ("list_expenses", {"limit": 101}),
        ("generate_report", {"quarter": 2026}),
    ],
)
async def test_invalid_arguments_are_invalid_params(client: Client, tool: str, arguments: dict[str, Any]) -> None:
    with pytest.raises(MCPError) as raised:
        await client.call_tool(tool, arguments)

    assert raised.value.code == INVALID_PARAMS


async def test_departments_resource(client: Client) -> None:
    departments = json.loads(await read_text(client, "finance://departments"))

    assert [d["name"] for d in departments["departments"]] == ["Engineering", "Operations", "Finance", "HR", "Sales"]


async def test_budgets_resource_template(client: Client) -> None:
    templates = (await client.list_resource_templates()).resource_templates
    budgets = json.loads(await read_text(client, "finance://budgets/2026-Q2"))

    assert [t.uri_template for t in templates] == ["finance://budgets/{quarter}"]
    hr = next(b for b in budgets["budgets"] if b["department"] == "HR")
    assert hr["utilisation_percent"] == 98.6


@pytest.mark.parametrize("uri", ["finance://budgets/2030-Q1", "finance://budgets/2026-Q7"])
async def test_budgets_for_unknown_quarters_are_invalid_params(client: Client, uri: str) -> None:
    with pytest.raises(MCPError) as raised:
        await client.read_resource(uri)

    assert raised.value.code == INVALID_PARAMS


async def test_budget_review_prompt(client: Client) -> None:
    rendered = await client.get_prompt("budget_review", {"department": "Sales", "quarter": "2026-Q2"})

    content = rendered.messages[0].content
    assert isinstance(content, TextContent)
    assert "Industry analyst report licence" in content.text
    assert '"allocated": 50000.0' in content.text


@pytest.mark.parametrize(
    "arguments",
    [
        {"department": "Sales"},
        {"department": "Sales", "quarter": "2026"},
        {"department": "Legal", "quarter": "2026-Q1"},
    ],
)
async def test_budget_review_with_bad_arguments_is_invalid_params(client: Client, arguments: dict[str, str]) -> None:
    with pytest.raises(MCPError) as raised:
        await client.get_prompt("budget_review", arguments)

    assert raised.value.code == INVALID_PARAMS


async def test_expenses_survive_a_rebuild(tmp_path: Path) -> None:
    db = tmp_path / "finance.sqlite3"
    async with Client(build_server(db)) as first:
        recorded = await ok(first, "record_expense", {**expense(99.99), "description": "Persisted"})

    async with Client(build_server(db)) as second:
        listed = await ok(second, "list_expenses", {"limit": 100})

    persisted = next(e for e in listed["expenses"] if e["id"] == recorded["id"])
    assert listed["count"] == 41
    assert persisted["description"] == "Persisted"


async def read_text(client: Client, uri: str) -> str:
    contents = (await client.read_resource(uri)).contents
    assert isinstance(contents[0], TextResourceContents)
    assert contents[0].mime_type == "application/json"
    return contents[0].text
