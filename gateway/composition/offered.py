"""What each endpoint offers, as the configuration says: ``/mcp`` and every virtual server.

``/mcp`` offers the whole catalogue, every composite tool and, where ``search`` enables them, the meta tools; a
virtual server offers what its ``View`` selects of the catalogue, the composites it selects, and its own meta tools
(searching only what it shows). Built once when the front is; the start checks what only the backends' listings can
tell (``gateway.composition.checks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.composition.composite import Composites
from gateway.composition.meta import MetaTools
from gateway.composition.sources import ToolSource
from gateway.composition.surface import Surface
from gateway.composition.views import View, views
from gateway.config.composites import CompositeConfig
from gateway.config.search import SearchConfig
from gateway.core import Gateway


@dataclass(frozen=True)
class Offered:
    """One virtual server's surface and the view it shows (its access rule, its instructions)."""

    surface: Surface
    view: View


def main_surface(gateway: Gateway) -> Surface:
    config = gateway.config
    return Surface(gateway, sources(config.composites, config.search), search=config.search)


def virtual_servers(gateway: Gateway) -> dict[str, Offered]:
    config = gateway.config
    offered = {}
    for name, view in views(config).items():
        chosen = [c for c in config.composites if view.select("composites", c.name)]
        search = config.servers[name].search
        surface = Surface(gateway, sources(chosen, search), view, search)
        offered[name] = Offered(surface, view)
    return offered


def sources(composites: Sequence[CompositeConfig], search: SearchConfig) -> list[ToolSource]:
    """The gateway's own tools of one endpoint: its composites, and the meta tools if it enables them."""
    found: list[ToolSource] = []
    if composites:
        found.append(Composites(composites))
    if search.enabled:
        found.append(MetaTools(search))
    return found
