"""What each endpoint offers, as the configuration says: ``/mcp`` and every virtual server.

``/mcp`` offers the whole catalogue, every composite tool and, where ``search`` enables them, the meta tools; a
virtual server offers what its ``View`` selects of the catalogue, the composites it selects, and its own meta tools
(searching only what it shows). An ``Offered`` is built from the configuration each time it may have changed (at
start, on a reload, on a change through the admin API): the front compares its ``basis`` with what it serves and
builds a ``Surface`` for a new endpoint or sets an existing one's anew. The start checks what only the backends'
listings can tell (``gateway.composition.checks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.composition.composite import Composites
from gateway.composition.meta import MetaTools
from gateway.composition.sources import ToolSource
from gateway.composition.surface import Surface
from gateway.composition.views import View
from gateway.config import GatewayConfig
from gateway.config.composites import CompositeConfig
from gateway.config.search import SearchConfig
from gateway.core import Gateway


@dataclass(frozen=True, eq=False)
class Offered:
    """What one endpoint offers: the gateway's own tools, the view it shows (none for ``/mcp``), its search
    settings, and ``basis``, what they were made from: two offers with equal bases offer the same."""

    sources: tuple[ToolSource, ...]
    view: View | None
    search: SearchConfig
    basis: object

    @property
    def instructions(self) -> str | None:
        return None if self.view is None else self.view.config.instructions

    def surface(self, gateway: Gateway) -> Surface:
        return Surface(gateway, self.sources, self.view, self.search)

    def onto(self, surface: Surface) -> None:
        """Make ``surface`` offer this from now on (its clients are told by whoever changed it)."""
        surface.set(self.sources, self.view, self.search)


def main_offer(config: GatewayConfig) -> Offered:
    return Offered(sources(config.composites, config.search), None, config.search, (config.composites, config.search))


def main_surface(gateway: Gateway) -> Surface:
    return main_offer(gateway.config).surface(gateway)


def virtual_servers(config: GatewayConfig) -> dict[str, Offered]:
    """Each virtual server's offer; a view captures its backends' prefixes, so they are part of its basis."""
    prefixes = {b.name: b.exposed_prefix for b in config.backends}
    offered = {}
    for name, server in config.servers.items():
        view = View(server, config.backends)
        chosen = tuple(c for c in config.composites if view.select("composites", c.name))
        basis = (server, chosen, tuple(prefixes.get(backend) for backend in server.backends))
        offered[name] = Offered(sources(chosen, server.search), view, server.search, basis)
    return offered


def sources(composites: Sequence[CompositeConfig], search: SearchConfig) -> tuple[ToolSource, ...]:
    """The gateway's own tools of one endpoint: its composites, and the meta tools if it enables them."""
    found: list[ToolSource] = []
    if composites:
        found.append(Composites(composites))
    if search.enabled:
        found.append(MetaTools(search))
    return tuple(found)
