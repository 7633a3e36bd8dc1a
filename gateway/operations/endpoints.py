"""Virtual servers, composite tools and ``/mcp``'s search changed while the gateway serves, kept across restarts.

They combine with the config file as backends do (``gateway.operations.runtime``): the runtime changes in the store
(``endpoints`` table) are an overlay keyed by section and name, each remembering the file's definition it was made
over, and once the file says something else the file wins (one log line says so). A virtual server or composite
is put (added or replaced) or removed; ``search`` is replaced, or its change dropped to apply the file's again.

A change is validated exactly as the file is: the whole configuration by ``GatewayConfig`` (so a server's
``check_static`` against the backends), then what only the listings tell (``gateway.composition.checks``); a
refusal names the place as the file would (``servers.team.overrides.ops/echo``), and nothing changes. Once made,
the front serves it (``VirtualServers.offer``: a server added is served, one changed keeps its sessions, one removed
answers 404), clients hear ``list_changed``, and the other replicas get it as they get backend changes.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from gateway.catalogue.naming import Style
from gateway.composition.checks import problems
from gateway.composition.views import View
from gateway.config import GatewayConfig
from gateway.front.app import server_path
from gateway.operations.errors import ChangeError
from gateway.operations.store import Store

if TYPE_CHECKING:
    from gateway.operations.runtime import Runtime

logger = logging.getLogger(__name__)
SECTIONS = ("servers", "composites", "search")
# The one entry of the ``search`` section.
SEARCH = "search"
_UNKNOWN = {"servers": "unknown_server", "composites": "unknown_composite"}
_KIND = {"servers": "virtual server", "composites": "composite"}
Sections = dict[str, dict[str, Any]]


def entries(config: GatewayConfig) -> Sections:
    """The three sections of ``config`` by name: each server, each composite, and ``search`` as one entry."""
    return {
        "servers": dict(config.servers),
        "composites": {composite.name: composite for composite in config.composites},
        "search": {SEARCH: config.search},
    }


def validated(config: GatewayConfig, sections: Sections) -> GatewayConfig:
    """``config`` with these sections, validated as a config file is; ``ChangeError`` names the place."""
    data = {key: getattr(config, key) for key in GatewayConfig.model_fields}
    data.update(
        servers=sections["servers"], composites=list(sections["composites"].values()), search=sections["search"][SEARCH]
    )
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        raise ChangeError("invalid", message, _place(error["loc"], message, sections)) from None


def overlaid(config: GatewayConfig, file: GatewayConfig, store: Store) -> GatewayConfig:
    """``config`` (the file's, with the backends' overlay) with the store's changes to the three sections on top.

    A change made over a definition the file no longer has is dropped: the file was edited since, and wins. Changes
    that no longer fit the file are left out, with one log line.
    """
    sections, in_file = entries(config), entries(file)
    for section in SECTIONS:
        for override in store.endpoint_overrides(section):
            if override.base != base_of(in_file[section].get(override.name)):
                logger.warning(
                    "%s.%s: the config file changed it after its runtime change of %s; the file's definition applies",
                    section, override.name, override.changed_at,
                )  # fmt: skip
                store.drop_endpoint(section, override.name)
            elif override.definition is None:
                sections[section].pop(override.name, None)
            else:
                sections[section][override.name] = override.definition
    try:
        return validated(config, sections)
    except ChangeError as exc:
        logger.error("runtime changes to servers, composites or search left out: with the config file they are "
                     "invalid: %s: %s", exc.field, exc)  # fmt: skip
        return config


def base_of(definition: BaseModel | None) -> str:
    """A file's definition as the store keeps it, to tell later whether the file changed it."""
    return json.dumps(None if definition is None else dump(definition), sort_keys=True)


def dump(definition: BaseModel) -> dict[str, Any]:
    return definition.model_dump(mode="json", by_alias=True, exclude_defaults=True)


