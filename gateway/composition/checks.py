"""What only the backends' listings can tell about the composition config, checked once the gateway has started.

A composite's step naming a tool no backend lists, an argument the tool does not take, a field its output schema
does not have; a virtual server's override of an unknown tool, or a fixed value its schema refuses; a composite a
server selects whose step calls a tool the server does not show: each is a mistake in the file, refused at start
with the place named (the command line exits 2). What names a tool of a backend that did not connect cannot be
told yet: it is left out, and a log line says so.
"""

from __future__ import annotations

import logging

from mcp import types

from gateway.catalogue.naming import Style
from gateway.composition.views import check_server_composites, check_servers
from gateway.config import GatewayConfig
from gateway.config.composites import check_composites
from gateway.core import Gateway
from gateway.upstream.backend import State

logger = logging.getLogger(__name__)


def problems(gateway: Gateway, config: GatewayConfig | None = None) -> list[str]:
    """Every problem the listings show, one line each naming its place; of ``config`` if given (a change about to
    be made), else of the gateway's own."""
    config = gateway.config if config is None else config
    catalog = gateway.catalog
    canonical = catalog.tools(Style.CANONICAL)
    tools: dict[str, types.Tool] = {tool.name: tool for tool in canonical}
    everywhere = dict(tools)
    everywhere.update((strict.name, tool) for tool, strict in zip(canonical, catalog.tools(Style.STRICT), strict=True))
    unknown = _unconnected(gateway, config)
    composites = tuple(
        c for c in config.composites if not _skipped(c.name, [s.tool for s in c.steps.values()], unknown)
    )
    servers = {}
    for name, server in config.servers.items():
        overrides = {tool: o for tool, o in server.overrides.items() if not _skipped(name, [tool], unknown)}
        servers[name] = server.model_copy(update={"overrides": overrides})
    checked = config.model_copy(update={"servers": servers, "composites": composites})
    found = check_composites(composites, everywhere) + check_servers(checked, tools)
    return found + check_server_composites(checked, everywhere)


def _unconnected(gateway: Gateway, config: GatewayConfig) -> set[str]:
    """The exposed prefixes of the backends that are not connected (their tools are unknown for now)."""
    prefixes = set()
    for backend in config.backends:
        upstream = gateway.upstreams.get(backend.name)
        if upstream is None or upstream.state is not State.READY:
            prefix = backend.exposed_prefix
            prefixes.update({f"{prefix}/", f"{prefix}{config.naming.separator}"})
    return prefixes


def _skipped(place: str, tools: list[str], unconnected: set[str]) -> bool:
    waiting = [tool for tool in tools if any(tool.startswith(prefix) for prefix in unconnected)]
    if waiting:
        logger.warning("%s: not checked, its tools' backends are not connected yet: %s", place, ", ".join(waiting))
    return bool(waiting)
