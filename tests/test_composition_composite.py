"""Composite tools run as a graph of calls through a caller's ``Reach``: order, concurrency, references, failures,
cancellation and arguments."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError, types
from mcp.server import MCPServer

from backends.finance.server import build_server as finance_server
from backends.hr.server import build_server as hr_server
from backends.ops.server import build_server as ops_server
from gateway.catalogue.naming import Style
from gateway.composition.composite import Composites
from gateway.config.composites import CompositeConfig
from gateway.errors import Forbidden, InvalidArguments, UnknownTarget
from gateway.settings import default_composites

pytestmark = pytest.mark.anyio

Handler = Callable[[dict[str, Any]], Awaitable[types.CallToolResult]]


class FakeReach:
    """A caller's view of an endpoint whose tools are the given handlers; it records each call it is asked for."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @property
    def style(self) -> Style:
        return Style.CANONICAL

    @property
    def generation(self) -> int:
        return 0

    def everything(self) -> Sequence[types.Tool]:
        return []

    def may_use(self, name: str) -> bool:
        return True

    async def call_tool(self, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        self.calls.append((name, dict(arguments or {})))
        return await self.handlers[name](dict(arguments or {}))


def structured(value: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(value))], structured_content=value
    )


def returning(value: dict[str, Any]) -> Handler:
    async def handler(arguments: dict[str, Any]) -> types.CallToolResult:
        return structured(value)

    return handler


def echo(arguments: dict[str, Any]) -> Awaitable[types.CallToolResult]:
    async def answer() -> types.CallToolResult:
        return structured({"got": arguments})

    return answer()


def composites(**config: Any) -> Composites:
    base: dict[str, Any] = {"name": "combo", "input_schema": {"type": "object", "properties": {"x": {}}}}
    return Composites([CompositeConfig.model_validate({**base, **config})])


async def call(source: Composites, reach: FakeReach, arguments: dict[str, Any] | None = None) -> types.CallToolResult:
    with anyio.fail_after(5):
        return await source.call(reach, "combo", arguments or {})


# -- listing -------------------------------------------------------------------------------------------------------


def test_a_composite_is_listed_with_its_schemas_in_both_styles() -> None:
    source = composites(
        title="Combo",
        description="Both at once",
        output_schema={"type": "object", "properties": {"a": {}}},
        read_only=True,
        steps={"a": {"tool": "t/a"}},
        result={"a": {"$ref": "steps.a"}},
    )

    (tool,) = source.tools(Style.STRICT)
    assert tool.name == "combo" and tool.title == "Combo" and tool.description == "Both at once"
    assert tool.input_schema == {"type": "object", "properties": {"x": {}}}
    assert tool.output_schema == {"type": "object", "properties": {"a": {}}}
    assert tool.annotations == types.ToolAnnotations(read_only_hint=True)
    assert source.tools(Style.CANONICAL) == [tool]
    assert source.owns("combo") and not source.owns("t/a")


def test_a_composite_not_declared_read_only_carries_no_annotations() -> None:
    source = composites(steps={"a": {"tool": "t/a"}}, result={"a": {"$ref": "steps.a"}})

    assert source.tools(Style.CANONICAL)[0].annotations is None


# -- order, concurrency, references --------------------------------------------------------------------------------


async def test_steps_that_need_nothing_run_at_once_and_a_dependent_step_waits_for_both() -> None:
    left_in, right_in = anyio.Event(), anyio.Event()

    def meeting(mine: anyio.Event, other: anyio.Event, value: int) -> Handler:
        async def handler(arguments: dict[str, Any]) -> types.CallToolResult:
            mine.set()
            await other.wait()  # returns only if the other step is running at the same time
            return structured({"value": value})

        return handler

    reach = FakeReach(
        {"t/left": meeting(left_in, right_in, 1), "t/right": meeting(right_in, left_in, 2), "t/sum": echo}
    )
    source = composites(
        steps={
            "total": {"tool": "t/sum", "arguments": {"a": {"$ref": "steps.left.value"}, "b": {"$ref": "steps.right"}}},
            "left": {"tool": "t/left"},
            "right": {"tool": "t/right"},
        },
        result={"total": {"$ref": "steps.total.got"}},
    )

    result = await call(source, reach)

    assert [name for name, _ in reach.calls][2] == "t/sum"
    assert result.structured_content == {"total": {"a": 1, "b": {"value": 2}}}
    assert not result.is_error