class Endpoints:
    """The admin API's view of the virtual servers, composites and search, and its changes to them."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    # -- reading ---------------------------------------------------------------------------------------------

    def servers(self) -> list[dict[str, Any]]:
        return [self.server(name) for name in self._runtime.gateway.config.servers]

    def server(self, name: str) -> dict[str, Any]:
        """A server's definition, where it comes from, and what it serves now: its sessions and tools."""
        config = self._known("servers", name)
        entry: dict[str, Any] = {"name": name, "path": server_path(name), "source": self._source("servers", name),
                                 "config": dump(config)}  # fmt: skip
        served = self._runtime.served
        if served is not None and name in served:
            entry["sessions"] = served.sessions(name)
            entry["tools"] = len(served.surface(name).everything(Style.CANONICAL))
        return entry

    def composites(self) -> list[dict[str, Any]]:
        return [self.composite(composite.name) for composite in self._runtime.gateway.config.composites]

    def composite(self, name: str) -> dict[str, Any]:
        """A composite's definition, where it comes from, and the virtual servers that offer it (``/mcp`` does)."""
        config = self._known("composites", name)
        running = self._runtime.gateway.config
        offering = [n for n, server in running.servers.items() if View(server, ()).select("composites", name)]
        return {"name": name, "source": self._source("composites", name), "config": dump(config), "servers": offering}

    def search(self) -> dict[str, Any]:
        return {"source": self._source("search", SEARCH), "config": dump(self._runtime.gateway.config.search)}

    # -- changes ---------------------------------------------------------------------------------------------

    async def put(self, section: str, name: str, body: Any) -> tuple[dict[str, Any], bool]:
        """Add or replace one entry; returns it as read back, and whether it is new."""
        runtime = self._runtime
        async with runtime.changing():
            definition = _object(body)
            if section == "composites":
                definition = {"name": name, **definition}
                if definition["name"] != name:
                    raise ChangeError("invalid", f"the body names {definition['name']!r}, the path {name!r}", "name")
            sections = entries(runtime.gateway.config)
            new = name not in sections[section]
            sections[section][name] = definition
            config = self._checked(sections)
            made = entries(config)[section][name]
            runtime.store.put_endpoint(section, name, dump(made), self._base(section, name))
            await runtime.offer(config)
            logger.info("%s %s %s at run time", _KIND.get(section, "search"), name, "added" if new else "changed")
        return self._read(section, name), new

    async def remove(self, section: str, name: str) -> None:
        """Remove a server or a composite; for ``search``, apply the file's again."""
        runtime = self._runtime
        async with runtime.changing():
            sections = entries(runtime.gateway.config)
            if section == "search":
                sections[section][name] = entries(runtime.base)[section][name]
            else:
                self._known(section, name)
                del sections[section][name]
            config = self._checked(sections)
            if section != "search" and name in entries(runtime.base)[section]:
                runtime.store.put_endpoint(section, name, None, self._base(section, name))
            else:
                runtime.store.drop_endpoint(section, name)
            await runtime.offer(config)
            logger.info("%s %s %s at run time", _KIND.get(section, "search"), name,
                        "reset to the file's" if section == "search" else "removed")  # fmt: skip

    # -- helpers ---------------------------------------------------------------------------------------------

    def _checked(self, sections: Sections) -> GatewayConfig:
        config = validated(self._runtime.gateway.config, sections)
        found = problems(self._runtime.gateway, config)
        if found:
            place, _, message = found[0].partition(": ")
            raise ChangeError("invalid", message, place)
        return config

    def _read(self, section: str, name: str) -> dict[str, Any]:
        if section == "servers":
            return self.server(name)
        return self.composite(name) if section == "composites" else self.search()

    def _known(self, section: str, name: str) -> Any:
        found = entries(self._runtime.gateway.config)[section].get(name)
        if found is None:
            raise ChangeError(_UNKNOWN[section], f"no {_KIND[section]} is named {name!r}")
        return found

    def _source(self, section: str, name: str) -> str:
        """Where the entry comes from: ``config`` (the file) or ``runtime`` (an operator's change)."""
        changed = {o.name for o in self._runtime.store.endpoint_overrides(section) if o.definition is not None}
        return "runtime" if name in changed or name not in entries(self._runtime.base)[section] else "config"

    def _base(self, section: str, name: str) -> str:
        return base_of(entries(self._runtime.base)[section].get(name))


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ChangeError("invalid", "expected a JSON object: one definition", "")
    return body


def _place(loc: tuple[int | str, ...], message: str, sections: Sections) -> str:
    """The dotted path, as in the config file, of the value at fault; for a check across entries (a server against
    the backends), the place its message starts with."""
    section, rest = str(loc[0]), [str(part) for part in loc[1:]]
    if section == "composites" and rest and rest[0].isdigit():
        rest[0] = list(sections["composites"])[int(rest[0])]
    if section == "servers" and not rest:
        head = message.partition(": ")[0]
        named = [name for name in sections["servers"] if message.startswith(repr(name))]
        rest = [head] if head.split(".")[0] in sections["servers"] else named[:1]
    return ".".join([section, *rest])
