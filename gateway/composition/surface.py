"""What one MCP endpoint offers, and the way each of its calls goes.

The front (the MCP server and its fast path) asks a ``Surface`` for lists and hands it every call. A surface with
nothing of its own is the guard over the whole catalogue and adds nothing to either. One with ``sources`` (the
gateway's own tools: meta tools, composites) lists their tools beside the catalogue's, sorted into one keyset-paged
list, and runs a call to one of them through the guard's policy, rate limits and audit for that name before the
source gets it; what the source calls in turn goes through the guard again, as the caller (``Reach``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcp import types

from gateway.catalogue.naming import Style
from gateway.catalogue.pages import Key, page
from gateway.composition.sources import ToolSource
from gateway.core import Gateway
from gateway.errors import NeedsInput
from gateway.principal import Principal
from gateway.security.guard import RequestId
from gateway.upstream.caller import Caller

# How much a surface's own changes move its generation past the catalogue's, so the two never collide.
_SHIFT = 20


class Surface:
    """One endpoint's lists and calls: the catalogue through the guard, plus the tools of ``sources``."""

    def __init__(self, gateway: Gateway, sources: Sequence[ToolSource] = ()) -> None:
        self._gateway = gateway
        self._guard = gateway.guard
        self._catalog = gateway.catalog
        self._sources = tuple(sources)
        self._version = 0
        self._lists: dict[tuple[str, Style], tuple[int, list[Any], list[Key]]] = {}

    def set_sources(self, sources: Sequence[ToolSource]) -> None:
        """Serve other tools of the gateway's own from now on (clients are told by whoever changed them)."""
        self._sources = tuple(sources)
        self._version += 1

    @property
    def generation(self) -> int:
        """Moves whenever a list of this endpoint may have changed."""
        return self._catalog.generation + (self._version << _SHIFT)

    @property
    def filters(self) -> bool:
        """Whether some principal may see less than the whole of this endpoint's lists."""
        return self._guard.filters

    # -- lists -----------------------------------------------------------------------------------------------

    def listing(self, principal: Principal, kind: str, style: Style) -> list[Any]:
        """A whole list as far as ``principal`` may use it."""
        shown = self._guard.listing(principal, kind, style)
        if kind != "tools" or not self._sources:
            return shown
        allowed = self._guard.policy.matcher(principal)
        own = [tool for tool in self._own_tools(style) if allowed(tool.name)]
        return sorted([*shown, *own], key=lambda tool: self._key(tool.name))

    def page(self, kind: str, style: Style, cursor: str | None, size: int) -> tuple[list[Any], str | None]:
        """One page of a list nobody's rules filter, and the next page's cursor."""
        if kind != "tools" or not self._sources:
            return self._catalog.page(kind, style, cursor, size)
        items, keys = self._tools(style)
        return page(kind, items, keys, cursor, size)

    def everything(self, style: Style) -> list[types.Tool]:
        """Every tool of the endpoint, before anyone's rules."""
        return self._tools(style)[0] if self._sources else self._catalog.tools(style)

    def input_schema(self, name: str) -> dict[str, Any] | None:
        source = self._source(name)
        if source is None:
            return self._catalog.input_schema(name)
        return next((tool.input_schema for tool in source.tools(Style.CANONICAL) if tool.name == name), None)

    def _tools(self, style: Style) -> tuple[list[Any], list[Key]]:
        """The catalogue's tools and the sources', sorted by canonical name; made once per generation."""
        generation = self.generation
        made = self._lists.get(("tools", style))
        if made is not None and made[0] == generation:
            return made[1], made[2]
        canonical = self._catalog.tools(Style.CANONICAL)
        styled = self._catalog.tools(style)
        entries = [(tool.name, shown) for tool, shown in zip(canonical, styled, strict=True)]
        entries += [(tool.name, tool) for tool in self._own_tools(style)]
        entries.sort(key=lambda entry: entry[0])
        items = [tool for _, tool in entries]
        keys: list[Key] = [(name,) for name, _ in entries]
        self._lists[("tools", style)] = (generation, items, keys)
        return items, keys

    def _own_tools(self, style: Style) -> list[types.Tool]:
        return [tool for source in self._sources for tool in source.tools(style)]

    def _key(self, name: str) -> str:
        """A tool's sort key: its canonical name (the gateway's own tools have one rendering)."""
        if self._source(name) is not None:
            return name
        return self._guard.tool_name(name) or name

    def _source(self, name: str) -> ToolSource | None:
        return next((source for source in self._sources if source.owns(name)), None)

    # -- calls -----------------------------------------------------------------------------------------------

    async def call_tool(
        self,
        caller: Caller,
        name: str,
        arguments: dict[str, Any] | None,
        meta: Mapping[str, Any] | None = None,
        *,
        style: Style = Style.CANONICAL,
        request_id: RequestId = None,
        admitted: bool = False,
        input_responses: dict[str, Any] | None = None,
        request_state: str | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        source = self._source(name) if self._sources else None
        if source is None:
            return await self._guard.call_tool(
                caller,
                name,
                arguments,
                meta,
                request_id=request_id,
                admitted=admitted,
                input_responses=input_responses,
                request_state=request_state,
            )
        reach = _Reach(self, caller, caller.principal or self._guard.local, style, request_id)
        own = source

        async def run() -> types.CallToolResult:
            return await own.call(reach, name, arguments)

        return await self._guard.call_own(caller, name, arguments, run, request_id=request_id, admitted=admitted)

    async def get_prompt(
        self, caller: Caller, name: str, arguments: dict[str, str] | None, **call: Any
    ) -> types.GetPromptResult | types.InputRequiredResult:
        return await self._guard.get_prompt(caller, name, arguments, **call)

    async def read_resource(
        self, caller: Caller, uri: str, **call: Any
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        return await self._guard.read_resource(caller, uri, **call)

    async def complete(self, caller: Caller, params: types.CompleteRequestParams, **call: Any) -> types.CompleteResult:
        return await self._guard.complete(caller, params, **call)

    async def subscribe(self, caller: Caller, uri: str, subscriber: object, **call: Any) -> types.EmptyResult:
        return await self._guard.subscribe(caller, uri, subscriber, **call)

    async def unsubscribe(self, uri: str, subscriber: object) -> types.EmptyResult:
        return await self._guard.unsubscribe(uri, subscriber)

    def may_use(self, principal: Principal, name: str) -> bool:
        """Whether ``principal`` may see and call the tool ``name`` on this endpoint."""
        if self._source(name) is not None:
            return self._guard.policy.allows(principal, name)
        return self._guard.may_call_tool(principal, name)


class _Reach:
    """The endpoint as one caller sees it, for a call to one of the gateway's own tools (``sources.Reach``)."""

    def __init__(
        self, surface: Surface, caller: Caller, principal: Principal, style: Style, request_id: RequestId
    ) -> None:
        self._surface = surface
        self._caller = caller
        self._principal = principal
        self._request_id = request_id
        self.style = style

    @property
    def generation(self) -> int:
        return self._surface.generation

    def everything(self) -> Sequence[types.Tool]:
        return self._surface.everything(self.style)

    def may_use(self, name: str) -> bool:
        return self._surface.may_use(self._principal, name)

    async def call_tool(self, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        result = await self._surface.call_tool(
            self._caller, name, arguments, style=self.style, request_id=self._request_id
        )
        if isinstance(result, types.InputRequiredResult):
            raise NeedsInput(name)
        return result
