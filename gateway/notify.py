"""Telling connected clients that the gateway's lists changed, in both protocol eras.

2026-07-28 clients hear it on their ``subscriptions/listen`` streams (fed by the subscription bus); 2025 clients
on their connection's standalone stream. Connections are held weakly, so one that ended simply drops out.
"""

from __future__ import annotations

import logging
import weakref

import anyio
from mcp.server.connection import Connection
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ServerEvent,
    ToolsListChanged,
)

from gateway.catalog import Kind

logger = logging.getLogger(__name__)
SEND_TIMEOUT = 5.0
_EVENTS: dict[Kind, ServerEvent] = {
    Kind.TOOLS: ToolsListChanged(),
    Kind.PROMPTS: PromptsListChanged(),
    Kind.RESOURCES: ResourcesListChanged(),
}


class Notifier:
    """Fans list changes out to every connected client."""

    def __init__(self) -> None:
        self.bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.bus)
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()

    def track(self, session: ServerSession) -> None:
        """Remember the connection behind a 2025-era request so it hears about list changes.

        A ``ServerSession`` lives for one request; the connection it wraps is what outlives it. SDK 2.3.0 has no
        public accessor for it, hence the one private attribute read here.
        """
        self._connections.add(session._connection)

    async def changed(self, kinds: set[Kind]) -> None:
        for kind in sorted(kinds):
            await self.bus.publish(_EVENTS[kind])
        for connection in list(self._connections):
            with anyio.move_on_after(SEND_TIMEOUT):
                for kind in sorted(kinds):
                    await _send(connection, kind)

    def close(self) -> None:
        """End every open listen stream gracefully (shutdown)."""
        self.listen.close()


async def _send(connection: Connection, kind: Kind) -> None:
    if kind is Kind.TOOLS:
        await connection.send_tool_list_changed()
    elif kind is Kind.PROMPTS:
        await connection.send_prompt_list_changed()
    else:
        await connection.send_resource_list_changed()
