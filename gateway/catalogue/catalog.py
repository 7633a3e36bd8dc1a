"""The aggregated catalogue: every backend's tools, prompts, resources and templates under exposed names.

Items go out exactly as the backend listed them but for the name (or URI). The catalogue owns the lookup
tables from every exposed rendering back to ``(backend, original name)``, detects two backends claiming one
exposed name (the first in config order keeps it; the clash is logged and listed in ``conflicts``), and keeps
the last listing of a backend that went down so calls to its tools fail with "backend unavailable" rather than
"unknown tool". Lists are precomputed per rendering style (the strict one when first asked for) and sorted by
canonical name (URIs for resources).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from mcp import types

from gateway.catalogue.naming import Style, canonical_name, expose_uri, split_uri, strict_name
from gateway.catalogue.pages import Key, page
from gateway.config import BackendConfig, NamingConfig
from gateway.errors import UnknownTarget

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
    # What the strict lists of tools and prompts are made of: (part, entry, strict name), copied on first use.
    strict: dict[str, list[tuple[_Part, _Named, str]]] = field(default_factory=dict)
    keys: dict[str, list[Key]] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)


class _Named(NamedTuple):
    """A tool or prompt with every string the merge needs, computed once when its backend lists it (a tuple: much
    cheaper to make than a frozen dataclass, and a start with 100 backends makes 10,000)."""

    backend: BackendConfig
    name: str
    canonical: str
    strict: str
    item: Any
    route: Route


class _Part:
    """One kind of one backend's listing, plus the renamed copies made of it so far (reused across merges)."""

    def __init__(self, items: tuple[Any, ...], named: list[_Named], exposed: list[tuple[str, int, Any]]) -> None:
        self.items = items
        self.named = named
        self.exposed = exposed
        self._copies: dict[tuple[int, str], Any] = {}

    def renamed(self, entry: _Named, name: str) -> Any:
        key = (id(entry.item), name)
        copy = self._copies.get(key)
        if copy is None:
            copy = self._copies[key] = entry.item.model_copy(update={"name": name})
        return copy


_KINDS = ("tools", "prompts", "resources", "templates")