async def test_references_keep_their_types_and_reach_into_lists() -> None:
    value = {"count": 3, "ratio": 0.5, "ok": False, "none": None, "items": [{"id": 7}, {"id": 9}], "tag": "x"}
    reach = FakeReach({"t/source": returning(value), "t/echo": echo})
    arguments = {
        "count": {"$ref": "steps.source.count"},
        "ratio": {"$ref": "steps.source.ratio"},
        "ok": {"$ref": "steps.source.ok"},
        "none": {"$ref": "steps.source.none"},
        "second": {"$ref": "steps.source.items.1.id"},
        "items": {"$ref": "steps.source.items"},
        "mixed": [{"$ref": "input.x"}, "literal", {"deep": {"$ref": "steps.source.tag"}}],
    }
    source = composites(
        steps={"source": {"tool": "t/source"}, "echo": {"tool": "t/echo", "arguments": arguments}},
        result={"echoed": {"$ref": "steps.echo.got"}, "input": {"$ref": "input"}},
    )

    result = await call(source, reach, {"x": [1, 2]})

    assert result.structured_content == {
        "echoed": {
            "count": 3,
            "ratio": 0.5,
            "ok": False,
            "none": None,
            "second": 9,
            "items": [{"id": 7}, {"id": 9}],
            "mixed": [[1, 2], "literal", {"deep": "x"}],
        },
        "input": {"x": [1, 2]},
    }
    assert json.loads(result.content[0].text) == result.structured_content


async def test_an_input_left_out_takes_its_default_or_leaves_the_argument_out() -> None:
    reach = FakeReach({"t/echo": echo})
    schema = {"type": "object", "properties": {"limit": {"type": "integer", "default": 5}, "who": {}}}
    source = composites(
        input_schema=schema,
        steps={
            "echo": {"tool": "t/echo", "arguments": {"limit": {"$ref": "input.limit"}, "who": {"$ref": "input.who"}}}
        },
        result={"got": {"$ref": "steps.echo.got"}},
    )

    result = await call(source, reach)

    assert reach.calls == [("t/echo", {"limit": 5})]
    assert result.structured_content == {"got": {"limit": 5}}


async def test_a_step_without_structured_content_is_read_from_its_json_text_or_as_text() -> None:
    async def json_text(arguments: dict[str, Any]) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text='{"n": 4}')])

    async def plain_text(arguments: dict[str, Any]) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text="hello")])

    reach = FakeReach({"t/json": json_text, "t/text": plain_text})
    source = composites(
        steps={"json": {"tool": "t/json"}, "text": {"tool": "t/text"}},
        result={"n": {"$ref": "steps.json.n"}, "text": {"$ref": "steps.text"}},
    )

    assert (await call(source, reach)).structured_content == {"n": 4, "text": "hello"}


# -- failures ------------------------------------------------------------------------------------------------------


