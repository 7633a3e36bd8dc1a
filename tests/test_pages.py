"""The gateway's own lists in pages: opaque cursors, every item exactly once, bad cursors refused, in both eras."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client, MCPError, types

from gateway.catalogue.catalog import Snapshot
from gateway.catalogue.naming import Style
from gateway.catalogue.pages import encode_cursor, page
from tests.support.inproc import READER, client, running_gateway
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ERAS = ["legacy", "auto"]


async def walk(c: Client, method: str, attr: str) -> tuple[list[Any], int]:
    """Every item of a list, following cursors; and how many pages it took."""
    items: list[Any] = []
    cursor: str | None = None
    pages = 0
    while True:
        result = await getattr(c, method)(cursor=cursor)
        items += getattr(result, attr)
        pages += 1
        cursor = result.next_cursor
        if cursor is None:
            return items, pages


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("client_name", [READER, "claude-ai"])
async def test_walking_every_page_gives_every_tool_once_in_the_order_of_the_full_list(
    mode: str, client_name: str
) -> None:
    async with running_gateway({"ops": build("ops"), "hr": build("hr")}, list_page_size=3) as gw:
        style = Style.STRICT if client_name == "claude-ai" else Style.CANONICAL
        full = [t.name for t in gw.catalog.tools(style)]
        async with client(gw, name=client_name, mode=mode) as c:
            tools, pages = await walk(c, "list_tools", "tools")
            again, _ = await walk(c, "list_tools", "tools")
    assert [t.name for t in tools] == full
    assert len(full) > 6
    assert pages == -(-len(full) // 3)
    assert [t.name for t in again] == full


@pytest.mark.parametrize("mode", ERAS)
async def test_prompts_resources_and_templates_page_too(mode: str) -> None:
    async with (
        running_gateway({"ops": build("ops"), "hr": build("hr")}, list_page_size=1) as gw,
        client(gw, mode=mode) as c,
    ):
        prompts, prompt_pages = await walk(c, "list_prompts", "prompts")
        resources, resource_pages = await walk(c, "list_resources", "resources")
        templates, template_pages = await walk(c, "list_resource_templates", "resource_templates")
    assert [p.name for p in prompts] == ["hr/greet", "hr/greet_asked", "ops/greet", "ops/greet_asked"]
    assert [str(r.uri) for r in resources] == ["hr+toy://about", "ops+toy://about"]
    assert [t.uri_template for t in templates] == [
        "hr+toy://asked/{topic}",
        "hr+toy://notes/{note_id}",
        "ops+toy://asked/{topic}",
        "ops+toy://notes/{note_id}",
    ]
    assert (prompt_pages, resource_pages, template_pages) == (4, 2, 4)


@pytest.mark.parametrize("mode", ERAS)
async def test_a_list_that_changes_between_pages_still_gives_each_item_at_most_once(mode: str) -> None:
    async with running_gateway({"ops": build("ops")}, list_page_size=2) as gw, client(gw, mode=mode) as c:
        first = await c.list_tools()
        assert first.next_cursor is not None
        tools = gw.upstreams["ops"].tools.values()
        extra = types.Tool(name="aaa_first", input_schema={"type": "object"})
        gw.catalog.show("ops", Snapshot(tools=(extra, *tools)))
        rest, _ = await walk_from(c, first.next_cursor)
    names = [t.name for t in [*first.tools, *rest]]
    assert len(names) == len(set(names))
    assert set(names) == {f"ops/{t.name}" for t in tools}


async def walk_from(c: Client, cursor: str | None) -> tuple[list[Any], int]:
    items: list[Any] = []
    pages = 0
    while cursor is not None:
        result = await c.list_tools(cursor=cursor)
        items += result.tools
        pages += 1
        cursor = result.next_cursor
    return items, pages


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        "bm90IGpzb24",  # "not json"
        encode_cursor("prompts", ("ops/greet",)),  # another list's cursor
        encode_cursor("tools", (7,)),  # a key of the wrong shape
        "WyJ0b29scyJd",  # ["tools"]: no key
    ],
)
async def test_a_cursor_the_gateway_did_not_hand_out_is_invalid_params(mode: str, cursor: str) -> None:
    async with running_gateway({"ops": build("ops")}, list_page_size=2) as gw, client(gw, mode=mode) as c:
        with pytest.raises(MCPError) as excinfo:
            await c.list_tools(cursor=cursor)
        assert (await c.list_tools()).tools
    assert excinfo.value.code == types.INVALID_PARAMS
    assert "cursor" in excinfo.value.message.lower()


async def test_list_answers_are_reused_until_the_catalogue_changes() -> None:
    async with running_gateway({"ops": build("ops")}) as gw, client(gw) as c:
        first = await c.list_tools()
        assert await c.list_tools() == first
        gw.catalog.show("ops", Snapshot(tools=(types.Tool(name="only", input_schema={"type": "object"}),)))
        after = await c.list_tools()
    assert [t.name for t in after.tools] == ["ops/only"]


def test_pages_follow_unique_sort_keys_and_the_last_page_has_no_cursor() -> None:
    items = ["a", "b", "c", "d", "e"]
    keys = [(i,) for i in items]

    first, cursor = page("x", items, keys, None, 2)
    second, cursor2 = page("x", items, keys, cursor, 2)
    third, cursor3 = page("x", items, keys, cursor2, 2)

    assert (first, second, third, cursor3) == (["a", "b"], ["c", "d"], ["e"], None)
    assert page("x", items, keys, None, 5) == (items, None)
    assert page("x", [], [], encode_cursor("x", ("zz",)), 5) == ([], None)
