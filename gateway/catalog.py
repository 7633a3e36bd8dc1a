"""The aggregated catalogue: every backend's tools, prompts, resources and templates under exposed names.

Items go out exactly as the backend listed them but for the name (or URI). The catalogue owns the lookup
tables from every exposed rendering back to ``(backend, original name)``, detects two backends claiming one
exposed name (the first in config order keeps it; the clash is logged and listed in ``conflicts``), and keeps
the last listing of a backend that went down so calls to its tools fail with "backend unavailable" rather than
"unknown tool". Lists are precomputed per rendering style and sorted by canonical name.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mcp import types

from gateway.config import BackendConfig, NamingConfig
from gateway.errors import UnknownTarget
from gateway.naming import Style, canonical_name, expose_uri, split_uri, strict_name

logger = logging.getLogger(__name__)


class Kind(StrEnum):
    """The lists a client can be told have changed."""

    TOOLS = "tools"
    PROMPTS = "prompts"
    RESOURCES = "resources"


@dataclass(frozen=True)
class Snapshot:
    """One backend's complete listing."""

    tools: tuple[types.Tool, ...] = ()
    prompts: tuple[types.Prompt, ...] = ()
    resources: tuple[types.Resource, ...] = ()
    templates: tuple[types.ResourceTemplate, ...] = ()


@dataclass(frozen=True)
class Route:
    """Where an exposed name leads: the owning backend and the name the backend knows."""

    backend: str
    original: str


@dataclass
class _Index:
    tools: dict[str, Route] = field(default_factory=dict)
    prompts: dict[str, Route] = field(default_factory=dict)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    lists: dict[tuple[str, Style], list[Any]] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)