async def test_a_failed_step_is_named_with_what_the_others_returned_were_cancelled_or_skipped() -> None:
    running, cancelled = anyio.Event(), anyio.Event()

    async def fails(arguments: dict[str, Any]) -> types.CallToolResult:
        await running.wait()
        raise MCPError(-32602, "Unknown department", {"field": "department"})

    async def blocks(arguments: dict[str, Any]) -> types.CallToolResult:
        running.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    reach = FakeReach({"t/ok": returning({"v": 1}), "t/fails": fails, "t/blocks": blocks, "t/later": echo})
    source = composites(
        steps={
            "first": {"tool": "t/ok"},
            "cost": {"tool": "t/fails", "arguments": {"v": {"$ref": "steps.first.v"}}},
            "slow": {"tool": "t/blocks"},
            "after": {"tool": "t/later", "arguments": {"c": {"$ref": "steps.cost"}}},
        },
        result={"after": {"$ref": "steps.after"}},
    )

    result = await call(source, reach)

    assert result.is_error and cancelled.is_set()
    assert result.structured_content == {
        "failed": {
            "at": "steps.cost",
            "step": "cost",
            "tool": "t/fails",
            "error": {"code": -32602, "message": "Unknown department", "data": {"field": "department"}},
        },
        "steps": {
            "first": {"status": "ok", "result": {"v": 1}},
            "cost": {"status": "failed", "error": result.structured_content["failed"]["error"]},
            "slow": {"status": "cancelled"},
            "after": {"status": "skipped"},
        },
    }
    assert "t/later" not in [name for name, _ in reach.calls]


async def test_a_step_whose_tool_answers_is_error_fails_the_composite() -> None:
    async def refuses(arguments: dict[str, Any]) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text="over budget")], is_error=True)

    source = composites(steps={"book": {"tool": "t/book"}}, result={"b": {"$ref": "steps.book"}})

    result = await call(source, FakeReach({"t/book": refuses}))

    assert result.is_error
    assert result.structured_content["failed"]["error"] == {"message": "over budget", "isError": True}


async def test_a_step_the_caller_may_not_call_fails_as_the_direct_call_would() -> None:
    async def denied(arguments: dict[str, Any]) -> types.CallToolResult:
        raise Forbidden("tool", "fin/record_expense")

    source = composites(steps={"book": {"tool": "fin/record_expense"}}, result={"b": {"$ref": "steps.book"}})

    result = await call(source, FakeReach({"fin/record_expense": denied}))

    error = result.structured_content["failed"]["error"]
    assert (error["code"], error["data"]) == (-32602, {"tool": "fin/record_expense"})


async def test_a_reference_into_a_field_a_step_did_not_return_fails_the_step_that_needs_it() -> None:
    reach = FakeReach({"t/person": returning({"name": "Ann"}), "t/echo": echo})
    source = composites(
        steps={
            "person": {"tool": "t/person"},
            "manager": {"tool": "t/echo", "arguments": {"id": {"$ref": "steps.person.manager_id"}}},
        },
        result={"m": {"$ref": "steps.manager"}},
    )

    result = await call(source, reach)

    assert result.is_error
    assert result.structured_content["failed"] == {
        "at": "steps.manager",
        "step": "manager",
        "tool": "t/echo",
        "error": {"message": "reference 'steps.person.manager_id': 'manager_id' is not in what step 'person' returned"},
    }
    assert [name for name, _ in reach.calls] == ["t/person"]


async def test_a_result_that_does_not_match_the_output_schema_is_an_error_not_a_malformed_answer() -> None:
    source = composites(
        output_schema={"type": "object", "properties": {"n": {"type": "integer"}}},
        steps={"a": {"tool": "t/a"}},
        result={"n": {"$ref": "steps.a.n"}},
    )

    result = await call(source, FakeReach({"t/a": returning({"n": "four"})}))

    assert result.is_error
    assert result.structured_content["failed"]["at"] == "result"
    assert "$.n" in result.structured_content["failed"]["error"]["message"]


# -- cancellation and arguments ------------------------------------------------------------------------------------


async def test_cancelling_the_composite_cancels_its_running_steps() -> None:
    started, cancelled = anyio.Event(), anyio.Event()

    async def blocks(arguments: dict[str, Any]) -> types.CallToolResult:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    source = composites(steps={"a": {"tool": "t/block"}}, result={"a": {"$ref": "steps.a"}})
    outcome: list[types.CallToolResult] = []

    async def run_it() -> None:
        outcome.append(await source.call(FakeReach({"t/block": blocks}), "combo", {}))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(run_it)
            await started.wait()
            group.cancel_scope.cancel()
        await cancelled.wait()

    assert outcome == []


