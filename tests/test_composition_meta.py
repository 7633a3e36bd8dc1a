"""The meta tools (search, describe, call) as a ToolSource over a fake Reach, lazy listing, and their config."""

from __future__ import annotations

import json
import time
from typing import Any

import jsonschema
import pytest
from mcp import types
from pydantic import ValidationError

from bench.search import generated_tools
from gateway.catalogue.naming import STRICT_NAME, Style
from gateway.composition.meta import MetaTools, lazy_tools
from gateway.config import GatewayConfig
from gateway.config.search import TOOL_NAME_PATTERN, SearchConfig
from gateway.errors import InvalidArguments, UnknownTarget
from tests.support.reach import FakeReach, sample_tools
from tests.test_composition_search import NASTY

pytestmark = pytest.mark.anyio
ON = SearchConfig(enabled=True)
META = ("search_tools", "describe_tool", "call_tool")


def catalogue(meta: MetaTools, extra: int = 0) -> list[types.Tool]:
    """What an endpoint lists: the sample backends' tools, ``extra`` generated ones, and the meta tools."""
    return [*sample_tools(), *generated_tools(extra), *meta.tools(Style.CANONICAL)]


async def search(meta: MetaTools, reach: FakeReach, query: str, **args: Any) -> list[dict[str, Any]]:
    result = await meta.call(reach, "search_tools", {"query": query, **args})
    assert not result.is_error
    hits: list[dict[str, Any]] = result.structured_content["tools"]
    return hits


def test_three_tools_with_valid_schemas_and_names_that_read_the_same_in_both_styles() -> None:
    meta = MetaTools(ON)
    tools = meta.tools(Style.STRICT)
    assert [t.name for t in tools] == list(META) == [t.name for t in meta.tools(Style.CANONICAL)]
    for tool in tools:
        assert STRICT_NAME.match(tool.name) and tool.description and tool.input_schema["type"] == "object"
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        assert meta.owns(tool.name)
    assert tools[0].output_schema and tools[1].output_schema and tools[2].output_schema is None
    assert not meta.owns("ops/search") and not meta.owns("Search_Tools")


def test_renamed_meta_tools_answer_to_their_new_names_only() -> None:
    meta = MetaTools(SearchConfig(enabled=True, names={"search": "find", "describe": "explain", "call": "run"}))
    assert [t.name for t in meta.tools(Style.STRICT)] == ["find", "explain", "run"]
    assert meta.owns("find") and not meta.owns("search_tools")
    assert "explain" in meta.tools(Style.STRICT)[0].description


async def test_search_answers_ranked_hits_as_text_and_structured_content_matching_its_output_schema() -> None:
    meta = MetaTools(ON)
    reach = FakeReach(catalogue(meta, 2000))
    result = await meta.call(reach, "search_tools", {"query": "approve a leave request", "limit": 3})
    hits = result.structured_content["tools"]
    assert hits[0]["name"] == "hr/approve_leave" and len(hits) == 3
    assert hits[0]["title"] == "Approve leave" and hits[0]["description"].startswith("Approve a pending leave")
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"] > 0
    jsonschema.validate(result.structured_content, meta.tools(Style.CANONICAL)[0].output_schema)
    assert json.loads(result.content[0].text) == result.structured_content


async def test_search_names_tools_as_the_callers_style_renders_them() -> None:
    meta = MetaTools(ON)
    strict = [t.model_copy(update={"name": t.name.replace("/", "__")}) for t in sample_tools()]
    reach = FakeReach([*strict, *meta.tools(Style.STRICT)], style=Style.STRICT)
    assert (await search(meta, reach, "approve leave"))[0]["name"] == "hr__approve_leave"
    canonical = FakeReach(catalogue(meta))
    assert (await search(meta, canonical, "approve leave"))[0]["name"] == "hr/approve_leave"


async def test_the_meta_tools_never_find_themselves() -> None:
    meta = MetaTools(ON)
    reach = FakeReach(catalogue(meta))
    for query in ("search tools", "describe tool", "call a tool by name", "find the tools"):
        assert not {h["name"] for h in await search(meta, reach, query, limit=50)} & set(META)


async def test_a_tool_the_caller_may_not_use_is_never_found_and_the_limit_is_still_filled() -> None:
    meta = MetaTools(ON)
    tools = catalogue(meta, 3000)
    everyone = [h["name"] for h in await search(meta, FakeReach(tools), "leave request", limit=10)]
    denied = set(everyone[:5])
    reach = FakeReach(tools, may_use=lambda name: name not in denied)
    found = [h["name"] for h in await search(meta, reach, "leave request", limit=10)]
    assert len(found) == 10 and not denied & set(found)
    assert found[:5] == everyone[5:]


