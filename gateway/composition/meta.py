"""The meta tools: search the tools a caller may use, describe one, call one by name; and lazy listing.

``MetaTools`` is a ``ToolSource`` of three tools (named by ``SearchConfig.names``). Search ranks the endpoint's
tools (``search.ToolIndex``, one per name style, rebuilt in a worker thread when ``Reach.generation`` moves) and
keeps only those the caller may use, reading on down the ranking until it has ``limit`` of them; the meta tools
never find themselves. Describe answers a tool's whole definition. Call hands the name and arguments to
``Reach.call_tool``, so the call goes through policy, rate limits and audit as a direct call would, and its result
or error comes back unchanged.

An unknown tool and one the caller may not use get the same answer from describe: a result with ``isError`` that
names the tool and points to search, which the model reading it can act on. An ``UnknownTarget`` error would read
as if describe itself were unknown, and the endpoint records an error of the meta tool's own call as such.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from fnmatch import translate
from functools import lru_cache
from typing import Any

import anyio
import anyio.to_thread
from mcp import types

from gateway.catalogue.naming import Style
from gateway.composition.search import Hit, ToolIndex
from gateway.composition.sources import Reach
from gateway.config.search import SearchConfig
from gateway.errors import InvalidArguments

# Characters of a tool name the describe and call tools accept (a canonical name is a prefix and a name of at most
# 128); of a description in a search hit (describe gives the whole of it).
MAX_NAME_CHARS = 256
MAX_HIT_DESCRIPTION = 400
_READ_ONLY = types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


class MetaTools:
    """Search, describe and call, as tools of the endpoint they are added to."""

    def __init__(self, config: SearchConfig) -> None:
        self._config = config
        self._names = config.names
        self._indexes: dict[Style, ToolIndex] = {}
        self._building = anyio.Lock()
        self._tools = [self._search_tool(), self._describe_tool(), self._call_tool()]

    def tools(self, style: Style) -> Sequence[types.Tool]:
        """The same three in both styles: their names keep to the strict rendering's characters."""
        return self._tools

    def owns(self, name: str) -> bool:
        return name in self._names.all()

    async def call(self, reach: Reach, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        args = arguments or {}
        if name == self._names.search:
            return await self._search(reach, args)
        if name == self._names.describe:
            return await self._describe(reach, args)
        return await self._call(reach, args)

    async def index(self, reach: Reach) -> ToolIndex:
        """The index of the caller's style at the reach's generation, built (off the event loop) if stale."""
        async with self._building:
            index = self._indexes.get(reach.style)
            if index is None or index.generation != reach.generation:
                tools = [tool for tool in reach.everything() if not self.owns(tool.name)]
                fresh = await anyio.to_thread.run_sync(ToolIndex, tools, reach.generation)
                if index is not None:
                    index.close()
                index = self._indexes[reach.style] = fresh
            return index

    async def _search(self, reach: Reach, args: dict[str, Any]) -> types.CallToolResult:
        tool = self._names.search
        _only(tool, args, ("query", "limit"))
        query = args.get("query")
        if not isinstance(query, str):
            raise InvalidArguments(tool, "query", "a string is required")
        limit = args.get("limit", self._config.default_limit)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= self._config.max_limit:
            raise InvalidArguments(tool, "limit", f"an integer from 1 to {self._config.max_limit} is required")
        hits = (await self.index(reach)).search(query, limit, reach.may_use)
        found = {"tools": [_hit(hit) for hit in hits]}
        return types.CallToolResult(content=[_text(found)], structured_content=found)

    async def _describe(self, reach: Reach, args: dict[str, Any]) -> types.CallToolResult:
        _only(self._names.describe, args, ("name",))
        name = _name(self._names.describe, args)
        tool = (await self.index(reach)).get(name) if not self.owns(name) else self._own(name)
        if tool is None or not reach.may_use(name):
            message = f"Unknown tool: {name!r}. Find the tools you can use with {self._names.search}."
            return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)
        definition = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
        return types.CallToolResult(content=[_text(definition)], structured_content=definition)

    async def _call(self, reach: Reach, args: dict[str, Any]) -> types.CallToolResult:
        tool = self._names.call
        _only(tool, args, ("name", "arguments"))
        name = _name(tool, args)
        if self.owns(name):
            raise InvalidArguments(
                tool, "name", f"{name!r} is a search tool itself: call it directly, not through {tool}"
            )
        arguments = args.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            raise InvalidArguments(tool, "arguments", "an object of the tool's arguments is required")
        return await reach.call_tool(name, arguments)

    def _own(self, name: str) -> types.Tool | None:
        return next((tool for tool in self._tools if tool.name == name), None)

    def _search_tool(self) -> types.Tool:
        names, limits = self._names, self._config
        return types.Tool(
            name=names.search,
            title="Search tools",
            description=(
                "Find the tools you can use here by what they do. Describe the task in a few words (for example "
                '"open incidents in a warehouse" or "approve a leave request"); the answer lists the best matches '
                "first, with each tool's name, title, description and a relevance score. Words are matched against "
                "tool names, titles, descriptions and argument names; word order does not matter, and common words "
                f"count for little. Then call {names.describe} with a name for its full argument schema, and call "
                f"the tool by that name (or through {names.call}). An empty list means no tool matched: try other "
                "words."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What you want to do, in a few words"},
                    "limit": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": limits.max_limit,
                        "default": limits.default_limit,
                        "description": "At most this many tools",
                    },
                },
                "required": ["query"],
                "additionalProperties": False,
            },
            output_schema=_SEARCH_OUTPUT,
            annotations=_READ_ONLY,
        )

    def _describe_tool(self) -> types.Tool:
        names = self._names
        return types.Tool(
            name=names.describe,
            title="Describe a tool",
            description=(
                "The full definition of one tool: its description, the JSON Schema of its arguments (inputSchema), "
                "of its structured result (outputSchema) if it has one, and its annotations (for example whether it "
                f"only reads). Use a name that {names.search} returned."
            ),
            input_schema={
                "type": "object",
                "properties": {"name": {"type": "string", "description": f"A tool name, as {names.search} gave it"}},
                "required": ["name"],
                "additionalProperties": False,
            },
            output_schema=_DESCRIBE_OUTPUT,
            annotations=_READ_ONLY,
        )

    def _call_tool(self) -> types.Tool:
        names = self._names
        return types.Tool(
            name=names.call,
            title="Call a tool by name",
            description=(
                f"Call any tool you can use by its name, for example one that {names.search} found but that is not "
                "in your list of tools. Pass the tool's arguments as an object that matches its inputSchema (see "
                f"{names.describe}); the answer is the tool's own result, or its error. It cannot call "
                f"{names.search}, {names.describe} or itself."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The tool's name"},
                    "arguments": {"type": "object", "description": "The tool's arguments"},
                },
                "required": ["name"],
                "additionalProperties": False,
            },
        )