class Catalog:
    """Exposed names for the current backend listings; rebuilt whole on every change."""

    def __init__(self, backends: Sequence[BackendConfig], naming: NamingConfig) -> None:
        self._backends = list(backends)
        self._naming = naming
        self._prefix_owner = {b.exposed_prefix: b.name for b in backends if b.exposed_prefix}
        self._unprefixed = [b.name for b in backends if not b.exposed_prefix]
        self._known: dict[str, Snapshot] = {}
        self._visible: set[str] = set()
        self._index = _Index()
        self._rebuild()

    # -- changes ---------------------------------------------------------------------------------------------

    def show(self, backend: str, snapshot: Snapshot) -> set[Kind]:
        """Install a backend's fresh listing and show it; returns the kinds whose exposed lists changed."""
        self._known[backend] = snapshot
        self._visible.add(backend)
        return self._rebuild()

    def hide(self, backend: str) -> set[Kind]:
        """Withdraw a backend's items from the lists (it went down); its names still route, to a clear error."""
        self._visible.discard(backend)
        return self._rebuild()

    # -- lists -----------------------------------------------------------------------------------------------

    def tools(self, style: Style) -> list[types.Tool]:
        return self._index.lists[("tools", style)]

    def prompts(self, style: Style) -> list[types.Prompt]:
        return self._index.lists[("prompts", style)]

    def resources(self) -> list[types.Resource]:
        return self._index.lists[("resources", Style.CANONICAL)]

    def templates(self) -> list[types.ResourceTemplate]:
        return self._index.lists[("templates", Style.CANONICAL)]

    @property
    def conflicts(self) -> list[str]:
        return list(self._index.conflicts)

    def counts(self, backend: str) -> dict[str, int]:
        snap = self._known.get(backend, Snapshot())
        return {
            "tools": len(snap.tools),
            "prompts": len(snap.prompts),
            "resources": len(snap.resources),
            "templates": len(snap.templates),
        }

    # -- routing ---------------------------------------------------------------------------------------------

    def resolve_tool(self, name: str) -> Route:
        route = self._index.tools.get(name)
        if route is None:
            raise UnknownTarget("tool", name)
        return route

    def resolve_prompt(self, name: str) -> Route:
        route = self._index.prompts.get(name)
        if route is None:
            raise UnknownTarget("prompt", name)
        return route

    def resolve_uri(self, uri: str) -> Route:
        """Route a resource URI (or a URI filled in from a template) to its owner, stripping the prefix."""
        split = split_uri(uri)
        if split is not None and split[0] in self._prefix_owner:
            return Route(self._prefix_owner[split[0]], split[1])
        for backend in self._unprefixed:
            if any(r.uri == uri for r in self._known.get(backend, Snapshot()).resources):
                return Route(backend, uri)
        if len(self._unprefixed) == 1:
            return Route(self._unprefixed[0], uri)
        raise UnknownTarget("resource", uri)

    def input_schema(self, name: str) -> dict[str, Any] | None:
        return self._index.schemas.get(name)

    # -- building --------------------------------------------------------------------------------------------

    def _rebuild(self) -> set[Kind]:
        before = self._index.lists
        index = _Index()
        ordered = [b for b in self._backends if b.name in self._known]
        tool_items = [(b, t.name, t) for b in ordered for t in self._known[b.name].tools]
        prompt_items = [(b, p.name, p) for b in ordered for p in self._known[b.name].prompts]
        tool_names = self._register("tool", tool_items, index.tools, index.conflicts)
        prompt_names = self._register("prompt", prompt_items, index.prompts, index.conflicts)
        for canon, (backend, strict, tool) in tool_names.items():
            if backend in self._visible:
                index.schemas[canon] = index.schemas[strict] = tool.input_schema
        for kind, names in (("tools", tool_names), ("prompts", prompt_names)):
            for style in Style:
                index.lists[(kind, style)] = [
                    item.model_copy(update={"name": canon if style is Style.CANONICAL else strict})
                    for canon, (backend, strict, item) in sorted(names.items())
                    if backend in self._visible
                ]
        visible = [b for b in ordered if b.name in self._visible]
        index.lists[("resources", Style.CANONICAL)] = sorted(
            (
                r.model_copy(update={"uri": expose_uri(b.exposed_prefix, str(r.uri))})
                for b in visible
                for r in self._known[b.name].resources
            ),
            key=lambda r: str(r.uri),
        )
        index.lists[("templates", Style.CANONICAL)] = sorted(
            (
                t.model_copy(update={"uri_template": expose_uri(b.exposed_prefix, t.uri_template)})
                for b in visible
                for t in self._known[b.name].templates
            ),
            key=lambda t: t.uri_template,
        )
        for conflict in index.conflicts:
            if conflict not in self._index.conflicts:
                logger.warning("name conflict: %s", conflict)
        self._index = index
        return _changed(before, index.lists)

    def _register(
        self,
        kind: str,
        items: Iterable[tuple[BackendConfig, str, Any]],
        routes: dict[str, Route],
        conflicts: list[str],
    ) -> dict[str, tuple[str, str, Any]]:
        """Fill ``routes`` with canonical and strict names; returns canonical -> (backend, strict, item)."""
        owners: dict[str, tuple[BackendConfig, str, Any]] = {}
        for backend, name, item in items:
            canon = canonical_name(backend.exposed_prefix, name)
            if canon in owners:
                first = owners[canon][0].name
                conflicts.append(f"{kind} {canon!r} is offered by {first!r} and {backend.name!r}; {first!r} keeps it")
                continue
            owners[canon] = (backend, name, item)
        by_strict: dict[str, list[str]] = defaultdict(list)
        for canon, (backend, name, _) in owners.items():
            by_strict[strict_name(backend.exposed_prefix, name, self._naming)].append(canon)
        result: dict[str, tuple[str, str, Any]] = {}
        for strict, canons in by_strict.items():
            for canon in canons:
                backend, name, item = owners[canon]
                rendered = strict_name(backend.exposed_prefix, name, self._naming, force_hash=True)
                result[canon] = (backend.name, strict if len(canons) == 1 else rendered, item)
                routes[canon] = Route(backend.name, name)
        for canon, (_, strict, _) in result.items():
            if strict == canon:
                continue
            if strict in routes and routes[strict] != routes[canon]:
                conflicts.append(f"{kind} rendering {strict!r} of {canon!r} clashes with another {kind}; not routed")
                continue
            routes[strict] = routes[canon]
        return result


def _changed(before: dict[tuple[str, Style], list[Any]], after: dict[tuple[str, Style], list[Any]]) -> set[Kind]:
    kinds = {"tools": Kind.TOOLS, "prompts": Kind.PROMPTS, "resources": Kind.RESOURCES, "templates": Kind.RESOURCES}
    return {
        kind
        for (name, style), items in after.items()
        if style is Style.CANONICAL and before.get((name, style)) != items
        for kind in [kinds[name]]
    }
