"""Tool arguments are validated against the tool's inputSchema at the gateway, in every JSON Schema dialect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError, types
from mcp.server import Server

from gateway.errors import InvalidArguments
from gateway.validation import ArgumentValidator
from tests.support.inproc import client, running_gateway
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ORDER = {
    "type": "object",
    "properties": {
        "sku": {"type": "string", "minLength": 3},
        "lines": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer"}}}},
    },
    "required": ["sku"],
}


@pytest.mark.parametrize(
    "dialect",
    [
        None,
        "https://json-schema.org/draft/2020-12/schema",
        "https://json-schema.org/draft/2019-09/schema",
        "http://json-schema.org/draft-07/schema#",
        "http://json-schema.org/draft-04/schema#",
    ],
)
@pytest.mark.parametrize(
    ("arguments", "path"),
    [({"sku": "AB"}, "$.sku"), ({}, "$"), ({"sku": "ABC", "lines": [{"qty": 1}, {"qty": "two"}]}, "$.lines[1].qty")],
)
def test_the_first_failure_is_named_by_its_path(dialect: str | None, arguments: dict[str, Any], path: str) -> None:
    schema = {**ORDER, "$schema": dialect} if dialect else ORDER
    with pytest.raises(InvalidArguments) as caught:
        ArgumentValidator().check("ops/order", schema, arguments)
    assert caught.value.path == path


def test_valid_arguments_pass() -> None:
    ArgumentValidator().check("ops/order", ORDER, {"sku": "ABC", "lines": [{"qty": 2}]})


def test_an_unusable_schema_leaves_arguments_to_the_backend() -> None:
    validator = ArgumentValidator()
    validator.check("ops/odd", {"type": "no-such-type"}, {"x": 1})
    validator.check("ops/remote", {"properties": {"x": {"$ref": "https://schemas.invalid/x.json"}}}, {"x": 1})


def recording_backend(journal: Path) -> Server[Any]:
    """A backend whose one tool records every call that reaches it."""

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="order", input_schema=ORDER)])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        await anyio.Path(journal).write_text(repr(params.arguments))
        return types.CallToolResult(content=[types.TextContent(type="text", text="ordered")])

    return Server("orders", on_list_tools=list_tools, on_call_tool=call_tool)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_invalid_arguments_are_refused_at_the_gateway_with_the_path(mode: str, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    async with running_gateway({"ops": recording_backend(journal)}) as gw, client(gw, mode=mode) as local:
        with pytest.raises(MCPError) as caught:
            await local.call_tool("ops/order", {"sku": "ABC", "lines": [{"qty": "two"}]})
        assert not journal.exists()
        ordered = await local.call_tool("ops/order", {"sku": "ABC"})
    assert caught.value.code == types.INVALID_PARAMS
    assert caught.value.data == {"tool": "ops/order", "path": "$.lines[0].qty"}
    assert ordered.content[0].text == "ordered"  # type: ignore[union-attr]
    assert journal.exists()


async def test_strict_names_are_validated_against_the_same_schema() -> None:
    async with running_gateway({"ops": build("ops")}) as gw, client(gw, name="claude-ai") as strict:
        with pytest.raises(MCPError) as caught:
            await strict.call_tool("ops__echo", {"text": 7})
    assert caught.value.data == {"tool": "ops/echo", "path": "$.text"}