class Catalog:
    """Exposed names for the current backend listings.

    A backend's arrival costs O(its items) in model work: its items are renamed and copied once, and kept while
    its listing does not change. ``apply`` takes a batch of changes and merges once; the merge itself only moves
    references and precomputed strings, so a burst of arrivals costs one cheap pass over the whole catalogue.
    """

    def __init__(self, backends: Sequence[BackendConfig], naming: NamingConfig) -> None:
        self._naming = naming
        self._configure(backends)
        self._hidden_tools: frozenset[str] = frozenset()
        self._known: dict[str, Snapshot] = {}
        self._parts: dict[str, dict[str, _Part]] = {}
        self._visible: set[str] = set()
        self._index = _Index()
        self.generation = 0
        self._merge()

    def _configure(self, backends: Sequence[BackendConfig]) -> None:
        self._backends = list(backends)
        self._by_name = {b.name: b for b in backends}
        self._prefix_owner = {b.exposed_prefix: b.name for b in backends if b.exposed_prefix}
        self._unprefixed = [b.name for b in backends if not b.exposed_prefix]

    # -- changes ---------------------------------------------------------------------------------------------

    def set_backends(self, backends: Sequence[BackendConfig]) -> set[Kind]:
        """The backends changed while serving: forget the listings of those gone, rename the items of those whose
        definition changed (a new prefix), and merge once; returns the kinds whose exposed lists changed."""
        before = self._by_name
        self._configure(backends)
        for name in list(self._parts):
            if name not in self._by_name:
                self.forget(name)
            elif self._by_name[name] != before[name]:
                self._parts[name] = self._parts_for(self._by_name[name], self._known[name], {})
        return self._merge()

    def forget(self, backend: str) -> None:
        """Drop a backend's listing altogether, so its names no longer route (``apply`` or ``hide_tools`` merges)."""
        self._known.pop(backend, None)
        self._parts.pop(backend, None)
        self._visible.discard(backend)

    def hide_tools(self, names: frozenset[str]) -> set[Kind]:
        """Tools turned off by canonical name: left out of the lists and unknown to calls, like a name never
        offered."""
        self._hidden_tools = names
        return self._merge()

    def show(self, backend: str, snapshot: Snapshot) -> set[Kind]:
        """Install a backend's fresh listing and show it; returns the kinds whose exposed lists changed."""
        return self.apply({backend: snapshot})

    def hide(self, backend: str) -> set[Kind]:
        """Withdraw a backend's items from the lists (it went down); its names still route, to a clear error."""
        return self.apply({backend: None})

    def apply(self, changes: Mapping[str, Snapshot | None]) -> set[Kind]:
        """Show (a listing) or hide (``None``) several backends at once, then merge once."""
        for backend, snapshot in changes.items():
            if backend not in self._by_name:
                continue  # removed while its listing was on the way
            if snapshot is None:
                self._visible.discard(backend)
                continue
            self._known[backend] = snapshot
            self._visible.add(backend)
            self._parts[backend] = self._parts_for(self._by_name[backend], snapshot, self._parts.get(backend, {}))
        return self._merge()

    def _parts_for(self, backend: BackendConfig, snap: Snapshot, old: dict[str, _Part]) -> dict[str, _Part]:
        """Each kind of a listing, reusing the old part (and its copies) where the items did not change."""
        parts: dict[str, _Part] = {}
        for kind in _KINDS:
            items: tuple[Any, ...] = getattr(snap, kind)
            previous = old.get(kind)
            if previous is not None and previous.items == items:
                parts[kind] = previous
            elif kind in ("tools", "prompts"):
                parts[kind] = _Part(items, [self._named(backend, item) for item in items], [])
            elif kind == "resources":
                exposed = [expose_uri(backend.exposed_prefix, str(r.uri)) for r in items]
                copies = [r.model_copy(update={"uri": uri}) for r, uri in zip(items, exposed, strict=True)]
                parts[kind] = _Part(items, [], list(zip(exposed, range(len(items)), copies, strict=True)))
            else:
                exposed = [expose_uri(backend.exposed_prefix, t.uri_template) for t in items]
                copies = [t.model_copy(update={"uri_template": uri}) for t, uri in zip(items, exposed, strict=True)]
                parts[kind] = _Part(items, [], list(zip(exposed, range(len(items)), copies, strict=True)))
        return parts

    def _named(self, backend: BackendConfig, item: Any) -> _Named:
        prefix, name = backend.exposed_prefix, item.name
        return _Named(
            backend,
            name,
            canonical_name(prefix, name),
            strict_name(prefix, name, self._naming),
            item,
            Route(backend.name, name),
        )

    # -- lists -----------------------------------------------------------------------------------------------

    def tools(self, style: Style) -> list[types.Tool]:
        return self._list("tools", style)

    def prompts(self, style: Style) -> list[types.Prompt]:
        return self._list("prompts", style)

    def resources(self) -> list[types.Resource]:
        return self._index.lists[("resources", Style.CANONICAL)]

    def templates(self) -> list[types.ResourceTemplate]:
        return self._index.lists[("templates", Style.CANONICAL)]

    def page(self, kind: str, style: Style, cursor: str | None, size: int) -> tuple[list[Any], str | None]:
        """One page of a list (``tools``, ``prompts``, ``resources``, ``templates``) and the next page's cursor."""
        style = style if kind in ("tools", "prompts") else Style.CANONICAL
        return page(kind, self._list(kind, style), self._index.keys[kind], cursor, size)

    def _list(self, kind: str, style: Style) -> list[Any]:
        """A list in one style; a strict one is copied when first asked for (many gateways never are)."""
        index = self._index
        found = index.lists.get((kind, style))
        if found is None:
            found = index.lists[(kind, style)] = [part.renamed(entry, name) for part, entry, name in index.strict[kind]]
        return found

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

    def _merge(self) -> set[Kind]:
        before = self._index
        index = _Index()
        ordered = [b.name for b in self._backends if b.name in self._parts]
        tool_names = self._register("tool", ordered, "tools", index.tools, index.conflicts, self._hidden_tools)
        prompt_names = self._register("prompt", ordered, "prompts", index.prompts, index.conflicts, frozenset())
        for canon, (backend, strict, entry) in tool_names.items():
            if backend in self._visible:
                index.schemas[canon] = index.schemas[strict] = entry.item.input_schema
        for kind, names in (("tools", tool_names), ("prompts", prompt_names)):
            visible = [(canon, b, strict, e) for canon, (b, strict, e) in sorted(names.items()) if b in self._visible]
            index.lists[(kind, Style.CANONICAL)] = [self._parts[b][kind].renamed(e, c) for c, b, _, e in visible]
            index.strict[kind] = [(self._parts[b][kind], e, s) for _, b, s, e in visible]
            index.keys[kind] = [(canon,) for canon, _, _, _ in visible]
        shown = [(position, b) for position, b in enumerate(ordered) if b in self._visible]
        for kind in ("resources", "templates"):
            exposed = sorted(
                ((uri, position, i), item) for position, b in shown for uri, i, item in self._parts[b][kind].exposed
            )
            index.lists[(kind, Style.CANONICAL)] = [item for _, item in exposed]
            index.keys[kind] = [key for key, _ in exposed]
        for conflict in index.conflicts:
            if conflict not in self._index.conflicts:
                logger.warning("name conflict: %s", conflict)
        self._index = index
        changed = _changed(before, index)
        if changed:
            self.generation += 1
        return changed

    def _register(
        self,
        kind: str,
        ordered: list[str],
        part: str,
        routes: dict[str, Route],
        conflicts: list[str],
        hidden: frozenset[str],
    ) -> dict[str, tuple[str, str, _Named]]:
        """Fill ``routes`` with canonical and strict names (but the ``hidden`` ones); returns canonical ->
        (backend, strict, entry)."""
        owners: dict[str, _Named] = {}
        for backend in ordered:
            for entry in self._parts[backend][part].named:
                if entry.canonical in hidden:
                    continue
                first = owners.get(entry.canonical)
                if first is not None:
                    conflicts.append(
                        f"{kind} {entry.canonical!r} is offered by {first.backend.name!r} and {backend!r}; "
                        f"{first.backend.name!r} keeps it"
                    )
                    continue
                owners[entry.canonical] = entry
        by_strict: dict[str, int] = defaultdict(int)
        for entry in owners.values():
            by_strict[entry.strict] += 1
        result: dict[str, tuple[str, str, _Named]] = {}
        for canon, entry in owners.items():
            strict = entry.strict if by_strict[entry.strict] == 1 else self._hashed(entry)
            result[canon] = (entry.backend.name, strict, entry)
            routes[canon] = entry.route
        for canon, (_, strict, _) in result.items():
            if strict == canon:
                continue
            if strict in routes and routes[strict] != routes[canon]:
                conflicts.append(f"{kind} rendering {strict!r} of {canon!r} clashes with another {kind}; not routed")
                continue
            routes[strict] = routes[canon]
        return result

    def _hashed(self, entry: _Named) -> str:
        """The strict rendering that ends in a hash: for names whose plain strict renderings clash (rare)."""
        return strict_name(entry.backend.exposed_prefix, entry.name, self._naming, force_hash=True)


def _changed(before: _Index, after: _Index) -> set[Kind]:
    """Kinds whose lists differ; items are reused copies, so comparing identities is exact and cheap. Strict lists
    are copied on first use, so theirs are compared by what they are made of: the canonical list and the names."""
    kinds = {"tools": Kind.TOOLS, "prompts": Kind.PROMPTS, "resources": Kind.RESOURCES, "templates": Kind.RESOURCES}
    changed = {kinds[key[0]] for key, items in after.lists.items() if not _same(before.lists.get(key, []), items)}
    for name, parts in after.strict.items():
        if [strict for _, _, strict in parts] != [strict for _, _, strict in before.strict.get(name, [])]:
            changed.add(kinds[name])
    return changed


def _same(old: list[Any], new: list[Any]) -> bool:
    return len(old) == len(new) and all(a is b for a, b in zip(old, new, strict=True))