async def test_the_limit_defaults_to_the_configured_one() -> None:
    meta = MetaTools(SearchConfig(enabled=True, default_limit=4))
    assert len(await search(meta, FakeReach(catalogue(meta, 500)), "ticket")) == 4


@pytest.mark.parametrize(
    "arguments",
    [
        None,
        {},
        {"query": 7},
        {"query": None},
        {"query": "x", "limit": 0},
        {"query": "x", "limit": 51},
        {"query": "x", "limit": True},
        {"query": "x", "limit": "5"},
        {"query": "x", "limit": 2.5},
        {"query": "x", "filter": "ops/*"},
    ],
)
async def test_bad_search_arguments_are_invalid_arguments(arguments: dict[str, Any] | None) -> None:
    meta = MetaTools(ON)
    with pytest.raises(InvalidArguments):
        await meta.call(FakeReach(catalogue(meta)), "search_tools", arguments)


@pytest.mark.parametrize("query", NASTY, ids=range(len(NASTY)))
async def test_any_query_answers_a_result_quickly(query: str) -> None:
    meta = MetaTools(ON)
    reach = FakeReach(catalogue(meta, 1000))
    await meta.index(reach)
    started = time.perf_counter()
    result = await meta.call(reach, "search_tools", {"query": query, "limit": 50})
    assert time.perf_counter() - started < 2.0  # a bound for a loaded machine, far above the measured milliseconds
    assert not result.is_error and len(result.structured_content["tools"]) <= 50


async def test_the_index_is_rebuilt_when_the_generation_moves_and_only_then() -> None:
    meta = MetaTools(ON)
    reach = FakeReach(catalogue(meta))
    assert await search(meta, reach, "rotate certificate") == []
    reach.tools.append(types.Tool(name="sec/rotate_certificate", input_schema={"type": "object"}))
    await search(meta, reach, "approve leave")
    assert reach.listed == 1
    assert await search(meta, reach, "rotate certificate") == []
    reach.generation = 2
    assert [h["name"] for h in await search(meta, reach, "rotate certificate")] == ["sec/rotate_certificate"]
    assert reach.listed == 2


async def test_each_style_has_an_index_of_its_own() -> None:
    meta = MetaTools(ON)
    canonical = FakeReach(catalogue(meta))
    strict = FakeReach(
        [t.model_copy(update={"name": t.name.replace("/", "__")}) for t in sample_tools()], style=Style.STRICT
    )
    assert (await search(meta, canonical, "leave"))[0]["name"].startswith("hr/")
    assert (await search(meta, strict, "leave"))[0]["name"].startswith("hr__")
    assert (await search(meta, canonical, "leave"))[0]["name"].startswith("hr/")
    assert canonical.listed == strict.listed == 1


async def test_describe_answers_the_whole_definition() -> None:
    meta = MetaTools(ON)
    result = await meta.call(FakeReach(catalogue(meta)), "describe_tool", {"name": "hr/approve_leave"})
    definition = result.structured_content
    original = next(t for t in sample_tools() if t.name == "hr/approve_leave")
    assert definition == original.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert definition["inputSchema"]["properties"].keys() == {"request_id", "approver_id"}
    assert "outputSchema" in definition and "annotations" in definition
    jsonschema.validate(definition, meta.tools(Style.CANONICAL)[1].output_schema)
    assert json.loads(result.content[0].text) == definition


async def test_describe_answers_an_unknown_tool_and_a_forbidden_one_alike() -> None:
    meta = MetaTools(ON)
    reach = FakeReach(catalogue(meta), may_use=lambda name: not name.startswith("hr/"))
    forbidden = await meta.call(reach, "describe_tool", {"name": "hr/approve_leave"})
    unknown = await meta.call(reach, "describe_tool", {"name": "hr/approve_leavf"})
    assert forbidden.is_error and unknown.is_error and forbidden.structured_content is None
    assert forbidden.content[0].text.replace("approve_leave", "X") == unknown.content[0].text.replace(
        "approve_leavf", "X"
    )
    assert "search_tools" in unknown.content[0].text


@pytest.mark.parametrize(
    "arguments", [None, {}, {"name": ""}, {"name": 3}, {"name": "x" * 257}, {"name": "a", "extra": 1}]
)
async def test_bad_describe_arguments_are_invalid_arguments(arguments: dict[str, Any] | None) -> None:
    meta = MetaTools(ON)
    with pytest.raises(InvalidArguments):
        await meta.call(FakeReach(catalogue(meta)), "describe_tool", arguments)


