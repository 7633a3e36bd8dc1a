"""What one MCP endpoint offers, and the way each of its calls goes.

The front (the MCP server and its fast path) asks a ``Surface`` for lists and hands it every call. A surface with
nothing of its own is the guard over the whole catalogue and adds nothing to either. One with ``sources`` (the
gateway's own tools: meta tools, composites) lists their tools beside the catalogue's, sorted into one keyset-paged
list, and runs a call to one of them through the guard's policy, rate limits and audit for that name before the
source gets it; what the source calls in turn goes through the guard again, as the caller (``Reach``). One with a
``View`` (a virtual server's) shows only what it selects, as it renames it, and takes calls only to that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcp import types

from gateway.catalogue.naming import Style
from gateway.catalogue.pages import Key, page
from gateway.composition.meta import lazy_tools
from gateway.composition.sources import ToolSource
from gateway.composition.views import View
from gateway.config.search import SearchConfig
from gateway.core import Gateway
from gateway.errors import NeedsInput, UnknownTarget
from gateway.principal import Principal
from gateway.security.guard import RequestId
from gateway.upstream.caller import Caller

# How much a surface's own changes move its generation past the catalogue's, so the two never collide.
_SHIFT = 20


class Surface:
    """One endpoint's lists and calls: the catalogue through the guard (as ``view`` shows it), plus the tools of
    ``sources``."""

    def __init__(
        self,
        gateway: Gateway,
        sources: Sequence[ToolSource] = (),
        view: View | None = None,
        search: SearchConfig | None = None,
    ) -> None:
        """``search``: in lazy mode (``search.lazy``) ``tools/list`` shows only what it names; calls reach all."""
        self._gateway = gateway
        self._search = search if search is not None and search.lazy else None
        self._guard = gateway.guard
        self._catalog = gateway.catalog
        self._sources = tuple(sources)
        self._view = view
        self._version = 0
        self._lists: dict[tuple[str, Style], tuple[int, list[Any], list[Key]]] = {}
        self._schemas: tuple[int, dict[str, dict[str, Any]]] = (-1, {})

    def set(self, sources: Sequence[ToolSource], view: View | None, search: SearchConfig | None = None) -> None:
        """Offer other tools of the gateway's own, or another selection, from now on (clients are told by whoever
        changed them)."""
        self._sources, self._view = tuple(sources), view
        self._search = search if search is not None and search.lazy else None
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
        if self._view is not None:
            shown = self._selected(kind, [(self._name(kind, item), item) for item in shown])
        if kind != "tools" or not self._sources:
            return shown
        allowed = self._guard.policy.matcher(principal)
        own = [tool for tool in self._own_tools(style) if allowed(tool.name)]
        return self._lazy(sorted([*shown, *own], key=lambda tool: self._sort_key(kind, tool)))

    def page(self, kind: str, style: Style, cursor: str | None, size: int) -> tuple[list[Any], str | None]:
        """One page of a list nobody's rules filter, and the next page's cursor."""
        if self._view is None and (kind != "tools" or not self._sources):
            return self._catalog.page(kind, style, cursor, size)
        items, keys = self._composed(kind, style)
        if kind == "tools" and self._search is not None:
            items, keys = self._listed(style)
        return page(kind, items, keys, cursor, size)

    def everything(self, style: Style) -> list[types.Tool]:
        """Every tool of the endpoint, before anyone's rules."""
        if self._view is None and not self._sources:
            return self._catalog.tools(style)
        return self._composed("tools", style)[0]

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """The input schema of a tool as this endpoint shows it, by either rendering of its name."""
        source = self._source(name)
        if source is not None:
            return next((tool.input_schema for tool in source.tools(Style.CANONICAL) if tool.name == name), None)
        if self._view is None:
            return self._catalog.input_schema(name)
        generation = self.generation
        if self._schemas[0] != generation:
            tools = [*self._composed("tools", Style.CANONICAL)[0], *self._composed("tools", Style.STRICT)[0]]
            self._schemas = (generation, {tool.name: tool.input_schema for tool in tools})
        return self._schemas[1].get(name)

    def _composed(self, kind: str, style: Style) -> tuple[list[Any], list[Key]]:
        """A whole list (the catalogue's, as the view shows it, and the sources' tools) sorted, with its page keys;
        made once per generation."""
        style = style if kind in ("tools", "prompts") else Style.CANONICAL
        generation = self.generation
        made = self._lists.get((kind, style))
        if made is not None and made[0] == generation:
            return made[1], made[2]
        items = self._selected(kind, self._entries(kind, style)) if self._view is not None else self._plain(kind, style)
        if kind == "tools":
            items += self._own_tools(style)
        items.sort(key=lambda item: self._sort_key(kind, item))
        keys: list[Key] = [(self._sort_key(kind, item),) for item in items]
        self._lists[(kind, style)] = (generation, items, keys)
        return items, keys

    def _listed(self, style: Style) -> tuple[list[Any], list[Key]]:
        """The tools ``tools/list`` shows in lazy mode, with their page keys; made once per generation."""
        generation = self.generation
        made = self._lists.get(("lazy", style))
        if made is None or made[0] != generation:
            items, keys = self._composed("tools", style)
            kept = {id(tool) for tool in self._lazy(items)}
            pairs = [(tool, key) for tool, key in zip(items, keys, strict=True) if id(tool) in kept]
            made = self._lists[("lazy", style)] = (generation, [t for t, _ in pairs], [k for _, k in pairs])
        return made[1], made[2]

    def _lazy(self, tools: list[Any]) -> list[Any]:
        if self._search is None:
            return tools
        return lazy_tools(tools, self._search, self._canonical)

    def _canonical(self, name: str) -> str:
        """A listed tool's canonical name: its own for the gateway's tools, else the catalogue's (through a
        view's renaming)."""
        if self._source(name) is not None:
            return name
        return self._guard.tool_name(self.catalogue_name(name)) or name

    def _plain(self, kind: str, style: Style) -> list[Any]:
        if kind in ("tools", "prompts"):
            return list(self._catalog.tools(style) if kind == "tools" else self._catalog.prompts(style))
        return list(self._catalog.resources() if kind == "resources" else self._catalog.templates())

    def _entries(self, kind: str, style: Style) -> list[tuple[str, Any]]:
        """The catalogue's tools or prompts in ``style`` as ``(canonical name, item)``; its resources or
        templates as ``("", item)`` (a view selects those by URI)."""
        if kind in ("tools", "prompts"):
            listed = self._catalog.tools if kind == "tools" else self._catalog.prompts
            return [(a.name, b) for a, b in zip(listed(Style.CANONICAL), listed(style), strict=True)]
        return [("", item) for item in self._plain(kind, style)]

    def _selected(self, kind: str, entries: list[tuple[str, Any]]) -> list[Any]:
        """What the view shows of a list given as ``_entries`` gives it."""
        view = self._view
        assert view is not None
        shown: list[Any]
        if kind == "tools":
            shown = view.tools(entries)
        elif kind == "prompts":
            shown = view.prompts(entries)
        else:
            items = [item for _, item in entries]
            shown = view.resources(items) if kind == "resources" else view.templates(items)
        return shown

    def _name(self, kind: str, item: Any) -> str:
        if kind in ("tools", "prompts"):
            return self._guard.item_name(kind, item)
        return str(item.uri) if kind == "resources" else str(item.uri_template)

    def _sort_key(self, kind: str, item: Any) -> str:
        if kind in ("tools", "prompts"):
            return self._key(item.name) if self._view is None else str(item.name)
        return self._name(kind, item)

    def _own_tools(self, style: Style) -> list[types.Tool]:
        return [tool for source in self._sources for tool in source.tools(style)]

    def _key(self, name: str) -> str:
        """A tool's sort key without a view: its canonical name (the gateway's own tools have one rendering)."""
        if self._source(name) is not None:
            return name
        return self._guard.tool_name(name) or name

    def _source(self, name: str) -> ToolSource | None:
        return next((source for source in self._sources if source.owns(name)), None)

    # -- names -----------------------------------------------------------------------------------------------

    def catalogue_name(self, name: str) -> str:
        """The catalogue's name for a tool called here by ``name`` (a view may rename it)."""
        target = self._view.target(name) if self._view is not None else None
        return target[0] if target is not None else name

    def _tool(self, name: str, arguments: dict[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
        """A tool called here, as the catalogue knows it, with the view's fixed arguments: a name the view gave,
        or one it selects (a renamed tool is not reached by its old name, which would dodge its fixed ones)."""
        view = self._view
        if view is None:
            return name, arguments
        target = view.target(name)
        known = target[0] if target is not None else name
        canonical = self._guard.tool_name(known)
        if canonical is None or (target is None and not view.select("tools", canonical)):
            raise UnknownTarget("tool", name)
        return known, view.arguments(canonical, arguments)

    def _prompt(self, name: str) -> None:
        canonical = self._guard.prompt_name(name)
        if self._view is not None and canonical is not None and not self._view.select("prompts", canonical):
            raise UnknownTarget("prompt", name)

    def _uri(self, uri: str) -> None:
        if self._view is not None and not (self._view.select("resources", uri) or self._view.select("templates", uri)):
            raise UnknownTarget("resource", uri)

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
            known, arguments = self._tool(name, arguments)
            return await self._guard.call_tool(
                caller,
                known,
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
        self._prompt(name)
        return await self._guard.get_prompt(caller, name, arguments, **call)

    async def read_resource(
        self, caller: Caller, uri: str, **call: Any
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        self._uri(uri)
        return await self._guard.read_resource(caller, uri, **call)

    async def complete(self, caller: Caller, params: types.CompleteRequestParams, **call: Any) -> types.CompleteResult:
        ref = params.ref
        if isinstance(ref, types.PromptReference):
            self._prompt(ref.name)
        else:
            self._uri(ref.uri)
        return await self._guard.complete(caller, params, **call)

    async def subscribe(self, caller: Caller, uri: str, subscriber: object, **call: Any) -> types.EmptyResult:
        self._uri(uri)
        return await self._guard.subscribe(caller, uri, subscriber, **call)

    async def unsubscribe(self, uri: str, subscriber: object) -> types.EmptyResult:
        return await self._guard.unsubscribe(uri, subscriber)

    def may_use(self, principal: Principal, name: str) -> bool:
        """Whether ``principal`` may see and call the tool ``name`` on this endpoint."""
        if self._source(name) is not None:
            return self._guard.policy.allows(principal, name)
        try:
            known, _ = self._tool(name, None)
        except UnknownTarget:
            return False
        return self._guard.may_call_tool(principal, known)


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