async def test_arguments_that_fail_the_input_schema_are_refused_naming_the_path() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    reach = FakeReach({"t/echo": echo})
    source = composites(input_schema=schema, steps={"a": {"tool": "t/echo"}}, result={"a": {"$ref": "steps.a"}})

    with pytest.raises(InvalidArguments) as excinfo:
        await call(source, reach, {"x": "seven"})

    assert (excinfo.value.tool, excinfo.value.path) == ("combo", "$.x")
    assert reach.calls == []


async def test_a_name_the_source_does_not_own_is_unknown() -> None:
    source = composites(steps={"a": {"tool": "t/echo"}}, result={"a": {"$ref": "steps.a"}})

    with pytest.raises(UnknownTarget):
        await source.call(FakeReach({}), "other", {})


# -- the shipped example on the sample backends --------------------------------------------------------------------


@pytest.fixture
def samples(tmp_path: Path) -> FakeReach:
    """The sample backends in this process, reached by their canonical names as the demo exposes them."""
    servers: dict[str, MCPServer] = {
        "ops": ops_server(tmp_path / "ops.db"),
        "hr": hr_server(tmp_path / "hr.db"),
        "fin": finance_server(tmp_path / "finance.db"),
    }

    def backend(name: str) -> Handler:
        prefix, tool = name.split("/")

        async def handler(arguments: dict[str, Any]) -> types.CallToolResult:
            result = await servers[prefix].call_tool(tool, arguments)
            assert isinstance(result, types.CallToolResult)
            return result

        return handler

    names = ["ops/list_tickets", "hr/get_employee", "fin/calculate_budget"]
    return FakeReach({name: backend(name) for name in names})


async def test_incident_full_report_combines_ops_hr_and_finance(samples: FakeReach) -> None:
    source = Composites([CompositeConfig.model_validate(config) for config in default_composites()])

    with anyio.fail_after(10):
        result = await source.call(samples, "incident_full_report", {"on_call": "E1007", "quarter": "2026-Q2"})

    report = result.structured_content
    assert not result.is_error and report is not None
    assert report["incident_count"] == len(report["incidents"]) > 0
    assert all(ticket["status"] == "open" for ticket in report["incidents"])
    assert report["on_call"]["name"] == "Mei Chen" and report["escalate_to"]["name"] == "Lars Jensen"
    assert (report["budget"]["department"], report["budget"]["quarter"]) == ("Engineering", "2026-Q2")
    assert ("ops/list_tickets", {"status": "open", "limit": 5}) in samples.calls


async def test_incident_full_report_for_someone_without_a_manager_says_which_step_failed(samples: FakeReach) -> None:
    source = Composites([CompositeConfig.model_validate(config) for config in default_composites()])

    with anyio.fail_after(10):
        result = await source.call(samples, "incident_full_report", {"on_call": "E1001", "quarter": "2026-Q2"})

    report = result.structured_content
    assert result.is_error and report is not None
    assert report["failed"]["step"] == "manager" and report["failed"]["error"]["code"] == -32602
    assert report["steps"]["on_call"] == {"status": "ok", "result": report["steps"]["on_call"]["result"]}
    assert report["steps"]["on_call"]["result"]["manager_id"] is None


async def test_a_step_may_be_called_input_without_being_taken_for_the_input() -> None:
    reach = FakeReach({"t/a": returning({"x": "from the step"}), "t/echo": echo})
    source = composites(
        steps={"input": {"tool": "t/a"}, "echo": {"tool": "t/echo", "arguments": {"x": {"$ref": "steps.input.x"}}}},
        result={"got": {"$ref": "steps.echo.got.x"}},
    )

    assert (await call(source, reach, {"x": "from the caller"})).structured_content == {"got": "from the step"}