async def test_call_hands_the_name_and_arguments_to_the_reach_and_answers_its_result_unchanged() -> None:
    meta = MetaTools(ON)
    reach = FakeReach(catalogue(meta))
    answer = types.CallToolResult(content=[types.TextContent(text="ok")], structured_content={"id": 7})

    async def call_tool(name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        reach.calls.append((name, arguments))
        return answer

    reach.call_tool = call_tool  # type: ignore[method-assign]
    arguments = {"request_id": 3, "approver_id": "e-1"}
    result = await meta.call(reach, "call_tool", {"name": "hr/approve_leave", "arguments": arguments})
    assert result is answer and reach.calls == [("hr/approve_leave", arguments)]
    await meta.call(reach, "call_tool", {"name": "ops/list_tickets"})
    assert reach.calls[-1] == ("ops/list_tickets", None)


async def test_call_lets_the_reachs_errors_through() -> None:
    meta = MetaTools(ON)
    reach = FakeReach(catalogue(meta), may_use=lambda name: not name.startswith("hr/"))
    with pytest.raises(UnknownTarget):
        await meta.call(reach, "call_tool", {"name": "hr/approve_leave", "arguments": {}})


@pytest.mark.parametrize("target", META)
async def test_call_refuses_to_call_a_meta_tool(target: str) -> None:
    meta = MetaTools(ON)
    reach = FakeReach(catalogue(meta))
    with pytest.raises(InvalidArguments) as raised:
        await meta.call(reach, "call_tool", {"name": target, "arguments": {"query": "x"}})
    assert raised.value.path == "name" and reach.calls == []


@pytest.mark.parametrize(
    "arguments",
    [None, {}, {"name": None}, {"name": "ops/search", "arguments": []}, {"name": "ops/search", "arguments": "{}"}],
)
async def test_bad_call_arguments_are_invalid_arguments(arguments: dict[str, Any] | None) -> None:
    meta = MetaTools(ON)
    reach = FakeReach(catalogue(meta))
    with pytest.raises(InvalidArguments):
        await meta.call(reach, "call_tool", arguments)
    assert reach.calls == []


def test_lazy_listing_shows_the_meta_tools_and_the_always_tools_only() -> None:
    meta = MetaTools(ON)
    strict = [t.model_copy(update={"name": t.name.replace("/", "__")}) for t in sample_tools()]
    tools = [*strict, *meta.tools(Style.STRICT)]
    canonical = {t.name: t.name.replace("__", "/") for t in strict}
    config = SearchConfig(enabled=True, lazy=True, always=("hr/*", "ops/list_tickets", "OPS/*"))
    shown = [t.name for t in lazy_tools(tools, config, canonical.__getitem__)]
    hr = [t.name for t in strict if t.name.startswith("hr__")]
    assert shown == ["ops__list_tickets", *hr, *META]
    assert [t.name for t in lazy_tools(tools, config.model_copy(update={"always": ()}), canonical.__getitem__)] == [
        *META
    ]


def test_without_lazy_mode_every_tool_is_listed() -> None:
    tools = catalogue(MetaTools(ON))
    assert lazy_tools(tools, ON, lambda name: name) == tools
    assert lazy_tools(tools, SearchConfig(), lambda name: name) == tools


def test_search_is_off_by_default_on_the_gateway() -> None:
    config = GatewayConfig()
    assert config.search == SearchConfig() and not config.search.enabled and not config.search.lazy
    assert config.search.names.all() == META and (config.search.default_limit, config.search.max_limit) == (10, 50)
    assert STRICT_NAME.pattern == TOOL_NAME_PATTERN
    assert GatewayConfig(search={"enabled": True, "lazy": True, "always": ["ops/*"]}).search.always == ("ops/*",)


@pytest.mark.parametrize(
    "section",
    [
        {"lazy": True},
        {"enabled": True, "names": {"search": "ops/search"}},
        {"enabled": True, "names": {"call": ""}},
        {"enabled": True, "names": {"describe": "x" * 65}},
        {"enabled": True, "names": {"describe": "search_tools"}},
        {"enabled": True, "default_limit": 20, "max_limit": 10},
        {"enabled": True, "max_limit": 51},
        {"enabled": True, "default_limit": 0},
        {"enabled": True, "always": [""]},
        {"enabled": True, "colour": "blue"},
    ],
)
def test_a_bad_search_section_is_refused(section: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GatewayConfig(search=section)
