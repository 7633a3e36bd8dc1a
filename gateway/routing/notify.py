"""Telling connected clients that the gateway's lists changed, in both protocol eras.

2026-07-28 clients hear it on their ``subscriptions/listen`` streams (fed by the subscription bus); 2025 clients
on their connection's standalone stream. A resource's updates go the same two ways, to those subscribed to it
(see ``gateway.routing.subscriptions``). Connections are held weakly, so one that ended simply drops out; a 2025
connection is known by its ``Mcp-Session-Id`` too, so that an update heard from another replica for a session
reaches its notification stream here.
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
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)

from gateway.catalogue.catalog import Kind
from gateway.sdk import connection_of
from gateway.telemetry import metrics

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
        self._by_id: weakref.WeakValueDictionary[str, Connection] = weakref.WeakValueDictionary()

    def track(self, session: ServerSession) -> None:
        """Remember the connection behind a 2025-era request so it hears about list changes (and, over HTTP, by its
        session id)."""
        connection = connection_of(session)
        self._connections.add(connection)
        if connection.session_id is not None:
            self._by_id[connection.session_id] = connection

    def connection(self, session_id: str) -> Connection | None:
        """This replica's connection of a 2025 session, if it served one of its requests."""
        return self._by_id.get(session_id)

    async def changed(self, kinds: set[Kind]) -> None:
        for kind in sorted(kinds):
            metrics.list_changed(kind.value)
            await self.bus.publish(_EVENTS[kind])
        for connection in list(self._connections):
            with anyio.move_on_after(SEND_TIMEOUT):
                for kind in sorted(kinds):
                    await _send(connection, kind)

    async def resource_updated(self, uri: str, connections: list[Connection]) -> None:
        """``uri`` changed: tell the listen streams that name it, and the 2025 ``connections`` subscribed to it."""
        await self.bus.publish(ResourceUpdated(uri))
        await self.tell_updated(uri, connections)

    async def tell_updated(self, uri: str, connections: list[Connection]) -> None:
        """``uri`` changed: tell these 2025 ``connections`` alone."""
        for connection in connections:
            with anyio.move_on_after(SEND_TIMEOUT):
                await connection.send_resource_updated(uri)

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