def lazy_tools(tools: Sequence[types.Tool], config: SearchConfig, canonical: Callable[[str], str]) -> list[types.Tool]:
    """What ``tools/list`` shows of ``tools`` (one style's list, the meta tools included): in lazy mode only the
    meta tools and the tools whose canonical name (``canonical(name)``) matches one of ``always``; otherwise all.
    Lazy mode hides tools from the list only: calls to the others, directly or through the call tool, still work."""
    if not (config.enabled and config.lazy):
        return list(tools)
    meta = set(config.names.all())
    always = _patterns(config.always)
    return [t for t in tools if t.name in meta or (always is not None and always.match(canonical(t.name)))]


@lru_cache(maxsize=64)
def _patterns(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """Shell-style patterns as one expression, case-sensitive as the policy's are."""
    return re.compile("|".join(f"(?:{translate(p)})" for p in patterns)) if patterns else None


def _only(tool: str, args: dict[str, Any], allowed: Sequence[str]) -> None:
    unexpected = sorted(set(args) - set(allowed))
    if unexpected:
        raise InvalidArguments(tool, unexpected[0][:100], f"unexpected argument; {tool} takes {', '.join(allowed)}")


def _name(tool: str, args: dict[str, Any]) -> str:
    name = args.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
        raise InvalidArguments(tool, "name", f"a tool name of 1 to {MAX_NAME_CHARS} characters is required")
    return name


def _hit(hit: Hit) -> dict[str, Any]:
    found: dict[str, Any] = {"name": hit.tool.name}
    if hit.tool.title:
        found["title"] = hit.tool.title
    if hit.tool.description:
        description = hit.tool.description
        cut = len(description) > MAX_HIT_DESCRIPTION
        found["description"] = description[: MAX_HIT_DESCRIPTION - 1] + "…" if cut else description
    found["score"] = hit.score
    return found


def _text(structured: dict[str, Any]) -> types.TextContent:
    return types.TextContent(text=json.dumps(structured, ensure_ascii=False))


_SEARCH_OUTPUT = {
    "type": "object",
    "properties": {
        "tools": {
            "type": "array",
            "description": "The tools found, best first",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "title": {"type": "string"},
                    "description": {"type": "string"},
                    "score": {"type": "number", "description": "BM25 relevance; higher is better"},
                },
                "required": ["name", "score"],
            },
        }
    },
    "required": ["tools"],
}
_DESCRIBE_OUTPUT = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "inputSchema": {"type": "object"},
        "outputSchema": {"type": "object"},
        "annotations": {"type": "object"},
    },
    "required": ["name", "inputSchema"],
}
