"""A virtual server's view of the catalogue: which items it shows, how it shows its tools, and who may use it.

A ``View`` is pure and quick: no I/O, patterns compiled once (``gateway.security.policy``'s matching, so a pattern
means the same in a server as in a policy rule), each item's selection decided once, a tool shown differently
copied once per listing of it. It never
widens anything: the endpoint applies the global policy to the caller as well, so a server shows a caller at most
what ``/mcp`` would.

A tool the server renames is in the view under its new name alone (the same in both name styles); its canonical
and strict names are not, so a caller cannot step around the arguments the server fixes by calling the tool by its
old name. Fixed arguments are merged into every call of the tool, however it was named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.validators import validator_for
from mcp import types

from gateway.catalogue.naming import strict_name
from gateway.config import BackendConfig, GatewayConfig
from gateway.config.servers import ServerConfig, ToolOverride
from gateway.errors import InvalidArguments
from gateway.principal import Principal
from gateway.security.policy import compile_patterns, resource_name
from gateway.security.validation import ISOLATED

# Decisions remembered per view: every item of a large catalogue, in each kind, before they are all decided anew.
MEMO_SIZE = 100_000

Selectable = Literal["tools", "prompts", "resources", "templates", "composites"]


class View:
    """One virtual server over the catalogue, built from its config and the backends' (for their prefixes)."""

    def __init__(self, config: ServerConfig, backends: Sequence[BackendConfig]) -> None:
        self.config = config
        known = {b.name: b.exposed_prefix for b in backends}
        self._prefixes = frozenset(known[name] for name in config.backends if known.get(name))
        self._include = {
            "tools": compile_patterns(config.tools),
            "prompts": compile_patterns(config.prompts),
            "resources": compile_patterns(config.resources),
            "templates": compile_patterns(config.resources),
            "composites": compile_patterns(config.composites),
        }
        self._exclude = compile_patterns(config.exclude)
        self._overrides = config.overrides
        self._renamed = {o.name: (tool, dict(o.fixed)) for tool, o in config.overrides.items() if o.name is not None}
        self._shown: dict[str, tuple[types.Tool, types.Tool]] = {}
        self._memo: dict[tuple[str, str], bool] = {}

    def select(self, kind: Selectable, canonical: str) -> bool:
        """Whether the item is in the view under this name: tools and prompts by canonical name, resources and
        templates by exposed URI (template), composites by name. A renamed tool's canonical name is not."""
        if kind == "tools" and (override := self._overrides.get(canonical)) is not None and override.name:
            return False
        return self._selected(kind, canonical)

    def _selected(self, kind: Selectable, name: str) -> bool:
        key = (kind, name)
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            found = self._memo[key] = self._decide(kind, name)
        return found

    def _decide(self, kind: Selectable, name: str) -> bool:
        if kind not in ("resources", "templates"):
            return not self._excluded(name) and self._included(kind, name)
        named = resource_name(name)
        excluded = self._excluded(name) or self._excluded(named)
        return not excluded and (self._included(kind, name) or self._included(kind, named))

    def _excluded(self, name: str) -> bool:
        return self._exclude is not None and self._exclude.match(name) is not None

    def _included(self, kind: Selectable, name: str) -> bool:
        owner, slash, _ = name.partition("/")
        if slash and owner in self._prefixes and kind != "composites":
            return True
        include = self._include[kind]
        return include is not None and include.match(name) is not None

    def show_tool(self, tool: types.Tool, canonical: str) -> types.Tool:
        """The tool as the view shows it: its override applied, else the tool itself (its name as given)."""
        override = self._overrides.get(canonical)
        if override is None:
            return tool
        cached = self._shown.get(tool.name)
        if cached is not None and cached[0] is tool:
            return cached[1]
        shown = _overridden(tool, override)
        self._shown[tool.name] = (tool, shown)
        return shown

    def tools(self, entries: Sequence[tuple[str, types.Tool]]) -> list[types.Tool]:
        """A list of the catalogue's tools in one style, as (canonical name, tool): those in the view, shown as the
        view shows them, sorted by the name shown."""
        shown = [self.show_tool(tool, canonical) for canonical, tool in entries if self._selected("tools", canonical)]
        return sorted(shown, key=_name)

    def prompts(self, entries: Sequence[tuple[str, types.Prompt]]) -> list[types.Prompt]:
        """A list of the catalogue's prompts in one style, as (canonical name, prompt): those in the view."""
        return sorted((prompt for canonical, prompt in entries if self._selected("prompts", canonical)), key=_name)

    def resources(self, items: Sequence[types.Resource]) -> list[types.Resource]:
        """The resources in the view, in the order given (the catalogue's, by URI)."""
        return [item for item in items if self._selected("resources", str(item.uri))]

    def templates(self, items: Sequence[types.ResourceTemplate]) -> list[types.ResourceTemplate]:
        """The resource templates in the view, in the order given (the catalogue's, by URI template)."""
        return [item for item in items if self._selected("templates", item.uri_template)]

    def target(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """A name the view gave a tool -> the tool's canonical name and the arguments the view fixes; None for a
        name the view did not give (resolve it as usual, then ask ``select``)."""
        found = self._renamed.get(name)
        return (found[0], dict(found[1])) if found is not None else None

    def arguments(self, canonical: str, arguments: dict[str, Any] | None) -> dict[str, Any] | None:
        """The caller's arguments with the ones the view fixes merged in; passing a fixed one is refused."""
        override = self._overrides.get(canonical)
        if override is None or not override.fixed:
            return arguments
        given = arguments or {}
        for argument in override.fixed:
            if argument in given:
                problem = "this server fixes it; leave it out"
                raise InvalidArguments(override.name or canonical, f"$.{argument}", problem)
        return {**given, **override.fixed}

    def admits(self, principal: Principal) -> bool:
        """The server's own access rule (the global policy still decides each item)."""
        access = self.config.access
        if access.everyone:
            return True
        names = access.subjects if principal.method == "jwt" else access.principals
        return (
            principal.name in names
            or not principal.roles.isdisjoint(access.roles)
            or not principal.scopes.isdisjoint(access.scopes)
        )


def views(config: GatewayConfig) -> dict[str, View]:
    """Every virtual server of the configuration, by name."""
    return {name: View(server, config.backends) for name, server in config.servers.items()}


def check_servers(config: GatewayConfig, tools: Mapping[str, types.Tool]) -> list[str]:
    """What the servers' overrides say against the tools the backends list (canonical name -> tool): each problem
    a line naming its place, none for a config that fits."""
    problems = []
    for name, view in views(config).items():
        shown = _exposed_names(view, config, tools)
        for canonical, override in view.config.overrides.items():
            place = f"servers.{name}.overrides.{canonical}"
            tool = tools.get(canonical)
            if tool is None:
                problems.append(f"{place}: unknown tool {canonical!r}")
                continue
            if override.name is not None and override.name in shown:
                problems.append(f"{place}.name: {override.name!r} is already the name of another tool of the server")
            problems += _fixed_problems(f"{place}.fixed", canonical, tool, override)
    return problems


def check_server_composites(config: GatewayConfig, tools: Mapping[str, types.Tool]) -> list[str]:
    """What the composites a server selects say against what it shows: a step calls its tool through the server,
    as the caller would, so a tool the server does not show under the step's name (left out, or renamed), or an
    argument the server fixes, would fail every call. ``tools`` holds every tool under each name a step may use
    for it (canonical and strict); a step's unknown tool is ``check_composites``'s to name."""
    problems = []
    for name, view in views(config).items():
        for composite in config.composites:
            if not view.select("composites", composite.name):
                continue
            for step, call in composite.steps.items():
                tool = tools.get(call.tool)
                if tool is None:
                    continue
                place = f"servers.{name}.composites.{composite.name}.steps.{step}"
                if not view.select("tools", tool.name):
                    problems.append(f"{place}: the server does not show {call.tool!r}, so the step cannot call it")
                    continue
                override = view.config.overrides.get(tool.name)
                fixed = sorted(set(override.fixed) & set(call.arguments)) if override is not None else []
                problems += [
                    f"{place}.arguments.{argument}: the server fixes it, so the step may not pass it"
                    for argument in fixed
                ]
    return problems


def _exposed_names(view: View, config: GatewayConfig, tools: Mapping[str, types.Tool]) -> set[str]:
    """The names, in both styles, of the server's tools that keep their own."""
    prefixes = {b.exposed_prefix for b in config.backends}
    names = set()
    for canonical in tools:
        if view.select("tools", canonical):
            prefix, slash, original = canonical.partition("/")
            names.add(canonical)
            if slash and prefix in prefixes:
                names.add(strict_name(prefix, original, config.naming))
    return names


def _fixed_problems(place: str, canonical: str, tool: types.Tool, override: ToolOverride) -> list[str]:
    schema = tool.input_schema
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    problems = []
    for argument, value in override.fixed.items():
        if argument not in properties:
            problems.append(f"{place}.{argument}: the tool {canonical!r} has no argument {argument!r}")
        elif (problem := _invalid(schema, argument, value)) is not None:
            problems.append(f"{place}.{argument}: {value!r} does not fit the argument's schema: {problem}")
    return problems


def _invalid(schema: dict[str, Any], argument: str, value: Any) -> str | None:
    """Why ``value`` fails the argument's schema, checked in the whole schema (its ``$defs`` resolve, nothing is
    fetched); None when it fits, or when the schema is not one the gateway can check."""
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return None
    validator = cls({k: v for k, v in schema.items() if k != "required"}, registry=ISOLATED)
    errors = [e for e in validator.iter_errors({argument: value}) if list(e.absolute_path)[:1] == [argument]]
    error = best_match(errors)
    return None if error is None else f"{error.json_path}: {error.message}"


def _overridden(tool: types.Tool, override: ToolOverride) -> types.Tool:
    update: dict[str, Any] = {}
    if override.name is not None:
        update["name"] = override.name
    if override.title is not None:
        update["title"] = override.title
    if override.description is not None:
        update["description"] = override.description
    if override.annotations is not None:
        given = override.annotations.model_dump(exclude_unset=True)
        base = tool.annotations or types.ToolAnnotations()
        update["annotations"] = base.model_copy(update=given)
    if override.fixed:
        update["input_schema"] = _without(tool.input_schema, override.fixed.keys())
    return tool.model_copy(update=update)


def _without(schema: dict[str, Any], hidden: Any) -> dict[str, Any]:
    """The schema with the hidden arguments gone from its properties and its required list."""
    out = dict(schema)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        out["properties"] = {k: v for k, v in properties.items() if k not in hidden}
    required = schema.get("required")
    if isinstance(required, list):
        kept = [name for name in required if name not in hidden]
        if kept:
            out["required"] = kept
        else:
            del out["required"]
    return out


def _name(item: types.Tool | types.Prompt) -> str:
    return item.name
